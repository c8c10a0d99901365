"""A vLLM-shaped completions server on 127.0.0.1 that serves a real model's log-probs.

``serve_vllm(llm)`` runs the test chat server (``openai_server.serve``, same
HTTP plumbing, faults and request log) with one more route,
``POST /v1/completions``, answered the way vLLM's OpenAI-compatible server
answers it (its documented legacy-completions shape):

* ``prompt`` -- a string, a list of token ids, or a list of either (a batch:
  one choice per prompt, ``choices[i].index == i``);
* ``echo: true`` with ``logprobs: k`` -- each choice's ``logprobs`` holds
  ``tokens``, ``token_logprobs``, ``top_logprobs`` and ``text_offset`` for
  the prompt tokens and then the generated ones; the first prompt token has
  no context, so its ``token_logprobs`` entry and ``top_logprobs`` entry are
  ``null``, as in vLLM;
* ``max_tokens`` tokens are generated greedily after the prompt;
* a prompt longer than ``max_model_len`` (with ``max_tokens``) gets vLLM's
  400 "This model's maximum context length is ..." error.

The log-probs are the model's true ones: one right-padded forward pass of
``llm.model`` (an :class:`~seo_lite.llm.hf.HFLLM`, the embedded model in
tests) over a request's prompts, ``log_softmax(logits[t-1])[ids[t]]``.  Chat requests are answered by
the same model through ``llm.generate``.

``echo_support=False`` plays a server without prompt log-probs (Ollama and
the llama.cpp server ignore ``echo``): it returns log-probs of the generated
tokens only.
"""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Iterator

from .openai_server import ServerHandle, _error_body, serve


class _Completions:
    """The ``/v1/completions`` route for one model."""

    def __init__(self, llm, *, max_model_len: int | None, echo_support: bool):
        self.llm = llm
        self.max_model_len = max_model_len or llm.context_window
        self.echo_support = echo_support
        self.lock = threading.Lock()       # one forward pass at a time

    def __call__(self, body) -> tuple[int, dict]:
        if not isinstance(body, dict) or "prompt" not in body:
            return 400, _error_body("'prompt' is required", "BadRequestError")
        prompts = body["prompt"]
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], int)):
            prompts = [prompts]
        tok = self.llm.tokenizer
        ids = [tok(p, add_special_tokens=False)["input_ids"] if isinstance(p, str) else list(p)
               for p in prompts]
        new = int(body.get("max_tokens") if body.get("max_tokens") is not None else 16)
        k = int(body.get("logprobs") or 0)
        echo = bool(body.get("echo")) and self.echo_support
        for x in ids:
            if len(x) + new > self.max_model_len:
                return 400, _error_body(
                    f"This model's maximum context length is {self.max_model_len} tokens. "
                    f"However, you requested {len(x) + new} tokens ({len(x)} in the messages, "
                    f"{new} in the completion). Please reduce the length of the messages or "
                    "completion.", "BadRequestError")
        with self.lock:
            rows = self._logprobs(ids)
        choices = [self._choice(i, x, rows[i], new, k, echo) for i, x in enumerate(ids)]
        n_prompt = sum(len(x) for x in ids)
        return 200, {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion",
                     "created": int(time.time()), "model": str(body.get("model")),
                     "choices": choices,
                     "usage": {"prompt_tokens": n_prompt, "completion_tokens": new * len(ids),
                               "total_tokens": n_prompt + new * len(ids)}}

    def _logprobs(self, seqs: list[list[int]]) -> list:
        """log_softmax rows of each sequence (row t predicts token t + 1): one
        right-padded forward pass for the batch."""
        import torch

        width = max(len(x) for x in seqs)
        ids = torch.tensor([x + [0] * (width - len(x)) for x in seqs])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in seqs])
        with torch.inference_mode():
            logits = self.llm.model(input_ids=ids, attention_mask=mask).logits.float()
        return [torch.log_softmax(logits[i, :len(x)], -1) for i, x in enumerate(seqs)]

    def _choice(self, index: int, prompt: list[int], logp, new: int, k: int, echo: bool) -> dict:
        import torch

        tok = self.llm.tokenizer
        seq = list(prompt)
        for step in range(new):                  # greedy; rows then cover every token of seq
            seq.append(int(logp[-1].argmax()))
            if step + 1 < new:
                with self.lock:
                    logp = self._logprobs([seq])[0]
        first = 0 if echo else len(prompt)
        tokens, lps, tops = [], [], []
        for t in range(first, len(seq)):
            tokens.append(tok.convert_ids_to_tokens(seq[t]))
            if t == 0:                                 # no context: vLLM sends null
                lps.append(None)
                tops.append(None)
                continue
            row = logp[t - 1]
            lps.append(float(row[seq[t]]))
            best = torch.topk(row, max(k, 1))
            top = {tok.convert_ids_to_tokens(int(i)): float(v)
                   for v, i in zip(best.values, best.indices)}
            top[tokens[-1]] = lps[-1]
            tops.append(top)
        offsets, pos = [], 0
        for t in range(first, len(seq)):
            offsets.append(pos)
            pos += len(tok.decode(seq[t:t + 1]))
        return {"index": index, "text": tok.decode(seq[first:]),
                "logprobs": {"text_offset": offsets, "token_logprobs": lps, "tokens": tokens,
                             "top_logprobs": tops} if k else None,
                "finish_reason": "length", "stop_reason": None, "prompt_logprobs": None}


@contextlib.contextmanager
def serve_vllm(llm, *, max_model_len: int | None = None, echo_support: bool = True,
               model: str = "served-model", **options) -> Iterator[ServerHandle]:
    """``serve`` with a real ``/v1/completions`` route for ``llm`` (see above)."""
    route = _Completions(llm, max_model_len=max_model_len, echo_support=echo_support)
    with serve(llm, model=model, routes={"/v1/completions": route}, **options) as handle:
        yield handle


__all__ = ["serve_vllm"]
