"""A scripted model: answers chosen by the test, for unit tests of decision logic.

It speaks the real LLM interface (so the cache, usage accounting and SEO's
code run unchanged); only the answers are decided by functions the test
passes in.  Never used where the real embedded model can run.
"""
from __future__ import annotations

from typing import Callable

from seo_lite.llm.base import LLM, Completion, Loglikelihoods, LoglikelihoodRequest, Request


class ScriptedLLM(LLM):
    backend = "scripted"
    supports_loglikelihood = True

    def __init__(self, reply: Callable[[Request], str],
                 score: Callable[[LoglikelihoodRequest], list[float]] | None = None,
                 name: str = "scripted", cache=None):
        super().__init__(cache)
        self.reply, self.score_fn, self._name = reply, score, name
        self.seen: list[Request | LoglikelihoodRequest] = []

    def identity(self) -> dict:
        return {"backend": "scripted", "model": self._name}

    def _generate(self, requests: list[Request]) -> list[Completion]:
        self.seen.extend(requests)
        return [Completion(text=self.reply(r), prompt_tokens=1, completion_tokens=1) for r in requests]

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[Loglikelihoods]:
        if self.score_fn is None:
            return super()._loglikelihood(requests)
        self.seen.extend(requests)
        out = []
        for r in requests:
            lp = self.score_fn(r)
            out.append(Loglikelihoods(logprobs=lp, token_counts=[1] * len(lp), prompt_tokens=1))
        return out

    def user_text(self, r) -> str:
        return r.messages[-1]["content"]
