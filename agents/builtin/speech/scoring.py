"""Word error counting for recognisers: the Levenshtein distance between word sequences
(substitutions + deletions + insertions), as bench/bench_speech.py and the tests report it."""
from __future__ import annotations


def word_errors(reference: str, hypothesis: str) -> int:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(pairs) -> float:
    """Σ errors / Σ reference words over (reference, hypothesis) pairs."""
    pairs = list(pairs)
    words = sum(len(r.split()) for r, _ in pairs)
    return sum(word_errors(r, h) for r, h in pairs) / words if words else 0.0
