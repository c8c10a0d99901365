"""OpenAI-compatible backend: any chat-completions server through the ``openai`` SDK.

``OpenAICompatLLM("gpt-4o-mini")`` talks to the OpenAI API;
``OpenAICompatLLM("llama-2-7b-chat", base_url="http://gpu-box:8000/v1")`` talks
to vLLM, TGI, Ollama or a llama.cpp server: this is how seo_lite scales out,
without serving models itself.

Mechanism.  Each cache miss becomes one ``POST <base_url>/chat/completions``
with ``n=1`` and the request's ``temperature``, ``top_p``, ``max_tokens``,
``stop`` and ``seed``.  Sample index i of a sampled request (temperature > 0)
is sent with its own seed, ``Request.sampling_seed()`` cut to 31 bits, so k
candidates are k different draws (on servers that honour ``seed``, repeatable
ones); a greedy request sends ``params.seed``.  Requests run on a thread pool
of ``concurrency`` workers sharing one HTTP connection pool, and answers are
returned in request order.  A server cannot stop at the end of a numbered
list (``GenParams.stop_list_after``) or of a task's answer
(``GenParams.answer_end``): no stop string says exactly where those end (a
blank line ends a translation only after a preamble), so that cut is made on
the returned text, as the local backend makes it (``stopping.cut_reply``).

Retries are mostly the SDK's own (``max_retries``): it retries connection
errors (a cut or dropped connection), timeouts, 408, 409, 429 and every 5xx,
waiting 0.5 s * 2**retry (at most 8 s, minus up to 25 % jitter) or the
server's ``Retry-After`` / ``retry-after-ms`` when that is between 0 and 120
s; ``max_retries=N`` means at most N + 1 attempts.

The SDK does not retry a *damaged* answer: status 200, ``Content-Type: json``,
but a body that does not parse (a proxy or an overloaded server cut it
short).  That is the same transient fault as a cut connection, and asking
again is safe (a chat completion changes nothing on the server), so this
backend retries it too, with the same budget and the same backoff: at most
``max_retries`` more attempts.  A body that parses but is not a chat
completion, or is not JSON at all (``base_url`` points at something else), is
not transient and fails at once.  What is left after the retries -- retries
exhausted, a 4xx such as 401 or 404, a body that is not a chat completion --
is raised as :class:`LLMError` naming the server and the HTTP status.

Secrets: the API key goes to the SDK client and nowhere else.  It is not in
``identity()`` (hence not in any cache key or cache file), not in ``repr()``,
and it is blanked out of error messages, even when a server echoes it.
"""
from __future__ import annotations

import os
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .base import LLM, Completion, LLMError, Request
from .progress import progress_bar
from .stopping import cut_reply

DEFAULT_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "not-needed"      # local servers (vLLM, llama.cpp) ignore the key
SEED_MASK = (1 << 31) - 1           # servers take a signed 32-bit (or smaller) seed


