"""A model that counts instead of computing: the dry run's generator and optimizer.

:class:`CountingLLM` is an :class:`~seo_lite.llm.base.LLM`, so its requests go
through the real call layer (``cached.py``: identical requests in one call run
once, a request made before is a cache hit; the cache starts empty, in memory).
Each request that reaches the backend is a model call, filed under the
caller's progress label (``"step 2/6 validation"`` -> phase ``validation``) in
``usage``: prompt tokens as :class:`~seo_lite.llm.hf.HFLLM` renders them, with
the tokenizer :func:`token_counter` finds on disk (else characters / 4), and
``max_new_tokens`` per generate call.  Replies are placeholders: the gold
answer of the example the prompt ends with (label ranking: the gold label
first); for the optimizer, :func:`typical_rules` in a new order each time (a
tag once the orders run out), so every reply is a new experience.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .base import LLM, Completion, LLMError, Loglikelihoods
from .cache import CallCache, default_cache
from .hf import HFLLM, _config_alone, config_window, local_files

CHARS_PER_TOKEN = 4          # the usual rule of thumb for English text; used only without a tokenizer


@dataclass
class Phase:
    """The calls of one progress label, summed over the steps."""

    name: str
    role: str                       # generator | optimizer
    mode: str                       # generate | rank
    per_step: int | None            # requests per step (None: not a step's label)
    requests: int = 0
    calls: int = 0                  # model calls (requests the call layer did not answer)
    prompt_tokens: int = 0          # prompt tokens of those calls     } from the model's
    new_tokens: int = 0             # generated tokens at most         } usage per phase
    label_tokens: int = 0           # rank mode: label tokens scored after the prompt
    at_most: bool = False           # requests is an upper bound (duplicates make it fewer)
    estimated: bool = False         # some prompt tokens rest on a placeholder or characters / 4


class _EmptyCache(CallCache):
    """A call cache that starts empty, in memory."""

    def __init__(self):
        self.entries = {}

    def get(self, key, payload):
        return self.entries.get(key), None

    def put(self, key, payload, value):
        self.entries[key] = value


class CountingLLM(LLM):
    """Counts calls and tokens per phase (``phases``); see the module docstring."""

    backend, supports_loglikelihood = "counting", True
    render = HFLLM.render                            # the prompt text a local model sees

    def __init__(self, spec: str, basis: str, tokenizer=None, free: bool = False):
        super().__init__(cache=_EmptyCache() if default_cache() is not None else None)
        self.spec, self.basis, self.tokenizer, self.free = spec, basis, tokenizer, free
        self.exact = tokenizer is not None           # False: characters / 4
        self.phases: dict[str, Phase] = {}
        self.golds, self._lengths, self.rules, self.replies = {}, [], ("Follow the instruction.",), 0
        self.ids, self.too_long = {}, set()              # examples whose prompt misses the window

    def identity(self) -> dict:
        return {"backend": self.backend, "model": self.spec}

    def count_tokens(self, text: str) -> int:
        if self.free or not text:
            return 0
        if self.tokenizer is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, messages, prefix: str = "") -> int:
        return self.count_tokens(self.render(messages) + prefix)

    def generate(self, requests, *, role="generator", progress=False):
        return self._count(super().generate, requests, role, progress, "generate")

    def loglikelihood(self, requests, *, role="generator", progress=False):
        return self._count(super().loglikelihood, requests, role, progress, "rank")

    def _count(self, call, requests, role, progress, mode):
        label = progress if isinstance(progress, str) else role
        step = label.startswith("step ")             # seo_step's labels: "step 2/6 trials"
        name = label.split(" ", 2)[-1] if step else label
        self._phase = self.phases.setdefault(name, Phase(name, role, mode, 0 if step else None))
        self._phase.requests += len(requests) if isinstance(requests, (list, tuple)) else 1
        return call(requests, role=name)             # usage per phase: calls and tokens

    def counted(self) -> list[Phase]:
        """The phases, with calls and tokens from the model's usage (one role per phase)."""
        usage = self.usage.to_dict()
        for p in self.phases.values():
            u = usage.get(p.name, {})
            p.calls, p.prompt_tokens = u.get("calls", 0), u.get("prompt_tokens", 0)
            p.new_tokens = u.get("completion_tokens", 0)
        return list(self.phases.values())

    def _gold(self, r) -> str:
        """The gold answer of the example the prompt ends with ("" if none)."""
        text = r.messages[-1]["content"]
        self._phase.estimated |= not self.exact or self._phase.role == "optimizer" \
            or self.rules[0] in text                 # a placeholder answer or experience
        key = next((text[-n:] for n in self._lengths if text[-n:] in self.golds), None)
        return (key, self.golds[key]) if key is not None else (None, "")

    def _fits(self, key, n_tokens: int, reserve: int) -> int:
        if key is not None and not self.fits(n_tokens, reserve):
            self.too_long.add(self.ids[key])
        return n_tokens

    def set_task(self, task, examples, max_rules: int) -> str:
        """Learn the examples' gold answers and the optimizer's rules (:func:`typical_rules`);
        returns what those rules are."""
        self.golds = {task.format_input(ex).strip(): ex.gold for ex in examples}
        self.ids = {task.format_input(ex).strip(): ex.id for ex in examples}
        self._lengths = sorted({len(k) for k in self.golds}, reverse=True)
        self.rules, basis = typical_rules(task, max_rules)
        return basis

    def _generate(self, requests):
        out = []
        for r in requests:
            key, reply = self._gold(r)
            if self._phase.role == "optimizer":
                rules, c, order = list(self.rules), self.replies, []
                self.replies += 1
                while rules:                          # the c-th order of the rules
                    c, j = divmod(c, len(rules))
                    order.append(rules.pop(j))
                order[-1] += f" ({c})" if c else ""
                reply = "\n".join(f"{i}. {rule}" for i, rule in enumerate(order, 1))
            n = self._fits(key, self.prompt(r.messages, r.prefix), r.params.max_new_tokens)
            out.append(Completion(reply, n, 0 if self.free else r.params.max_new_tokens))
        return out

    def _loglikelihood(self, requests):
        out = []
        for r in requests:
            key, gold = self._gold(r)
            counts = [self.count_tokens(c) for c in r.continuations]
            out.append(Loglikelihoods([0.0 if c == gold else -1.0 for c in r.continuations],
                                      counts, self._fits(key, self.prompt(r.messages), max(counts))))
            self._phase.label_tokens += sum(out[-1].token_counts)
        return out


