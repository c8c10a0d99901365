"""The layer around every model call: cache, de-duplication, accounting, progress.

``LLM.generate`` / ``LLM.loglikelihood`` (``base.py``) hand their requests to
:meth:`CallLayer.answer`, which

1. keys each request by everything that changes its answer (the model's
   identity + ``Request.key_payload()``; see ``cache.py``) and looks it up in
   the persistent cache: a hit is returned marked ``cached=True``;
2. sends each distinct miss to the backend once (identical requests within
   one call share one answer);
3. caches every answer the moment it arrives, so a crash or a failing server
   loses at most the answers still in flight;
4. counts calls, cache hits, tokens and seconds per role in ``usage``;
5. counts the answers of a backend that yields them as they arrive on a
   progress reporter when the caller asked for one (``progress.py``).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Callable

from .cache import CallCache, default_cache
from .progress import reported
from .usage import Usage


class CallLayer:
    """Cache + de-duplication + accounting + progress for one model object."""

    def __init__(self, cache: CallCache | str | os.PathLike | None, error: type[Exception]):
        if cache == "default":
            cache = default_cache()
        elif isinstance(cache, (str, os.PathLike)):
            cache = CallCache(cache)
        self.cache: CallCache | None = cache
        self.usage = Usage()
        self.error = error

    def answer(self, reqs: list, *, identity: dict, backend: Callable, restore: Callable,
               role: str, progress, kind: str, name: str) -> list:
        """Answers to ``reqs`` in order.  ``backend(misses)`` answers cache misses
        (a list, or ``(index, answer | exception)`` pairs as they arrive);
        ``restore(value, request)`` rebuilds an answer from its cached dict and
        raises TypeError/ValueError when the dict does not fit the request."""
        results: list = [None] * len(reqs)
        misses: dict[str, list[int]] = {}
        payloads: dict[str, dict] = {}
        hits = 0
        for i, r in enumerate(reqs):
            payload = {"model": identity, **r.key_payload()}
            key = CallCache.key_of(payload)
            if key in misses:                      # identical request within this call
                misses[key].append(i)
                continue
            value = None
            if self.cache is not None:
                value, err = self.cache.get(key, payload)
                if value is not None:
                    try:
                        results[i] = restore(value, r)
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
            self._answer_misses(reqs, misses, payloads, results, role, progress, kind,
                                backend, restore, name)
        return results

    def _answer_misses(self, reqs, misses, payloads, results, role, progress, kind,
                       backend, restore, name):
        keys = list(misses)
        todo = [reqs[misses[k][0]] for k in keys]
        t0 = time.perf_counter()
        fresh = backend(todo)
        items = (enumerate(fresh) if isinstance(fresh, list)
                 else reported(fresh, len(todo), progress, kind))
        done, error = 0, None
        try:
            for j, res in items:
                if isinstance(res, BaseException):
                    error = error or res
                    continue
                k = keys[j]
                value = asdict(res)
                if self.cache is not None:
                    self.cache.put(k, payloads[k], value)
                for n, i in enumerate(misses[k]):
                    results[i] = res if n == 0 else restore(value, reqs[i])
                done += 1
                computed = res.prompt_tokens_computed
                self.usage.add(role, calls=1, prompt_tokens=res.prompt_tokens,
                               prompt_tokens_computed=res.prompt_tokens if computed is None else computed,
                               completion_tokens=getattr(res, "completion_tokens", 0))
        finally:
            self.usage.add(role, seconds=time.perf_counter() - t0)
        if error is not None:
            if isinstance(error, self.error):
                raise self.error(f"{error} ({done} of {len(todo)} answers of this call arrived "
                                 "and are cached; running again resumes from them)") from None
            raise error
        if done != len(todo):
            raise self.error(f"{name} answered {done} of {len(todo)} requests")
