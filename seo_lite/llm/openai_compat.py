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

Label ranking (``answer_mode="rank"``) goes to ``POST <base_url>/completions``
as lm-evaluation-harness's ``local-completions`` does it (docs/reproduce.md):
with ``tokenizer=`` the chat prompt becomes ids x and each label ids y_j; one
request sends ``prompt=[x + y_1, ..., x + y_L]`` with ``echo=true``, and
log p(y_j | x) is the sum of ``token_logprobs[len(x) : len(x) + len(y_j)]``.

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

from .base import LLM, Completion, LLMError, Loglikelihoods, LoglikelihoodRequest, Request
from .hf import ChatTokens
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


class OpenAICompatLLM(ChatTokens, LLM):
    """A model behind an OpenAI-compatible chat-completions endpoint."""

    backend = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, max_retries: int = 5, timeout: float = 60.0,
                 tokenizer: str | None = None, context_window: int | None = None,
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
        if context_window is not None and (isinstance(context_window, bool)
                                           or int(context_window) < 1):
            raise LLMError(f"context_window must be >= 1 tokens, got {context_window!r}")
        self.context_window = None if context_window is None else int(context_window)
        self.tokenizer_source = str(tokenizer).strip() if tokenizer else None
        self.supports_loglikelihood = self.tokenizer_source is not None
        self._tokenizer = None
        self._probed = False

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
        ident = {"backend": self.backend, "model": self.model, "base_url": self.base_url}
        if self.tokenizer_source:            # it makes the token ids of label ranking
            ident["tokenizer"] = self.tokenizer_source
        return ident

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model} at {self.base_url}>"

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
        return self._pooled(requests, self._one)

    def _pooled(self, requests: list, one):
        """``one(request)`` for every request on the thread pool, yielding
        ``(index, answer | LLMError)`` as answers arrive.  After the first persistent
        failure, requests not yet sent are dropped; those in flight finish and are
        kept (the call layer caches each one)."""
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests)),
                                  thread_name_prefix="seo_lite-openai")
        try:
            futures: dict[Future, int] = {pool.submit(one, r): i
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
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _one(self, r: Request) -> Completion:
        t0 = time.perf_counter()
        resp = self._retrying(self._client.chat.completions.create, self._request_kwargs(r),
                              "chat completion")
        out = self._parse(resp, time.perf_counter() - t0)
        out.text, cut = cut_reply(out.text, r.params)    # a server cannot stop there: cut the text
        out.finish_reason = "stop" if cut else out.finish_reason
        return out

    def _retrying(self, create, kwargs: dict, what: str) -> Any:
        """One SDK call, its failures as :class:`LLMError`; a damaged answer (a JSON
        body that does not parse) is retried like the SDK retries a cut connection."""
        import openai

        for n in range(self.max_retries + 1):
            try:
                return create(**kwargs)
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
            except ValueError as e:        # a JSON body that does not parse: damaged in transit
                if n == self.max_retries:
                    raise self._error(
                        f"malformed response, not a JSON {what} ({e}) after "
                        f"{n + 1} attempt(s) (max_retries={self.max_retries})") from None
                time.sleep(min(0.5 * 2 ** n, 8.0) * (1 - 0.25 * random.random()))
            except openai.OpenAIError as e:
                raise self._error(f"{type(e).__name__}: {e}") from None
        raise AssertionError("unreachable")

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

    # -- label log-likelihoods over /completions ---------------------------------------
    PROBE_TEXT = "Label ranking needs the log-probability of every prompt token."

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]):
        """Yield ``(index, Loglikelihoods | LLMError)`` as answers arrive, one
        completions request per prompt (all its labels in it); probe first."""
        if not self.supports_loglikelihood:
            raise LLMError(
                f"{self.base_url} cannot compute log-likelihoods for label ranking "
                "(answer_mode='rank') without the served model's tokenizer: pass "
                "tokenizer=<Hub id or local folder> "
                "(--generator-option tokenizer=...), and a server that returns prompt "
                "log-probs (vLLM's /v1/completions does)")
        self.probe_loglikelihood()
        return self._pooled(requests, self._one_loglikelihood)

    def request_tokens(self, r) -> tuple[int, int] | None:
        if self.tokenizer_source is None:
            return None
        if isinstance(r, Request):
            return len(self._encode(self.render(r.messages))), r.params.max_new_tokens
        ctx, conts = self._loglikelihood_inputs(r)
        return len(ctx), max(len(c) for c in conts) + 1     # + the one token asked for

    @property
    def tokenizer(self):
        """The served model's tokenizer (option ``tokenizer``), loaded once."""
        if self._tokenizer is None:
            if self.tokenizer_source is None:
                raise LLMError("no tokenizer: pass tokenizer=<Hub id or local folder>")
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_source)
            except (OSError, ValueError) as e:
                raise LLMError(f"could not load tokenizer {self.tokenizer_source!r} (a Hub id "
                               f"needs a network; a local folder needs tokenizer files): "
                               f"{str(e).splitlines()[0]}") from None
        return self._tokenizer

    def _echo(self, prompts: list[list[int]]) -> Any:
        kwargs = {"model": self.model, "prompt": prompts, "echo": True, "logprobs": 1,
                  "max_tokens": 1, "temperature": 0}
        return self._retrying(self._client.completions.create, kwargs, "completion")

    def probe_loglikelihood(self) -> None:
        """Check once that the server echoes a log-prob for every prompt token;
        raise one line saying what it lacks if not."""
        if self._probed:
            return
        ids = self._encode(self.PROBE_TEXT)
        why = "cannot rank labels (answer_mode='rank'): "
        need = ("label ranking needs echo=true with logprobs on /completions, which vLLM "
                "serves and chat-only endpoints, the llama.cpp server and Ollama do not")
        try:
            resp = self._echo([ids])
        except LLMError as e:
            reason = str(e).split(": ", 1)[-1].rstrip(".")
            raise LLMError(f"{self.base_url} {why}its /completions endpoint failed "
                           f"({reason}); {need}") from None
        try:
            got = _token_logprobs(resp, 0)
        except ValueError as e:
            raise LLMError(f"{self.base_url} {why}{e}; {need}") from None
        if len(got) < len(ids) or any(not isinstance(x, (int, float)) for x in got[1:len(ids)]):
            raise LLMError(f"{self.base_url} {why}it returned {len(got)} log-probs for a prompt "
                           f"of {len(ids)} tokens; {need}")
        self._probed = True

    def _one_loglikelihood(self, r: LoglikelihoodRequest) -> Loglikelihoods:
        t0 = time.perf_counter()
        ctx, conts = self._loglikelihood_inputs(r)
        resp = self._echo([ctx + c for c in conts])
        totals = []
        for j, c in enumerate(conts):
            try:
                lps = _token_logprobs(resp, j)[len(ctx):len(ctx) + len(c)]
            except ValueError as e:
                raise self._error(f"malformed completion: {e}") from None
            if len(lps) != len(c) or not all(isinstance(x, (int, float)) for x in lps):
                raise self._error(f"the server returned {len(lps)} log-probs for a label of "
                                  f"{len(c)} tokens")
            totals.append(float(sum(lps)))
        return Loglikelihoods(logprobs=totals, token_counts=[len(c) for c in conts],
                              prompt_tokens=len(ctx), latency_s=time.perf_counter() - t0)

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
        if status == 400 and "maximum context length" in str(detail).lower():
            return (f"HTTP 400 {tries}: a prompt is longer than the model's context window "
                    f"({str(detail).rstrip('.')}). Use shorter inputs or cut them with the task "
                    "option max_input_chars; context_window=N (with tokenizer=...) refuses such "
                    "prompts before they are sent")
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


def _token_logprobs(resp: Any, index: int) -> list:
    """``token_logprobs`` of the choice with ``index`` (servers may reorder choices)."""
    if isinstance(resp, str):
        raise ValueError(f"the answer is not JSON: {resp[:80]!r}")
    for choice in getattr(resp, "choices", None) or []:
        if getattr(choice, "index", None) == index:
            values = getattr(getattr(choice, "logprobs", None), "token_logprobs", None)
            if not isinstance(values, list):
                raise ValueError("it returned no token_logprobs for the prompt")
            return values
    raise ValueError(f"no choice with index {index} in the answer")


def _count(usage: Any, field: str) -> int:
    value = getattr(usage, field, None) if usage is not None else None
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


__all__ = ["OpenAICompatLLM", "public_url"]