def public_url(url: str) -> str:
    """``url`` without user:password, query string or fragment, and without a
    trailing slash: safe to print and to put in a cache key."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        raise LLMError("base_url has an invalid port; it should look like "
                       "http(s)://host[:port]/v1") from None
    host = parts.hostname or ""
    if ":" in host:                                   # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class OpenAICompatLLM(LLM):
    """A model behind an OpenAI-compatible chat-completions endpoint."""

    backend = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 60.0,
                 cache="default"):
        super().__init__(cache)
        if not isinstance(model, str) or not model.strip():
            raise LLMError(f"the openai backend needs a model name, got {model!r}")
        if int(concurrency) < 1:
            raise LLMError(f"concurrency must be >= 1, got {concurrency}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise LLMError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if not float(timeout) > 0:
            raise LLMError(f"timeout must be > 0 seconds, got {timeout}")
        self.model = model.strip()
        self.concurrency = int(concurrency)
        self.max_retries = max_retries
        self.timeout = float(timeout)

        url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if url is None:
                raise LLMError(
                    f"openai:{self.model} has no API key: set OPENAI_API_KEY (or pass api_key=...) "
                    "for the OpenAI API, or pass base_url='http://host:port/v1' (or set "
                    "OPENAI_BASE_URL) for a local OpenAI-compatible server that needs no key")
            key = PLACEHOLDER_KEY
        self.base_url = public_url(url or DEFAULT_BASE_URL)
        if urlsplit(self.base_url).scheme not in ("http", "https") or not urlsplit(self.base_url).hostname:
            raise LLMError(f"base_url must look like http(s)://host[:port]/v1, got {self.base_url!r}")

        import openai

        # The client is the only holder of the key (the SDK needs it for every request).
        self._client = openai.OpenAI(base_url=url or DEFAULT_BASE_URL, api_key=key,
                                     max_retries=max_retries, timeout=self.timeout)

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model} at {self.base_url}>"

    def close(self) -> None:
        """Close the HTTP connection pool (the object cannot answer afterwards)."""
        self._client.close()

    # -- generation ---------------------------------------------------------------
    def _request_kwargs(self, r: Request) -> dict[str, Any]:
        p = r.params
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in r.messages],
            "n": 1,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": int(p.max_new_tokens),
            "seed": (r.sampling_seed() & SEED_MASK) if not p.greedy else int(p.seed),
        }
        if p.stop:
            kwargs["stop"] = list(p.stop)
        return kwargs

    def _generate(self, requests: list[Request]):
        """Yield ``(index, Completion | LLMError)`` as answers arrive.  After the
        first persistent failure, requests not yet sent are dropped; those in
        flight finish and are kept (the base class caches each one)."""
        bar = progress_bar(requests)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)),
                                  thread_name_prefix="seo_lite-openai")
        try:
            futures: dict[Future, int] = {pool.submit(self._one, r): i
                                          for i, r in enumerate(requests)}
            failed = False
            for f in as_completed(futures):
                if f.cancelled():
                    continue
                err = f.exception()
                if err is not None and not failed:
                    failed = True
                    for g in futures:
                        g.cancel()
                yield futures[f], (err if err is not None else f.result())
                if bar:
                    bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if bar:
                bar.close()

    def _one(self, r: Request) -> Completion:
        """One request, retrying a damaged (unparseable JSON) answer like the SDK
        retries a cut connection."""
        t0 = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._attempt(r)
            except _Damaged as e:
                if attempt == self.max_retries:
                    raise self._error(
                        f"malformed response, not a JSON chat completion ({e}) after "
                        f"{attempt + 1} attempt(s) (max_retries={self.max_retries})") from None
                time.sleep(min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random()))
                continue
            out = self._parse(resp, time.perf_counter() - t0)
            out.text, cut = cut_reply(out.text, r.params)    # a server cannot stop there
            out.finish_reason = "stop" if cut else out.finish_reason
            return out
        raise AssertionError("unreachable")

    def _attempt(self, r: Request) -> Any:
        import openai

        try:
            return self._client.chat.completions.create(**self._request_kwargs(r))
        except openai.APIStatusError as e:
            raise self._error(self._status_reason(e)) from None
        except openai.APITimeoutError as e:
            raise self._error(
                f"no answer within timeout={self.timeout:g} s {self._attempts(e)}; "
                "raise timeout= for slow servers") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause else str(e)
            raise self._error(f"connection failed {self._attempts(e)}: {detail}. "
                              "Is the server running at that address?") from None
        except ValueError as e:            # a JSON body that does not parse: damaged in transit
            raise _Damaged(str(e)) from None
        except openai.OpenAIError as e:
            raise self._error(f"{type(e).__name__}: {e}") from None

    def _parse(self, resp: Any, latency: float) -> Completion:
        if isinstance(resp, str):          # the SDK hands back a non-JSON body as text
            raise self._error(f"malformed response, not a JSON chat completion: {resp[:200]!r}")
        try:
            choice = resp.choices[0]
            content = choice.message.content
            finish = choice.finish_reason or "stop"
        except (AttributeError, IndexError, KeyError, TypeError) as e:
            raise self._error(
                f"malformed response, no choices[0].message ({type(e).__name__}: {e}): "
                f"{str(resp)[:200]}") from None
        if content is not None and not isinstance(content, str):
            raise self._error(f"malformed response, message content is {type(content).__name__}")
        usage = getattr(resp, "usage", None)
        return Completion(
            text=content or "",
            prompt_tokens=_count(usage, "prompt_tokens"),
            completion_tokens=_count(usage, "completion_tokens"),
            latency_s=latency,
            finish_reason=str(finish))

    # -- errors -------------------------------------------------------------------
    def _status_reason(self, e: Any) -> str:
        status = e.status_code
        detail = e.message
        body = e.body
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict) and err.get("message"):
                detail = str(err["message"])
            elif isinstance(err, str):
                detail = err
        tries = self._attempts(e)
        hint = {401: " Check OPENAI_API_KEY / api_key.",
                403: " The key has no access to this model or endpoint.",
                404: f" Check the model name {self.model!r} and that base_url ends in /v1.",
                429: " Rate limited: lower concurrency= or raise max_retries=."}.get(status, "")
        return f"HTTP {status} {tries}: {str(detail).rstrip('.')}.{hint}"

    def _attempts(self, e: Any) -> str:
        """How many attempts the SDK made, read from the retry counter it sends
        with each attempt (``x-stainless-retry-count``)."""
        try:
            request = e.response.request if getattr(e, "response", None) is not None else e.request
            taken = int(request.headers.get("x-stainless-retry-count", ""))
        except (AttributeError, RuntimeError, TypeError, ValueError):
            return f"(max_retries={self.max_retries})"
        return f"after {taken + 1} attempt(s) (max_retries={self.max_retries})"

    def _error(self, reason: str) -> LLMError:
        key = getattr(self._client, "api_key", None)
        if isinstance(key, str) and len(key) >= 4 and key != PLACEHOLDER_KEY:
            reason = reason.replace(key, "<api key>")
        return LLMError(f"OpenAI-compatible server {self.base_url} (model {self.model!r}): {reason}")


class _Damaged(Exception):
    """A 200 answer whose JSON body does not parse (retried)."""


def _count(usage: Any, field: str) -> int:
    value = getattr(usage, field, None) if usage is not None else None
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


__all__ = ["OpenAICompatLLM", "public_url"]
