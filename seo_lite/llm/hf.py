"""transformers backend: batched generation, label log-likelihoods, 4-bit Llama-2.

``HFLLM("meta-llama/Llama-2-7b-chat-hf", load_in_4bit=True)`` is the paper's
generator on one GPU; ``HFLLM("path/to/model.gguf")`` and the embedded model
run the same code on a CPU.

This module is the backend's face: the weights come from :mod:`.hf_loading`
(Hub id, local folder, GGUF file converted once, 4-bit / 8-bit), the decode
loop, prefix sharing and length chunks from :mod:`.decode`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import LLM, LLMError, LoglikelihoodRequest, Request
from .decode import DecodeLoop
from .hf_loading import _Loaded, converted_folder, load_model, model_identity


class ChatTokens:
    """Prompts as token ids of ``self.tokenizer``.  The OpenAI-compatible backend
    ranks labels with it too, so both backends send the same tokens."""

    def render(self, messages, *, add_generation_prompt: bool = True) -> str:
        """The exact text the model sees for these chat messages: the tokenizer's chat
        template, or plain ``Role: content`` lines where it has none."""
        msgs, tok = [dict(m) for m in messages], self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False,
                                           add_generation_prompt=add_generation_prompt)
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs)
        return text + ("Assistant:" if add_generation_prompt else "")

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _loglikelihood_inputs(self, r: LoglikelihoodRequest) -> tuple[list[int], list[list[int]]]:
        """Prompt ids and each continuation's ids, encoded apart."""
        prompt = self._encode(self.render(r.messages))
        conts = [self._encode(c) for c in r.continuations]
        if any(not c for c in conts):
            raise LLMError(f"a continuation encodes to no tokens: {r.continuations!r}")
        return prompt, conts


def local_files(source: str) -> tuple[str, dict]:
    """Where transformers reads a model's config or tokenizer alone: for a GGUF file its
    converted checkpoint if there (parsing the GGUF file takes seconds), else the file."""
    path = Path(source).expanduser()
    if not source.endswith(".gguf"):
        return (str(path) if path.exists() else source), {}
    converted = converted_folder(path)
    if (converted / "config.json").is_file():
        return str(converted), {}
    return str(path.parent), {"gguf_file": path.name}


def _config_alone(source: str):
    """A model's config without its weights (a GGUF file's from its header)."""
    from transformers import AutoConfig

    try:
        where, kw = local_files(source)
        return AutoConfig.from_pretrained(where, **kw)
    except (OSError, ValueError) as e:
        raise LLMError(f"could not read the config of {source!r}: {e}") from None


#: config fields that hold a model's context window, in the order they are tried
WINDOW_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def config_window(config) -> int | None:
    """The context window a model config states (the first of :data:`WINDOW_FIELDS`)."""
    return next((getattr(config, f) for f in WINDOW_FIELDS
                 if isinstance(getattr(config, f, None), int)), None)


class HFLLM(DecodeLoop, ChatTokens, LLM):
    """A transformers causal LM (Hub id, local folder or GGUF file)."""

    backend = "hf"
    supports_loglikelihood = True

    def __init__(self, source: str, *, dtype=None, device_map=None, load_in_4bit: bool = False,
                 load_in_8bit: bool = False, revision: str | None = None, batch_size: int = 16,
                 num_threads: int | None = None, cache="default", trust_remote_code: bool = False,
                 context_window: int | None = None, _identity_override: dict | None = None):
        super().__init__(cache)
        if int(batch_size) < 1:
            raise LLMError(f"batch_size must be >= 1, got {batch_size}")
        self.source = source
        self.batch_size = int(batch_size)
        if num_threads:
            import torch

            torch.set_num_threads(int(num_threads))
        self._load_args = dict(dtype=dtype, device_map=device_map, load_in_4bit=load_in_4bit,
                               load_in_8bit=load_in_8bit, revision=revision,
                               trust_remote_code=trust_remote_code)
        if load_in_4bit and load_in_8bit:
            raise LLMError("choose one of load_in_4bit and load_in_8bit")
        self._identity = model_identity(source, dtype=dtype, device_map=device_map,
                                        load_in_4bit=load_in_4bit, load_in_8bit=load_in_8bit,
                                        revision=revision)
        self._identity.update(_identity_override or {})
        if context_window is not None and int(context_window) < 1:
            raise LLMError(f"context_window must be >= 1 tokens, got {context_window}")
        self._window = int(context_window) if context_window is not None else None
        self._loaded: _Loaded | None = None
        self._prefix_memo: tuple[list[int], Any] | None = None

    def load(self) -> "HFLLM":
        """Load the weights now (otherwise they load on the first cache miss, so
        a run answered entirely from the cache never loads the model)."""
        if self._loaded is None:
            self._loaded = load_model(self.source, self._identity, **self._load_args)
        return self

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def model(self):
        return self.load()._loaded.model

    @property
    def tokenizer(self):
        return self.load()._loaded.tokenizer

    def identity(self) -> dict:
        return dict(self._identity)

    @property
    def context_window(self) -> int | None:
        """The option ``context_window``, else the model config's
        ``max_position_embeddings`` (SmolLM2: 8,192; Llama-2: 4,096), read
        without loading the weights where the config can be read alone."""
        if self._window is None:
            self._window = config_window(self._loaded.model.config if self._loaded
                                         else _config_alone(self.source))
        return self._window

    def request_tokens(self, r) -> tuple[int, int]:
        if isinstance(r, Request):
            return len(self._encode(self.render(r.messages) + r.prefix)), r.params.max_new_tokens
        prompt, conts = self._loglikelihood_inputs(r)
        return len(prompt), max(len(c) for c in conts)

    def count_tokens(self, text: str) -> int | None:
        return len(self._encode(text)) if self.loaded else None

    @property
    def _device(self):
        return next(self.model.parameters()).device
