"""GoTToTAgent (5646/6646): tree-of-thought search with a beam, scored thoughts and a budget.

    POST /task {"type": "tree_of_thought", "problem": "...",
                "k"?: 3, "beam"?: 2, "max_depth"?: 3,
                "max_tokens_total"?: 4000, "max_seconds"?: 60, "solved_score"?: 9,
                "scorer"?: "model" | {"keywords": ["...", ...]}}
      → {"answer": str | null, "reason"?: ..., "best_path": [{"thought", "score"}, ...],
         "best_score", "tree": [{"depth", "candidates": [{"thought", "score", "kept",
         "parent"}]}], "budget": {"depth", "calls", "tokens", "seconds", "stopped_by",
         "limits"}, "model", "backend", "usage", "timings"}

Breadth-first search (Yao et al. 2023, "Tree of Thoughts", BFS variant): at each depth, for
every path in the beam, ONE generation proposes k candidate next thoughts (a numbered list;
answers.candidates), each candidate is scored 0-10, and the best `beam` paths over all
parents are kept. Scoring: "model" asks the model as a judge ("Score: N", answers.score; an
unparseable judgement scores 0 and says so), or the caller's {"keywords": [...]}: 10 × the
share of keywords the path mentions (no model call). Graph part: the same thought reached
from two parents is one node (merged, the better parent kept), not two branches.

Stops at the first of: a kept thought carries "Final answer:" and scores ≥ solved_score
("solved"), max_depth ("depth"), the token budget (the servers' usage; checked before each
call: "tokens"), the time budget ("time"; at most 240 s, below the SDK's WORKER_HANG_S of
300 s). The answer is the best path's "Final answer:",
else null with the reason.
"""
from __future__ import annotations

from unified_agents import HTTPError

from .answers import candidates, final_answer, score
from .base import LLMAgent, field, integer, number

PROPOSE = ("You solve problems by exploring several possible next steps. Propose {k} different "
           "next steps toward the solution, one per line, numbered 1. to {k}. A step that "
           "reaches the solution ends with 'Final answer: <answer>'.")
JUDGE = ("You judge partial solutions. Given a problem and the steps so far, reply with one "
         "line 'Score: N' where N is 0 (wrong or a dead end) to 10 (correct and complete).")


def render(path: list[str]) -> str:
    return "\n".join(f"{i}. {t}" for i, t in enumerate(path, 1)) or "(none yet)"


class Budget:
    def __init__(self, ledger, max_depth: int, max_tokens: int, max_seconds: float):
        self.ledger = ledger
        self.max_depth, self.max_tokens, self.max_seconds = max_depth, max_tokens, max_seconds
        self.stopped_by: str | None = None

    def exhausted(self) -> bool:
        if self.ledger.tokens >= self.max_tokens:
            self.stopped_by = self.stopped_by or "tokens"
        elif self.ledger.elapsed() >= self.max_seconds:
            self.stopped_by = self.stopped_by or "time"
        return self.stopped_by in ("tokens", "time")

    def left_s(self) -> float:
        return max(1.0, self.max_seconds - self.ledger.elapsed())


