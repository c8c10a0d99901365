"""One interface for every model: ``LLM.generate(requests) -> completions``.

SEO talks to two frozen models, the generator M_gen and the optimizer M_opt.
Both are an :class:`LLM`, whatever runs them (the embedded CPU model,
transformers on a GPU, an OpenAI-compatible server).  A request is

    chat messages + :class:`GenParams` + a *sample index*

and the answer is a :class:`Completion` (text, token counts, latency, and
whether it came from the cache).  Sampling k candidates at temperature > 0
means k requests with sample indices 0..k-1: k independent samples, never k
copies of one answer.

A second call, :meth:`LLM.loglikelihood`, returns for one prompt x and a few
fixed continuations y_1..y_L (class labels)

    log p(y_j | x) = sum_t log p(y_j,t | x, y_j,<t)

the "label ranking" that evaluation harnesses use and that the small embedded
model needs.

This module is the interface.  A backend implements ``identity`` and
``_generate`` (and ``_loglikelihood`` where it can) for requests the cache
could not answer.  What sits around those calls -- the persistent cache,
de-duplication of identical requests, usage accounting per role, progress --
is ``cached.py`` (:class:`~seo_lite.llm.cached.CallLayer`); a learner can
skip it: it changes what a call costs, never what it answers.
"""
from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from .cache import CallCache
from .cached import CallLayer
from .usage import RoleUsage, Usage, merge_usage  # noqa: F401  (re-exported)

Message = Mapping[str, str]


class LLMError(RuntimeError):
    """A model could not be built or could not answer (clear message, no secrets)."""


class ContextWindowError(LLMError):
    """A request does not fit the model's context window (raised before any
    compute).  ``request`` is the offending request, so a task can name its
    example; ``tokens`` its prompt, ``reserve`` the tokens it needs after the
    prompt (new tokens, or the longest continuation), ``window`` the limit."""

    def __init__(self, message: str, *, request=None, tokens: int = 0, reserve: int = 0,
                 window: int = 0):
        super().__init__(message)
        self.request, self.tokens, self.reserve, self.window = request, tokens, reserve, window


