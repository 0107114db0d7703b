"""CognitiveModelAgent (5641/6641): decompose a question, answer the parts, synthesise.

    POST /task {"type": "cognitive_model", "question": "...", "max_parts"?: 3}
      → {"answer": str | null, "reason"?: ..., "strategy": "decomposed" | "direct",
         "sub_questions": [{"question", "answer", "steps"}], "synthesis": raw reply | null,
         "model", "backend", "usage", "timings"}

The one decision this agent makes, and how:
1. Decompose: the model lists at most `max_parts` sub-questions needed to answer the
   question, one per line, or the single word NONE when the question is simple enough to
   answer at once (answers.candidates reads the list).
2. Each sub-question is answered by ChainOfThoughtAgent (its task chain_of_thought, at
   COGNITIVE_COT_URL or the catalog's port), in order; a sub-answer of null stays null.
3. Synthesise: the model gets the question and the sub-answers and ends with "Final answer:"
   (answers.final_answer). "direct" (NONE, or a single part) asks ChainOfThoughtAgent the
   question itself and takes its answer.
Usage and timings add up this agent's own generations and ChainOfThoughtAgent's.
"""
from __future__ import annotations

import time

from unified_agents import HTTPError

from .answers import candidates, final_answer
from .base import LLMAgent, integer

DECOMPOSE = ("Break the user's question into the smaller questions that must be answered "
             "first, at most {n}, one per line, numbered. If the question is simple enough to "
             "answer directly, reply with the single word NONE.")
SYNTHESISE = ("Answer the question using the answers to its sub-questions. Reason briefly, "
              "then finish with one last line 'Final answer: <answer>'.")


class CognitiveModelAgent(LLMAgent):
    task_types = ("cognitive_model",)
    strategy = "decompose into sub-questions, answer each by chain of thought, synthesise"

    def on_start(self) -> None:
        super().on_start()
        from unified_agents.client import Client
        from unified_core.catalog import load_catalog
        from unified_core.fleetview import connect_host

        cat = load_catalog(self.config.catalog, env={})
        cot = cat.agents.get("ChainOfThoughtAgent")
        default = (f"http://{connect_host(cat.settings.bind_address)}:{cot.port}" if cot
                   else "http://127.0.0.1:5612")
        self.cot_url = self.config.env.string("COGNITIVE_COT_URL", default)
        self.cot = Client(self.cot_url, timeout=self.gateway.timeout + 10)

    def handle_task(self, task: dict):
        question = self.text(task, "question", "text", "prompt")
        max_parts = integer(task, "max_parts", 3, 1, 8)
        ledger = self.ledger()
        reply = self.gateway.generate(
            ledger, [{"role": "system", "content": DECOMPOSE.format(n=max_parts)},
                     {"role": "user", "content": question}],
            task_type="cognitive_model", max_tokens=self.max_tokens)
        parts = [] if reply.strip().strip(".").upper() == "NONE" else \
            candidates(reply, max_parts)
        self.served += 1
        if len(parts) <= 1:
            r = self._ask_cot(ledger, question)
            out: dict = {"answer": r.get("answer"), "strategy": "direct",
                   "sub_questions": [], "synthesis": None}
            if r.get("answer") is None:
                out["reason"] = f"ChainOfThoughtAgent: {r.get('reason')}"
            out.update(ledger.summary())
            return out
        subs = []
        for q in parts:
            r = self._ask_cot(ledger, q)
            subs.append({"question": q, "answer": r.get("answer"), "steps": r.get("steps", [])})
        facts = "\n".join(f"- {s['question']} → {s['answer'] if s['answer'] is not None else 'unknown'}"
                          for s in subs)
        synthesis = self.gateway.generate(
            ledger, [{"role": "system", "content": SYNTHESISE},
                     {"role": "user", "content": f"Question: {question}\nSub-questions and "
                                                 f"their answers:\n{facts}"}],
            task_type="cognitive_model", max_tokens=self.max_tokens)
        answer, how = final_answer(synthesis)
        out = {"answer": answer, "strategy": "decomposed", "sub_questions": subs,
               "synthesis": synthesis}
        if answer is None:
            out["reason"] = how
        out.update(ledger.summary())
        return out

    def _ask_cot(self, ledger, question: str) -> dict:
        """ChainOfThoughtAgent's result for `question`; its usage joins this task's."""
        from unified_agents.client import AgentCallError

        t0 = time.perf_counter()
        try:
            out = self.cot.post_json("/task", {"type": "chain_of_thought", "question": question})
        except AgentCallError as e:
            body = e.body if isinstance(e.body, dict) else {}
            if e.status == 503 and body.get("setting"):   # no backend: pass the key on
                raise HTTPError(503, body.get("error", str(e)), setting=body["setting"]) from None
            raise HTTPError(502, f"ChainOfThoughtAgent at {self.cot_url} failed "
                                 f"({e.status or 'no answer'}: {body.get('error', e)})") from None
        r = out.get("result") if isinstance(out, dict) else None
        if not isinstance(r, dict):
            raise HTTPError(502, f"ChainOfThoughtAgent answered without a result: {str(out)[:200]}")
        u = r.get("usage") or {}
        ledger.add({"usage": u, "model": r.get("model"), "backend": r.get("backend")},
                   time.perf_counter() - t0)
        ledger.calls += int(u.get("calls") or 1) - 1   # add() counted one
        return r

    def health_info(self) -> dict:
        return dict(super().health_info(), chain_of_thought=self.cot_url)