class GoTToTAgent(LLMAgent):
    task_types = ("tree_of_thought",)
    strategy = "tree of thought: BFS, k proposals per path, beam b, judge 0-10, budgets"

    def handle_task(self, task: dict):
        problem = self.text(task, "problem", "question", "text")
        k = integer(task, "k", 3, 1, 10)
        beam = integer(task, "beam", 2, 1, 10)
        solved = number(task, "solved_score", 9.0, 0.0, 10.0)
        scorer = self._scorer(field(task, "scorer", "model"))
        ledger = self.ledger()
        budget = Budget(ledger, integer(task, "max_depth", 3, 1, 10),
                        integer(task, "max_tokens_total", 4000, 1, 1_000_000),
                        number(task, "max_seconds", 60.0, 0.1, 240.0))
        frontier: list[tuple[list[str], list[float]]] = [([], [])]
        tree: list[dict] = []
        best: tuple[list[str], list[float]] = ([], [])
        depth = 0
        while depth < budget.max_depth and not budget.exhausted():
            depth += 1
            level: dict[str, dict] = {}        # normalised thought → node (graph merge)
            for pi, (path, scores) in enumerate(frontier):
                if budget.exhausted():
                    break
                reply = self.gateway.generate(
                    ledger, [{"role": "system", "content": PROPOSE.format(k=k)},
                             {"role": "user", "content": f"Problem: {problem}\nSteps so far:\n"
                                                         f"{render(path)}\nPropose {k} next "
                                                         "steps."}],
                    task_type="tree_of_thought", max_tokens=self.max_tokens,
                    timeout=budget.left_s())
                for thought in candidates(reply, k):
                    if budget.exhausted():
                        break
                    s, note = self._score(scorer, ledger, budget, problem, path + [thought])
                    key = " ".join(thought.lower().split())
                    if key in level and level[key]["score"] >= s:
                        continue
                    level[key] = {"thought": thought, "score": s, "parent": pi, "kept": False,
                                  **({"note": note} if note else {}),
                                  "_path": (path + [thought], scores + [s])}
            if not level:
                break
            ranked = sorted(level.values(), key=lambda n: -n["score"])
            for n in ranked[:beam]:
                n["kept"] = True
            frontier = [n["_path"] for n in ranked[:beam]]
            tree.append({"depth": depth, "candidates": [{x: v for x, v in n.items()
                                                         if x != "_path"} for n in ranked]})
            if not best[1] or frontier[0][1][-1] >= best[1][-1]:
                best = frontier[0]
            done = [p for p in frontier if final_answer(p[0][-1])[1] == "final_answer_line"
                    and p[1][-1] >= solved]
            if done:
                best = done[0]
                budget.stopped_by = "solved"
                break
        if budget.stopped_by is None:
            budget.stopped_by = "depth" if depth >= budget.max_depth else "no_candidates"
        path, scores = best
        answer, how = final_answer("\n".join(path)) if path else (None, "no thought was proposed")
        self.served += 1
        out = {"answer": answer, "best_path": [{"thought": t, "score": s}
                                               for t, s in zip(path, scores)],
               "best_score": scores[-1] if scores else None, "tree": tree,
               "budget": {"depth": depth, "calls": ledger.calls, "tokens": ledger.tokens,
                          "seconds": round(ledger.elapsed(), 3),
                          "stopped_by": budget.stopped_by,
                          "limits": {"max_depth": budget.max_depth,
                                     "max_tokens_total": budget.max_tokens,
                                     "max_seconds": budget.max_seconds, "k": k, "beam": beam}}}
        if answer is None:
            out["reason"] = how
        out.update(ledger.summary())
        return out

    @staticmethod
    def _scorer(spec):
        if spec == "model":
            return "model"
        if isinstance(spec, dict) and set(spec) == {"keywords"} and \
                isinstance(spec["keywords"], list) and spec["keywords"] and \
                all(isinstance(w, str) and w.strip() for w in spec["keywords"]):
            return [w.lower() for w in spec["keywords"]]
        raise HTTPError(400, f'"scorer"={spec!r} is invalid; allowed: "model" (the model '
                             'judges, 0-10) or {"keywords": ["word", ...]}')

    def _score(self, scorer, ledger, budget, problem: str, path: list[str]):
        """→ (score 0-10, note or None)."""
        if scorer != "model":
            text = " ".join(path).lower()
            return round(10.0 * sum(w in text for w in scorer) / len(scorer), 2), None
        reply = self.gateway.generate(
            ledger, [{"role": "system", "content": JUDGE},
                     {"role": "user", "content": f"Problem: {problem}\nSteps:\n{render(path)}\n"
                                                 "Score these steps."}],
            task_type="tree_of_thought", max_tokens=16, timeout=budget.left_s())
        s = score(reply)
        if s is None:
            return 0.0, f"the judge's reply has no score 0-10: {reply[:80]!r}"
        return s, None