@dataclass(frozen=True)
class GenParams:
    """Generation parameters; every field is part of the cache key.

    ``stop_list_after=N`` (0: off) ends the answer once it holds a numbered or
    bulleted list that is over: N distinct items are complete, or a line that
    is neither an item nor an indented continuation follows the list.  The
    optimizer uses it: it writes a list of at most ``max_rules`` rules, and
    whatever follows the list is never read (see ``stopping.py``).

    ``answer_end=(rule, *args)`` (empty: off) ends the answer where the task's
    parser can read no more: a rule registered by the task family beside its
    parser (``stopping.ANSWER_ENDS``), e.g. ``("translation", "French", "fr")``:
    the first paragraph after any preamble line is over.

    ``stop_repeats=N`` (0: off) ends a degenerate loop: once the reply holds a
    stretch of text (2-80 characters with a letter) N times in a row,
    it is cut after the first copy (``stopping.repeat_end``).  Unlike the two
    rules above it changes what a parser reads, but only in replies that loop."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int = 0
    stop_list_after: int = 0
    answer_end: tuple[str, ...] = ()
    stop_repeats: int = 0

    def __post_init__(self):
        for name in ("stop", "answer_end"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        if not all(isinstance(x, str) for x in self.answer_end):
            raise ValueError(f"answer_end must be a rule name and string arguments, "
                             f"got {self.answer_end!r}")
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if int(self.max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if int(self.stop_list_after) < 0:
            raise ValueError(f"stop_list_after must be >= 0, got {self.stop_list_after}")
        if int(self.stop_repeats) < 0 or int(self.stop_repeats) == 1:
            raise ValueError(f"stop_repeats must be 0 (off) or >= 2, got {self.stop_repeats}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _freeze_messages(messages: Iterable[Message] | str) -> tuple[dict, ...]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    out = []
    for m in messages:
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ValueError(f"a chat message needs 'role' and 'content', got {m!r}")
        if m["role"] not in ("system", "user", "assistant"):
            raise ValueError(f"unknown chat role {m['role']!r} (system, user, assistant)")
        out.append({"role": str(m["role"]), "content": str(m["content"])})
    if not out:
        raise ValueError("a request needs at least one chat message")
    return tuple(out)


@dataclass(frozen=True)
class Request:
    """Chat messages + generation parameters + a sample index.

    ``prefix`` (optional) is text the answer is made to start with ("assistant
    prefill"): local backends put it after the chat template's generation
    prompt and return ``prefix + continuation``.  It steers small models into
    a format (a numbered list); OpenAI-compatible servers have no standard way
    to continue a partial answer, so they receive the messages only."""

    messages: tuple[dict, ...]
    params: GenParams = GenParams()
    sample_index: int = 0
    prefix: str = ""

    def __post_init__(self):
        object.__setattr__(self, "messages", _freeze_messages(self.messages))
        if int(self.sample_index) < 0:
            raise ValueError("sample_index must be >= 0")

    def key_payload(self) -> dict:
        """What changes the answer.  Under greedy decoding the seed, top_p and
        sample index cannot change it, so they are left out and k greedy
        requests share one entry (they would be identical anyway).  A parameter
        at its default is left out too, so adding a parameter keeps every
        existing cache entry valid."""
        p = asdict(self.params)
        p["stop"], p["answer_end"] = list(p["stop"]), list(p["answer_end"])
        for name in ("stop_list_after", "answer_end", "stop_repeats"):
            if not p[name]:
                p.pop(name)
        payload = {"kind": "generate", "messages": list(self.messages), "params": p}
        if self.prefix:
            payload["prefix"] = self.prefix
        if self.params.greedy:
            p.pop("seed"), p.pop("top_p")
        else:
            payload["sample_index"] = int(self.sample_index)
        return payload

    def sampling_seed(self) -> int:
        """A per-request seed: the same request samples the same text whatever
        batch it runs in, and sample indices 0..k-1 sample independently."""
        blob = json.dumps([self.params.seed, self.sample_index, list(self.messages)]
                          + ([self.prefix] if self.prefix else []), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Fixed continuations (e.g. class labels) of one chat prompt, to be ranked
    by log p(continuation | prompt)."""

    messages: tuple[dict, ...]
    continuations: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "messages", _freeze_messages(self.messages))
        conts = tuple(str(c) for c in self.continuations)
        if not conts or any(not c for c in conts):
            raise ValueError("a log-likelihood request needs at least one non-empty continuation")
        object.__setattr__(self, "continuations", conts)

    def key_payload(self) -> dict:
        # "score" is this call's name in cache entries written before it was
        # renamed; keeping it keeps every cached answer valid.
        return {"kind": "score", "messages": list(self.messages),
                "continuations": list(self.continuations)}


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    finish_reason: str = "stop"
    prompt_tokens_computed: int | None = None   # None: all of prompt_tokens ran


@dataclass
class Loglikelihoods:
    """Summed log-probabilities of each continuation given the prompt."""

    logprobs: list[float]
    token_counts: list[int]
    prompt_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    prompt_tokens_computed: int | None = None   # None: all of prompt_tokens ran

    @property
    def best(self) -> int:
        """Index of the most likely continuation (the first of equals)."""
        return max(range(len(self.logprobs)), key=lambda i: self.logprobs[i])


