"""ChainOfThoughtAgent (5612/6612): step-by-step reasoning and an extracted final answer.

    POST /task {"type": "chain_of_thought" | "large_context_reasoning",
                "question": "...", "context"?: "...", "max_tokens"?: 512, "temperature"?: 0}
      → {"answer": "42" | null, "answer_source": "final_answer_line" | fallback name,
         "reason"?: why there is no answer, "steps": ["...", ...], "reasoning": raw reply,
         "model", "backend", "usage": {...}, "timings": {"llm_s", "total_s", "own_s"}}

One generation through ModelManagerSuite (task_type = the task's type, so the catalog's
routing rules apply: large_context_reasoning goes to the cloud model). The prompt asks for
"Step N:" lines and a last line "Final answer: ..." (answers.final_answer: the last such
line; fallbacks "Answer:", "the answer is", \\boxed{}); none → "answer": null with the
reason, never a guess. No backend → 503 naming the catalog key (gateway.py).
"""
from __future__ import annotations

from .answers import final_answer, steps
from .base import LLMAgent, field, integer, number

SYSTEM = ("You are a careful reasoner. Think step by step: write each step on its own line "
          "as 'Step N: ...'. Finish with exactly one last line 'Final answer: <answer>' giving "
          "only the answer, with no explanation after it.")


def messages(question: str, context: str | None) -> list:
    user = question if not context else f"Context:\n{context}\n\nQuestion: {question}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class ChainOfThoughtAgent(LLMAgent):
    task_types = ("chain_of_thought", "large_context_reasoning")
    strategy = "chain of thought: 'Step N:' lines, answer from the last 'Final answer:' line"

    def handle_task(self, task: dict):
        question = self.text(task, "question", "text", "prompt")
        context = field(task, "context")
        context = context if isinstance(context, str) and context.strip() else None
        if context and len(context) + len(question) > self.max_chars:
            from unified_agents import HTTPError

            raise HTTPError(413, f'"question" and "context" have {len(context) + len(question)}'
                                 f" characters; allowed: at most {self.max_chars} "
                                 "(LLM_MAX_PROMPT_CHARS)")
        max_tokens = integer(task, "max_tokens", self.max_tokens, 1, 32768)
        temperature = number(task, "temperature", 0.0, 0.0, 2.0)
        ledger = self.ledger()
        reply = self.gateway.generate(ledger, messages(question, context),
                                      task_type=task["type"], max_tokens=max_tokens,
                                      temperature=temperature)
        answer, how = final_answer(reply)
        self.served += 1
        out = {"answer": answer, "steps": steps(reply), "reasoning": reply}
        if answer is None:
            out["reason"] = how
        else:
            out["answer_source"] = how
        out.update(ledger.summary())
        return out
