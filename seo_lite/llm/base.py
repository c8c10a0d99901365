"""One interface for every model: ``LLM.generate(requests) -> completions``.

SEO talks to two frozen models, the generator M_gen and the optimizer M_opt.
Both are an :class:`LLM`, whatever runs them (the embedded CPU model,
transformers on a GPU, an OpenAI-compatible server).  A request is

    chat messages + :class:`GenParams` + a *sample index*

and the answer is a :class:`Completion` (text, token counts, latency, and
whether it came from the cache).  Sampling k candidates at temperature > 0
means k requests with sample indices 0..k-1: k independent samples, each
cached under its own key, never k cache hits of one answer.

A second call, :meth:`LLM.score`, returns log p(continuation | prompt) for a
few fixed continuations (class labels): the "label scoring" that evaluation
harnesses use and that the small embedded model needs.

The base class owns everything backends share: the persistent cache (see
``cache.py``), de-duplication of identical requests within one call, and usage
accounting per role ("generator", "optimizer", ...).  A backend implements
only ``_generate`` (and ``_score`` where it can) on cache misses.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from .cache import CallCache, default_cache

Message = Mapping[str, str]


class LLMError(RuntimeError):
    """A model could not be built or could not answer (clear message, no secrets)."""


@dataclass(frozen=True)
class GenParams:
    """Generation parameters; every field is part of the cache key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if int(self.max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

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
        requests share one entry (they would be identical anyway)."""
        p = asdict(self.params)
        p["stop"] = list(p["stop"])
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
class ScoreRequest:
    """Score fixed continuations (e.g. class labels) of one chat prompt."""

    messages: tuple[dict, ...]
    continuations: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "messages", _freeze_messages(self.messages))
        conts = tuple(str(c) for c in self.continuations)
        if not conts or any(not c for c in conts):
            raise ValueError("score needs at least one non-empty continuation")
        object.__setattr__(self, "continuations", conts)

    def key_payload(self) -> dict:
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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scores:
    """Summed log-probabilities of each continuation given the prompt."""

    logprobs: list[float]
    token_counts: list[int]
    prompt_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False

    @property
    def best(self) -> int:
        return max(range(len(self.logprobs)), key=lambda i: self.logprobs[i])

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RoleUsage:
    calls: int = 0            # requests a model actually answered
    cache_hits: int = 0       # requests answered from the cache
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0      # wall time spent in the model
    cache_errors: int = 0     # unreadable cache entries (recomputed)


class Usage:
    """Per-role accounting, shared by every call of one LLM; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.roles: dict[str, RoleUsage] = {}

    def add(self, role: str, **delta):
        with self._lock:
            u = self.roles.setdefault(role, RoleUsage())
            for k, v in delta.items():
                setattr(u, k, getattr(u, k) + v)

    def to_dict(self) -> dict[str, dict]:
        with self._lock:
            return {r: asdict(u) for r, u in sorted(self.roles.items())}

    def total(self) -> RoleUsage:
        t = RoleUsage()
        for u in self.to_dict().values():
            for k, v in u.items():
                setattr(t, k, getattr(t, k) + v)
        return t

    @staticmethod
    def diff(after: dict, before: dict) -> dict:
        """Usage between two ``to_dict()`` snapshots (e.g. one SEO step)."""
        out = {}
        for role, a in after.items():
            b = before.get(role, {})
            d = {k: (round(v - b.get(k, 0), 4) if isinstance(v, float) else v - b.get(k, 0))
                 for k, v in a.items()}
            if any(d.values()):
                out[role] = d
        return out

    def __str__(self) -> str:
        rows = [f"{'role':<11}{'calls':>7}{'cached':>8}{'prompt tok':>12}{'output tok':>12}{'seconds':>9}"]
        for role, u in self.to_dict().items():
            rows.append(f"{role:<11}{u['calls']:>7}{u['cache_hits']:>8}{u['prompt_tokens']:>12}"
                        f"{u['completion_tokens']:>12}{u['seconds']:>9.1f}")
        return "\n".join(rows)


def merge_usage(*llms: "LLM") -> dict[str, dict]:
    """One usage table for several models (generator and optimizer may be one
    object; it is counted once)."""
    seen, out = set(), {}
    for llm in llms:
        if id(llm.usage) in seen:
            continue
        seen.add(id(llm.usage))
        for role, u in llm.usage.to_dict().items():
            acc = out.setdefault(role, {k: 0 for k in u})
            for k, v in u.items():
                acc[k] += v
    return out


class LLM(ABC):
    """A frozen model.  Subclasses implement ``_generate`` and ``identity``."""

    backend: str = "base"
    supports_scoring: bool = False

    def __init__(self, cache: CallCache | str | os.PathLike | None = "default"):
        if cache == "default":
            cache = default_cache()
        elif isinstance(cache, (str, os.PathLike)):
            cache = CallCache(cache)
        self.cache: CallCache | None = cache
        self.usage = Usage()
        self._identity_key: str | None = None

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

    def _score(self, requests: list[ScoreRequest]) -> list[Scores]:
        raise LLMError(
            f"the {self.backend!r} backend cannot score continuations; label scoring "
            "(answer_mode='score') needs a local model: 'embedded' or 'hf:<model>'")

    # -- the public calls ---------------------------------------------------------
    @property
    def name(self) -> str:
        ident = self.identity()
        return str(ident.get("model", self.backend))

    def _key(self, payload: dict) -> tuple[str, dict]:
        full = {"model": self.identity(), **payload}
        return CallCache.key_of(full), full

    def generate(self, requests: Sequence[Request] | Request, *, role: str = "generator",
                 progress: bool | str = False) -> list[Completion]:
        """Answer every request; cache hits are marked ``cached=True``."""
        single = isinstance(requests, Request)
        reqs = [requests] if single else list(requests)
        for r in reqs:
            if not isinstance(r, Request):
                raise TypeError(f"generate() takes Request objects, got {type(r).__name__}")
        out = self._cached_call(reqs, role, progress, kind="generate")
        return out[0] if single else out

    def score(self, requests: Sequence[ScoreRequest] | ScoreRequest, *, role: str = "generator",
              progress: bool | str = False) -> list[Scores]:
        """log p(continuation | prompt), summed over the continuation's tokens."""
        single = isinstance(requests, ScoreRequest)
        reqs = [requests] if single else list(requests)
        if reqs and not self.supports_scoring:
            self._score(reqs)  # raises the backend's clear error
        out = self._cached_call(reqs, role, progress, kind="score")
        return out[0] if single else out

    def chat(self, prompt: str | Sequence[Message], *, role: str = "generator", **params) -> str:
        """Convenience for notebooks: one prompt in, one text out."""
        sample_index = params.pop("sample_index", 0)
        return self.generate(Request(prompt, GenParams(**params), sample_index), role=role).text

    # -- shared machinery ---------------------------------------------------------
    def _cached_call(self, reqs, role, progress, kind):
        results: list = [None] * len(reqs)
        misses: dict[str, list[int]] = {}
        payloads: dict[str, dict] = {}
        hits = 0
        for i, r in enumerate(reqs):
            key, payload = self._key(r.key_payload())
            if key in misses:                      # identical request within this call
                misses[key].append(i)
                continue
            value = None
            if self.cache is not None:
                value, err = self.cache.get(key, payload)
                if value is not None:
                    try:
                        results[i] = _from_cache(kind, value, r)
                    except (TypeError, ValueError) as e:   # parses, but is not an answer
                        value, err = None, self.cache.reject(key, f"{type(e).__name__}: {e}")
                if err:
                    self.usage.add(role, cache_errors=1)
            if value is not None:
                hits += 1
            else:
                misses[key] = [i]
                payloads[key] = payload
        if hits:
            self.usage.add(role, cache_hits=hits)
        if misses:
            self._answer_misses(reqs, misses, payloads, results, role, progress, kind)
        return results

    def _answer_misses(self, reqs, misses, payloads, results, role, progress, kind):
        """Ask the backend; cache every answer the moment it arrives, so a crash
        or a failing server loses at most the answers still in flight."""
        keys = list(misses)
        todo = [reqs[misses[k][0]] for k in keys]
        t0 = time.perf_counter()
        fresh = (self._generate if kind == "generate" else self._score)(
            _with_progress(todo, progress, kind))
        items = enumerate(fresh) if isinstance(fresh, list) else fresh
        done, error = 0, None
        try:
            for j, res in items:
                if isinstance(res, BaseException):
                    error = error or res
                    continue
                k = keys[j]
                if self.cache is not None:
                    self.cache.put(k, payloads[k], res.to_dict())
                for n, i in enumerate(misses[k]):
                    results[i] = res if n == 0 else _from_cache(kind, res.to_dict())
                done += 1
                self.usage.add(role, calls=1, prompt_tokens=res.prompt_tokens,
                               completion_tokens=getattr(res, "completion_tokens", 0))
        finally:
            self.usage.add(role, seconds=time.perf_counter() - t0)
        if error is not None:
            if isinstance(error, LLMError):
                raise LLMError(f"{error} ({done} of {len(todo)} answers of this call arrived "
                               "and are cached; running again resumes from them)") from None
            raise error
        if done != len(todo):
            raise LLMError(f"{self.backend} answered {done} of {len(todo)} requests")

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


class _ProgressList(list):
    """A list that carries a progress-bar description for the backend to use."""

    desc: str = ""


def _with_progress(items: list, progress: bool | str, kind: str) -> list:
    if not progress:
        return items
    pl = _ProgressList(items)
    pl.desc = progress if isinstance(progress, str) else kind
    return pl


def progress_desc(items: list) -> str | None:
    """The description a caller attached with ``progress=...``, or None."""
    return getattr(items, "desc", None) or None


def progress_bar(items: list):
    """A tqdm bar over ``items`` when the caller asked for progress, else None."""
    desc = progress_desc(items)
    if not desc or not items:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=len(items), desc=desc, leave=False)


def _from_cache(kind: str, value: dict, request=None):
    """A cached answer as a Completion / Scores, checked against the request
    it is for; a value of the wrong shape raises TypeError or ValueError (the
    caller treats the entry as corrupt and asks the model again)."""
    value = dict(value)
    value["cached"] = True
    value["latency_s"] = 0.0
    if kind == "generate":
        out = Completion(**value)
        if not isinstance(out.text, str):
            raise TypeError(f"cached text is {type(out.text).__name__}, not str")
        return out
    out = Scores(**value)
    want = len(request.continuations) if request is not None else len(out.logprobs)
    if (not isinstance(out.logprobs, list) or len(out.logprobs) != want
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in out.logprobs)):
        raise ValueError(f"cached logprobs {str(out.logprobs)[:80]} do not fit {want} continuations")
    return out


__all__ = ["GenParams", "Request", "ScoreRequest", "Completion", "Scores", "LLM",
           "LLMError", "Usage", "RoleUsage", "merge_usage", "progress_desc", "progress_bar"]
