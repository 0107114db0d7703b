"""Reading a model's reply: the final answer, the reasoning steps, a 0-10 score, code blocks.

Pure functions (no I/O), shared by the generative agents and tested on their own.

The convention every prompt asks for: the reply ends with one line
    Final answer: <the answer>
`final_answer` takes the LAST such line (a model that revises itself wins with its last
word). Fallbacks, in this order, when the model ignored the convention: a line "Answer: X",
"the answer is X", LaTeX "\\boxed{X}". Nothing found → (None, reason): never a guess.
"""
from __future__ import annotations

import re

# at a line's start or after a sentence ("... all used. Final answer: 24")
FINAL = re.compile(r"(?:^|(?<=[.;:!?]\s))\s*(?:\*\*)?\s*final\s+answer\s*(?:\*\*)?\s*[:\-–]"
                   r"\s*(?:\*\*)?\s*(.+?)\s*$", re.I | re.M)
FALLBACKS = (
    ("answer_line", re.compile(r"^\s*(?:\*\*)?answer\s*(?:\*\*)?\s*:\s*(.+?)\s*$", re.I | re.M)),
    ("the_answer_is", re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*(.+?)\s*(?:\.\s*$|$)",
                                 re.I | re.M)),
    ("boxed", re.compile(r"\\boxed\{([^{}]+)\}")),
)
NO_ANSWER = ("the reply has no 'Final answer:' line, nor an 'Answer:' line, 'the answer is "
             "...' or \\boxed{...}")
STEP = re.compile(r"^\s*(?:step\s*(\d+)\s*[:.)\-]|(\d+)\s*[.)])\s*(.*)$", re.I)


def _clean(s: str) -> str:
    return s.strip().strip("*").strip()


def final_answer(text: str) -> tuple[str | None, str]:
    """→ (answer, how): how is "final_answer_line", a fallback's name, or why none."""
    hits = FINAL.findall(text or "")
    if hits and _clean(hits[-1]):
        return _clean(hits[-1]), "final_answer_line"
    for name, rx in FALLBACKS:
        hits = rx.findall(text or "")
        if hits and _clean(hits[-1]):
            return _clean(hits[-1]).rstrip("."), name
    return None, NO_ANSWER


def steps(text: str) -> list[str]:
    """The reasoning before the final answer: "Step N:" or "N." lines (a step runs on to the
    next marker), else its non-empty paragraphs/lines."""
    body = FINAL.split(text or "")[0] if FINAL.search(text or "") else (text or "")
    out: list[str] = []
    numbered = False
    for line in body.splitlines():
        m = STEP.match(line)
        if m:
            numbered = True
            out.append(m.group(3).strip())
        elif numbered and line.strip() and out:
            out[-1] = (out[-1] + " " + line.strip()).strip()
    if numbered:
        return [s for s in out if s]
    return [ln.strip() for ln in body.splitlines() if ln.strip()]


SCORE = re.compile(r"(?<![\d.])(10(?:\.0+)?|\d(?:\.\d+)?)(?:\s*/\s*10)?(?![\d.])")
SCORE_LINE = re.compile(r"score\s*[:=]?\s*(\d+(?:\.\d+)?)", re.I)


def score(text: str) -> float | None:
    """A judge's 0-10 score: "Score: 7" (preferred), else the first number 0-10 in the reply
    ("7/10", "8.5"); None when there is none."""
    m = SCORE_LINE.search(text or "") or SCORE.search(text or "")
    if not m:
        return None
    v = float(m.group(1))
    return v if 0 <= v <= 10 else None


CANDIDATE = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)]|thought\s*\d+\s*:)\s*(.+)$", re.I)


def candidates(text: str, k: int) -> list[str]:
    """Up to k distinct candidate thoughts from a numbered/bulleted list (else non-empty
    lines), in order; duplicates (case/space-insensitive) dropped."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    listed = [m.group(1).strip() for m in map(CANDIDATE.match, lines) if m]
    seen: set[str] = set()
    out = []
    for c in listed or [ln.strip() for ln in lines]:
        key = " ".join(c.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append(c)
        if len(out) == k:
            break
    return out


FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)


def code_blocks(text: str, language: str = "python") -> list[str]:
    """Fenced code blocks tagged `language` (or untagged), in order."""
    return [body for lang, body in FENCE.findall(text or "")
            if lang.lower() in ("", language, "py" if language == "python" else language)]