class LLM(ABC):
    """A frozen model: ``generate`` and ``loglikelihood`` (see the module docstring);
    the call layer around a backend's calls is ``self.calls``."""

    backend: str = "base"
    supports_loglikelihood: bool = False

    def __init__(self, cache: CallCache | str | os.PathLike | None = "default"):
        self.calls = CallLayer(cache, LLMError)

    # -- what a backend provides -------------------------------------------------
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything about the model that changes its answers (backend, model id
        and revision or file hash, quantization, dtype, device).  Never a secret."""

    @abstractmethod
    def _generate(self, requests: list[Request]):
        """Answer cache misses: a list of completions in request order, or an
        iterator of ``(index, Completion | Exception)`` as answers arrive (each is
        cached at once; a yielded exception is raised after the rest arrived)."""

    def request_tokens(self, request: Request | LoglikelihoodRequest) -> tuple[int, int] | None:
        """``(prompt tokens, tokens needed after it)`` of a request in this
        model's tokenizer -- after the prompt come ``max_new_tokens`` or the
        longest continuation -- or None where there is no tokenizer to ask."""
        return None

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]):
        """Like ``_generate``, with :class:`Loglikelihoods` answers."""
        raise LLMError(
            f"the {self.backend!r} backend cannot compute log-likelihoods; label ranking "
            "(answer_mode='rank') needs a local model ('embedded', 'hf:<model>') or a vLLM-like "
            "server ('openai:<model>' with tokenizer=...)")

    # -- the context window ---------------------------------------------------------
    #: the model's context window in tokens; None: unknown (nothing is checked)
    context_window: int | None = None

    def fits(self, n_tokens: int, reserve: int = 0) -> bool:
        """Does a prompt of ``n_tokens`` (+ ``reserve`` after it) fit this model's
        window?  An unknown window (None): yes."""
        return self.context_window is None or int(n_tokens) + int(reserve) <= int(self.context_window)

    def check_window(self, requests: Sequence[Request | LoglikelihoodRequest],
                     role: str = "generator") -> None:
        """Raise :class:`ContextWindowError` for the first request that does not
        fit the window.  Runs on the cache misses before the backend computes
        anything, so an over-long input costs nothing but its tokenization."""
        window = self.context_window
        if window is None:
            return
        for r in requests:
            counted = self.request_tokens(r)
            if counted is None:                 # no tokenizer: the server's own error will say
                return
            if self.fits(*counted):
                continue
            n, reserve = counted
            after = "new tokens" if isinstance(r, Request) else "label tokens"
            raise ContextWindowError(
                f"the {role}'s prompt is {n:,} tokens (+ {reserve} {after}), longer than the "
                f"context window of {self.name} ({window:,} tokens); shorten it, or cut long "
                "inputs with the task option max_input_chars", request=r, tokens=n,
                reserve=reserve, window=window)

    # -- the public calls ---------------------------------------------------------
    def generate(self, requests: Sequence[Request] | Request, *, role: str = "generator",
                 progress: bool | str = False) -> list[Completion]:
        """Answer every request, in order; cache hits are marked ``cached=True``."""
        return self._answer(requests, Request, self._generate, _completion_from_cache, role,
                            progress, "generate")

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest] | LoglikelihoodRequest, *,
                      role: str = "generator", progress: bool | str = False
                      ) -> list[Loglikelihoods]:
        """log p(continuation | prompt), summed over the continuation's tokens."""
        return self._answer(requests, LoglikelihoodRequest, self._loglikelihood,
                            _loglikelihoods_from_cache, role, progress, "loglikelihood")

    def _answer(self, requests, request_type, backend, restore, role, progress, kind):
        """One request or a list of ``request_type`` through the call layer; the window
        is checked on the cache misses before ``backend`` answers them."""
        single = isinstance(requests, request_type)
        reqs = [requests] if single else list(requests)
        for r in reqs:
            if not isinstance(r, request_type):
                raise TypeError(f"{kind}() takes {request_type.__name__} objects, got {type(r).__name__}")
        if reqs and kind == "loglikelihood" and not self.supports_loglikelihood:
            self._loglikelihood(reqs)  # raises the backend's clear error

        def run(misses):
            self.check_window(misses, role)
            return backend(misses)
        out = self.calls.answer(reqs, identity=self.identity(), backend=run, restore=restore,
                                role=role, progress=progress, kind=kind, name=self.backend)
        return out[0] if single else out

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` in this model's own tokenizer (a loaded local
        model), or None where there is none to ask (API models, scripted ones)."""
        return None

    @property
    def name(self) -> str:
        return str(self.identity().get("model", self.backend))

    @property
    def usage(self) -> Usage:
        """Calls, cache hits, tokens and seconds per role (see ``usage.py``)."""
        return self.calls.usage

    @property
    def cache(self) -> CallCache | None:
        return self.calls.cache

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


def _completion_from_cache(value: dict, request=None) -> Completion:
    """A cached answer as a Completion; a value of the wrong shape raises
    TypeError or ValueError (the entry is then treated as corrupt)."""
    out = Completion(**{**value, "cached": True, "latency_s": 0.0})
    if not isinstance(out.text, str):
        raise TypeError(f"cached text is {type(out.text).__name__}, not str")
    return out


def _loglikelihoods_from_cache(value: dict, request=None) -> Loglikelihoods:
    out = Loglikelihoods(**{**value, "cached": True, "latency_s": 0.0})
    want = len(request.continuations) if request is not None else len(out.logprobs)
    if (not isinstance(out.logprobs, list) or len(out.logprobs) != want
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in out.logprobs)):
        raise ValueError(f"cached logprobs {str(out.logprobs)[:80]} do not fit {want} continuations")
    return out


__all__ = ["GenParams", "Request", "LoglikelihoodRequest", "Completion", "Loglikelihoods",
           "LLM", "LLMError", "ContextWindowError", "Usage", "RoleUsage", "merge_usage"]
