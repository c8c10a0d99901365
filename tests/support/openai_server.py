"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests.

``serve(responder)`` starts a ``ThreadingHTTPServer`` on a free port in a
background thread and yields a :class:`ServerHandle`; leaving the ``with``
block stops it and joins every thread it started.  It speaks the part of the
protocol seo_lite uses:

* ``POST /v1/chat/completions`` -- body ``{model, messages, temperature,
  top_p, max_tokens, stop, seed, n}``; answers a ``chat.completion`` object
  (id, created, model, ``choices[0].message``, ``finish_reason``, ``usage``);
* ``GET /v1/models`` -- one model;
* any further ``POST`` route passed as ``routes={"/v1/completions": fn}``:
  ``fn(body) -> (status, payload)`` answers it (``vllm_server.py`` serves
  vLLM's completions with prompt log-probs this way); its requests are
  recorded and counted like chat requests and take the same faults (but
  ``cut``).

The answer comes from ``responder``: either a callable ``(messages, params)
-> str`` (or a dict with ``text`` and optionally ``prompt_tokens``,
``completion_tokens``, ``finish_reason``), or a seo_lite :class:`LLM`, which
is then served for real (one call at a time, through ``llm.generate``).

Faults are injected by chat-request number (1-based, every attempt counts):
``faults={1: "429", 2: "500"}``, a callable ``(number, body) -> kind | None``,
an iterator of kinds, or one kind string for every request.  Kinds:

* ``"429"`` -- rate limited, with ``Retry-After: 0``;
* ``"500"``, ``"503"`` -- server errors (OpenAI-style error JSON);
* ``"timeout"`` -- wait ``hang_s`` seconds (longer than the client's timeout)
  before answering; the client has given up by then;
* ``"cut"`` -- send the headers and half of the body, then close the socket;
* ``"drop"`` -- close the socket without any response;
* ``"malformed"`` -- 200, ``Content-Type: application/json``, with a body that
  does not parse (cut short, as a proxy might leave it);
* ``"html"`` -- 200 with an HTML page (``base_url`` points at a web server,
  not at an OpenAI-compatible API);
* ``"persistent-500"`` -- this request and every later one fail with 500
  (until ``set_faults`` is called).

With ``api_key=...``, a chat request without ``Authorization: Bearer <key>``
gets a 401 whose message echoes the presented key, as a careless server
might, so tests can check that the client never repeats it.

The handle records every chat request (``requests``: number, path, headers
without Authorization, JSON body, fault applied), counts them (``count``) and
tracks how many were being answered at once (``max_in_flight``).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator, Mapping, Union

FAULT_KINDS = ("429", "500", "503", "timeout", "cut", "drop", "malformed", "html", "persistent-500")

Responder = Callable[[list, dict], Union[str, Mapping[str, Any]]]
Faults = Union[None, str, Mapping[int, str], Callable[[int, dict], Union[str, None]], Iterable]


class ServerHandle:
    """What a test sees of a running server (thread-safe)."""

    def __init__(self, responder: Any, *, faults: Faults, api_key: str | None, model: str,
                 hang_s: float, routes: Mapping[str, Callable] | None = None):
        self._responder = responder
        self.routes = dict(routes or {})
        self._is_llm = hasattr(responder, "generate") and hasattr(responder, "identity")
        self._llm_lock = threading.Lock()
        self.api_key = api_key
        self.model = model
        self.hang_s = float(hang_s)
        self.base_url = ""
        self.requests: list[dict] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._persistent: str | None = None
        self.stopping = threading.Event()
        self._faults: Any = None
        self.set_faults(faults)

    # -- what tests use -------------------------------------------------------------
    @property
    def count(self) -> int:
        """Chat-completion requests received so far (every attempt counts)."""
        with self._lock:
            return len(self.requests)

    @property
    def bodies(self) -> list[dict]:
        with self._lock:
            return [r["body"] for r in self.requests]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault plan; also ends a persistent fault.  Request numbers
        keep counting from where they are."""
        if isinstance(faults, str):
            _check_kind(faults)
        elif isinstance(faults, Mapping):
            for kind in faults.values():
                _check_kind(kind)
        elif faults is not None and not callable(faults):
            faults = iter(faults)
        with self._lock:
            self._faults = faults
            self._persistent = None

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    # -- used by the handler --------------------------------------------------------
    def _admit(self, headers: Mapping[str, str], path: str, body: Any) -> tuple[int, str | None]:
        with self._lock:
            n = next(self._numbers)
            kind = self._persistent or self._fault_for(n, body)
            if kind == "persistent-500":
                self._persistent = kind
            self.requests.append({
                "number": n, "path": path, "fault": kind, "body": body,
                "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
            })
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return n, kind

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _fault_for(self, n: int, body: Any) -> str | None:
        f = self._faults
        if f is None:
            kind = None
        elif isinstance(f, str):
            kind = f
        elif isinstance(f, Mapping):
            kind = f.get(n)
        elif callable(f):
            kind = f(n, body)
        else:
            kind = next(f, None)
        if kind is not None:
            _check_kind(kind)
        return kind

    def _answer(self, body: dict) -> dict:
        """The responder's answer as {text, prompt_tokens, completion_tokens, finish_reason}."""
        messages = body["messages"]
        params = {k: body.get(k) for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "n")}
        if params["max_tokens"] is None:
            params["max_tokens"] = body.get("max_completion_tokens")
        if self._is_llm:
            return self._serve_llm(messages, params)
        out = self._responder(messages, params)
        if isinstance(out, str):
            out = {"text": out}
        text = str(out["text"])
        return {
            "text": text,
            "prompt_tokens": int(out.get("prompt_tokens",
                                         sum(len(str(m.get("content", "")).split()) for m in messages))),
            "completion_tokens": int(out.get("completion_tokens", len(text.split()))),
            "finish_reason": str(out.get("finish_reason", "stop")),
        }

    def _serve_llm(self, messages: list, params: dict) -> dict:
        from seo_lite.llm.base import GenParams, Request

        stop = params["stop"] or ()
        gp = GenParams(temperature=float(params["temperature"] if params["temperature"] is not None else 1.0),
                       top_p=float(params["top_p"] if params["top_p"] is not None else 1.0),
                       max_new_tokens=int(params["max_tokens"] or 128),
                       stop=(stop,) if isinstance(stop, str) else tuple(stop),
                       seed=int(params["seed"] or 0))
        req = Request(tuple(messages), gp, 0)
        with self._llm_lock:             # one model call at a time
            c = self._responder.generate([req])[0]
        return {"text": c.text, "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason}


def _check_kind(kind: Any) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; kinds: {', '.join(FAULT_KINDS)}")


def _error_body(message: str, type_: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, like real servers
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:   # quiet test output
        pass

    timeout = 120                     # safety net: an idle connection is dropped after this

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)
        if self.server.handle.stopping.is_set():   # accepted just as the server stops
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    # -- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def _close_now(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes -----------------------------------------------------------------------
    def do_GET(self) -> None:
        h = self.server.handle
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": h.model, "object": "model", "created": int(time.time()),
                 "owned_by": "seo_lite-tests"}]})
        else:
            self._send(404, _error_body(f"no route GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        h = self.server.handle
        body = self._read_json()
        route = h.routes.get(self.path.rstrip("/"))
        if self.path.rstrip("/") != "/v1/chat/completions" and route is None:
            self._send(404, _error_body(f"no route POST {self.path}", "invalid_request_error"))
            return
        n, kind = h._admit(self.headers, self.path, body)
        try:
            self._chat(h, body, kind, route)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True          # the client went away (e.g. it timed out)
        finally:
            h._release()

    def _chat(self, h: ServerHandle, body: Any, kind: str | None, route=None) -> None:
        if h.api_key is not None:
            auth = self.headers.get("Authorization", "")
            if auth != f"Bearer {h.api_key}":
                shown = auth.removeprefix("Bearer ") or "(none)"
                self._send(401, _error_body(f"Incorrect API key provided: {shown}.",
                                            "invalid_request_error", "invalid_api_key"))
                return
        if kind == "429":
            self._send(429, _error_body("Rate limit reached, retry later.", "requests", "rate_limit_exceeded"),
                       {"Retry-After": "0"})
            return
        if kind in ("500", "persistent-500"):
            self._send(500, _error_body("The server had an error processing your request.", "server_error"))
            return
        if kind == "503":
            self._send(503, _error_body("The engine is currently overloaded.", "server_error"))
            return
        if kind == "drop":
            self._close_now()
            return
        if kind == "timeout":
            if h.stopping.wait(h.hang_s):          # server shutting down: stop waiting
                self._close_now()
                return
        if kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [')
            return
        if kind == "html":
            page = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            self.wfile.flush()
            return
        if route is not None:
            try:
                status, payload = route(body)
            except Exception as e:                 # the route failed: a server error
                status, payload = 500, _error_body(f"{type(e).__name__}: {e}", "server_error")
            self._send(status, payload)
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            self._send(400, _error_body("'messages' must be a non-empty list", "invalid_request_error"))
            return
        try:
            a = h._answer(body)
        except Exception as e:                     # the responder failed: a server error
            self._send(500, _error_body(f"responder failed: {type(e).__name__}: {e}", "server_error"))
            return
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model") or h.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": a["text"]},
                         "logprobs": None, "finish_reason": a["finish_reason"]}],
            "usage": {"prompt_tokens": a["prompt_tokens"], "completion_tokens": a["completion_tokens"],
                      "total_tokens": a["prompt_tokens"] + a["completion_tokens"]},
        }
        if kind == "cut":
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._close_now()
            return
        self._send(200, payload)


class _Server(ThreadingHTTPServer):
    """Joins its handler threads on close; open connections are shut down
    first so that no keep-alive handler waits for a next request forever."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, handle: ServerHandle):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.handle = handle
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def serve(responder: Responder | Any, *, faults: Faults = None, api_key: str | None = None,
          model: str = "test-model", hang_s: float = 3.0,
          routes: Mapping[str, Callable] | None = None) -> Iterator[ServerHandle]:
    """Run an OpenAI-compatible server on 127.0.0.1 for the ``with`` block."""
    handle = ServerHandle(responder, faults=faults, api_key=api_key, model=model, hang_s=hang_s,
                          routes=routes)
    server = _Server(handle)
    port = server.server_address[1]
    handle.base_url = f"http://127.0.0.1:{port}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"openai-test-server-{port}", daemon=True)
    thread.start()
    try:
        yield handle
    finally:
        handle.stopping.set()
        server.shutdown()               # serve_forever returns
        server.close_connections()      # wake handlers blocked on a keep-alive read
        server.server_close()           # closes the socket, joins handler threads
        thread.join(timeout=10)


__all__ = ["serve", "ServerHandle", "FAULT_KINDS"]