def typical_rules(task, max_rules: int) -> tuple[tuple[str, ...], str]:
    """``max_rules`` rules of typical length, and what they are: the rule bank's rules
    for the task's family, in order (repeated if the cap is larger than the bank)."""
    from .rulebank import RULE_BANK

    family = task.family if task.family in RULE_BANK else "generic"
    bank = RULE_BANK[family]
    rules = [bank[i] if i < len(bank) else f"{bank[i % len(bank)]} ({i + 1})"
             for i in range(max_rules)]
    return tuple(rules), (f"{max_rules} rules like the rule bank's {family} rules "
                          f"(mean {sum(map(len, rules)) / len(rules):.0f} characters)")


# -- counting tokens offline ---------------------------------------------------------------------
def _load_tokenizer(source: str, **kw):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True, **kw)
    finally:
        hf_logging.set_verbosity(verbosity)


def token_counter(spec: str, options: dict | None = None, tokenizer: str | None = None) -> CountingLLM:
    """The :class:`CountingLLM` of a model spec, with a tokenizer loaded only from local
    files (never weights, never the network; ``tokenizer``: a local folder with the
    tokenizer's files, used instead), and the context window the run would enforce: the
    ``context_window`` option, else a local model's config (None where neither says)."""
    options = options or {}
    kind, _, source = spec.partition(":")
    name = f"the tokenizer in {Path(source).expanduser()}"
    if spec == "embedded":
        from .embedded import MODEL_NAME, embedded_gguf_path

        kind, source, name = "hf", str(embedded_gguf_path()), f"{MODEL_NAME}'s tokenizer"
    counter = _token_counter(spec, kind, source, name, options, tokenizer)
    window = options.get("context_window")
    if not window and kind == "hf" and (source.endswith(".gguf") or Path(source).expanduser().exists()):
        try:
            window = config_window(_config_alone(source))
        except LLMError:
            pass
    counter.context_window = int(window) if window else None
    return counter


def _token_counter(spec, kind, source, name, options, tokenizer) -> CountingLLM:
    count = lambda basis, tok=None: CountingLLM(spec, basis, tok)
    estimate = f"estimate: characters / {CHARS_PER_TOKEN}"
    path = Path(source).expanduser()
    try:
        if tokenizer is not None:
            return count(f"the tokenizer in {tokenizer}", _load_tokenizer(str(tokenizer)))
        if spec == "rulebank":
            return CountingLLM(spec, "not a model: no tokens", free=True)
        if kind != "hf":
            return count(f"{estimate} (the server's tokenizer is not available offline)")
        if (source.endswith(".gguf") and path.is_file()) or path.is_dir():
            where, kw = local_files(source)
            return count(name, _load_tokenizer(where, **kw))
        if source.startswith((".", "/", "~")) or source.endswith(".gguf"):
            return count(f"{estimate} ({source} not found)")
        try:
            return count(f"{source}'s tokenizer (local Hugging Face cache)",
                         _load_tokenizer(source, revision=options.get("revision")))
        except Exception:
            return count(f"{estimate} ({source}'s tokenizer is not in the local Hugging Face cache)")
    except Exception as e:                       # a broken local file: say so, estimate
        return count(f"{estimate} (tokenizer not readable: {type(e).__name__})")
