"""What a run will cost, before it starts: model calls, tokens, and a price or a time.

``estimate_cost(config)`` (``seo-lite run ... --dry-run``, ``DRY_RUN = True`` in
``run_seo.ipynb``) reads the config, the task and the data splits, loads at most
a tokenizer, and never a model.  It replays what the run would send:

* per step t (``seo.seo_step``): the mini-batch B_t and the validation set D_t
  are drawn exactly as the run draws them (``step_rng(seed, t, ...)``), so the
  examples are exact; **trials** n requests with E_t and n without (none without
  when comparison trials are off); the **optimizer** n·k requests (k identical
  ones when it decodes greedily); **validation** E_t and at most n·k fresh
  candidates on D_t, (n·k + 1)·|D_t| requests at most (none with
  ``validation="none"``);
* the final evaluation (``experiment.finalize``): E_T and no experience on dev
  and on test, and each distinct E_0..E_T on dev (the learning curve: at most
  T + 1 experiences);
* contextual calibration adds its content-free prompts per experience.

Model calls are requests minus those answered by another: identical requests
within one call run once, and with the call cache on (the default) a request
made earlier in the run is a cache hit (the same example without E in two
steps; E_{t+1} on examples it was validated on at step t; E_T on dev in the
curve).  The count assumes an empty cache; a warm one makes it smaller.

What is not known before the run is estimated and marked so: the rules of E_t
for t >= 1 and of the candidates (``max_rules`` rules of the length of the rule
bank's rules for the task family, see :mod:`seo_lite.llm.rulebank`), the
generator's answers inside the optimizer prompt (as long as the gold answer),
and, without the model's tokenizer offline, every token count
(characters / 4).  New tokens are upper bounds: ``opt_max_new_tokens`` per
optimizer call, the task's ``max_new_tokens`` per generate-mode call, none for
label ranking (which scores the label tokens after the prompt).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..method.config import ConfigError, SEOConfig
from ..method.experience import Experience
from ..llm.base import LoglikelihoodRequest, Request
from ..method.seo import Trial, fixed_validation_set, optimizer_requests, sample_validation_set, step_rng
from ..tasks.base import Example, Prediction

CHARS_PER_TOKEN = 4          # the usual rule of thumb for English text; used only without a tokenizer


# -- counting tokens ----------------------------------------------------------------------------------
@dataclass
class TokenCounter:
    """Counts the prompt tokens of chat messages the way a backend renders them.

    With a tokenizer: its chat template (or HFLLM's plain fallback) and its
    token ids, as :class:`~seo_lite.llm.hf.HFLLM` does.  Without one:
    characters / 4 of the plain rendering, an estimate."""

    basis: str                      # said next to every number it produced
    tokenizer: Any = None
    free: bool = False              # not a model (the rule bank): no tokens at all
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def render(self, messages: Sequence[dict]) -> str:
        tok = self.tokenizer
        msgs = [dict(m) for m in messages]
        if tok is not None and getattr(tok, "chat_template", None):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in msgs) + "Assistant:"

    def text(self, text: str) -> int:
        if self.free:
            return 0
        if self.tokenizer is None:
            return max(1, math.ceil(len(text) / CHARS_PER_TOKEN)) if text else 0
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, messages: Sequence[dict], prefix: str = "") -> int:
        key = (json.dumps(list(messages), sort_keys=True), prefix)
        if key not in self._memo:
            self._memo[key] = self.text(self.render(messages) + prefix)
        return self._memo[key]


def _load_tokenizer(source: str, **kw):
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(source, **kw)
    finally:
        hf_logging.set_verbosity(verbosity)


def _gguf_tokenizer(path: Path):
    """The tokenizer of a GGUF file: from its converted checkpoint when there is one
    (``hf.convert_gguf``), else read from the file's metadata (no weights)."""
    from ..llm.cache import cache_root
    from ..llm.hf_loading import file_sha256

    folder = cache_root() / "models" / f"{path.stem}-{file_sha256(path)[:16]}"
    if (folder / "tokenizer_config.json").is_file():
        return _load_tokenizer(str(folder), local_files_only=True)
    return _load_tokenizer(str(path.parent), gguf_file=path.name)


def token_counter(spec: str, options: dict | None = None, tokenizer: str | None = None) -> TokenCounter:
    """The :class:`TokenCounter` of a model spec, loading a tokenizer only from local
    files (never weights, never the network).  ``tokenizer``: a local folder with the
    tokenizer's files, used instead."""
    options = options or {}
    estimate = f"estimate: characters / {CHARS_PER_TOKEN}"
    try:
        if tokenizer is not None:
            return TokenCounter(f"the tokenizer in {tokenizer}",
                                _load_tokenizer(str(tokenizer), local_files_only=True))
        if spec == "rulebank":
            return TokenCounter("not a model: no tokens", free=True)
        if spec == "embedded":
            from ..llm.embedded import MODEL_NAME, embedded_gguf_path

            return TokenCounter(f"{MODEL_NAME}'s tokenizer", _gguf_tokenizer(embedded_gguf_path()))
        kind, _, source = spec.partition(":")
        if kind == "hf":
            path = Path(source).expanduser()
            if source.endswith(".gguf") and path.is_file():
                return TokenCounter(f"the tokenizer of {path.name}", _gguf_tokenizer(path))
            if path.is_dir():
                return TokenCounter(f"the tokenizer in {path}",
                                    _load_tokenizer(str(path), local_files_only=True))
            if source.startswith((".", "/", "~")) or source.endswith(".gguf"):
                return TokenCounter(f"{estimate} ({source} not found)")
            try:
                return TokenCounter(f"{source}'s tokenizer (local Hugging Face cache)",
                                    _load_tokenizer(source, revision=options.get("revision"),
                                                    local_files_only=True))
            except Exception:
                return TokenCounter(f"{estimate} ({source}'s tokenizer is not in the local "
                                    "Hugging Face cache)")
        return TokenCounter(f"{estimate} (the server's tokenizer is not available offline)")
    except Exception as e:                       # a broken local file: say so, estimate
        return TokenCounter(f"{estimate} (tokenizer not readable: {type(e).__name__})")


# -- what the run sends --------------------------------------------------------------------------------
@dataclass
class Phase:
    """One kind of call of the run, summed over the steps (or the final evaluation)."""

    name: str
    role: str                       # generator | optimizer
    mode: str                       # generate | rank
    per_step: int | None            # requests per step (None: a final-evaluation phase)
    requests: int = 0
    calls: int = 0                  # model calls at most, with an empty cache
    prompt_tokens: int = 0          # prompt tokens of those calls
    new_tokens: int = 0             # generated tokens at most
    label_tokens: int = 0           # rank mode: label tokens scored after the prompt
    at_most: bool = False           # requests is an upper bound (duplicates make it fewer)
    estimated: bool = False         # some prompt tokens rest on an estimate

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Exp:
    """An experience as the dry run knows it: exact rules, or an estimate with a label."""

    label: str
    experience: Experience | None
    estimated: bool = False


class _Ledger:
    """Request keys already answered (within a call always; across calls with the cache on)."""

    def __init__(self, counters: dict[str, TokenCounter], cache_on: bool):
        self.counters, self.cache_on, self.seen = counters, cache_on, set()

    def call(self, phase: Phase, items: list[tuple[str, Any, bool]]) -> None:
        """``items``: (label, request, estimated) for one batched model call."""
        if not self.cache_on:
            self.seen = set()
        counter = self.counters[phase.role]
        for label, req, estimated in items:
            phase.requests += 1
            payload = json.dumps(req.key_payload(), sort_keys=True)
            key = (label if estimated else "", payload)
            if key in self.seen:
                continue
            self.seen.add(key)
            phase.calls += 1
            phase.estimated |= estimated or not counter.exact
            phase.prompt_tokens += counter.prompt(req.messages, getattr(req, "prefix", ""))
            if isinstance(req, LoglikelihoodRequest):
                phase.label_tokens += sum(counter.text(c) for c in req.continuations)
            elif not counter.free:
                phase.new_tokens += req.params.max_new_tokens


def _generator_items(task, pairs: list[tuple[Example, _Exp]]) -> list[tuple[str, Any, bool]]:
    """The requests of ``task.predict_pairs`` for (example, experience) pairs, with the
    content-free prompts contextual calibration adds per experience."""
    items, groups = [], {}
    for ex, e in pairs:
        req = task.requests([ex], e.experience if e.experience else None)[0]
        items.append((e.label, req, e.estimated))
        groups.setdefault((e.label if e.estimated else "", e.experience.rules if e.experience else ()), e)
    for e in groups.values():
        for cf in task.content_free_examples():
            items.append((e.label, task.requests([cf], e.experience if e.experience else None)[0],
                          e.estimated))
    return items


def typical_experience(task, config: SEOConfig) -> tuple[Experience, str]:
    """E of ``max_rules`` rules of typical length: the rule bank's rules for the task's
    family, in order (repeated if the cap is larger than the bank)."""
    from ..llm.rulebank import RULE_BANK

    bank = RULE_BANK.get(task.family) or RULE_BANK["generic"]
    rules = [f"{bank[i % len(bank)]} ({i + 1})" if i >= len(bank) else bank[i]
             for i in range(config.max_rules)]
    mean = sum(map(len, rules)) / len(rules)
    return Experience(tuple(rules)), (f"{config.max_rules} rules like the rule bank's "
                                      f"{task.family if task.family in RULE_BANK else 'generic'} "
                                      f"rules (mean {mean:.0f} characters)")


def _mode(task) -> str:
    probe = task.requests([Example("probe", "x", ("x",))])[0]
    return "rank" if isinstance(probe, LoglikelihoodRequest) else "generate"


# -- the estimate ----------------------------------------------------------------------------------------
@dataclass
class CostEstimate:
    """The dry run's answer: phases, their totals, the bases of every estimate, and
    (given a price or a throughput) an API cost or a wall time."""

    config: SEOConfig
    mode: str
    phases: list[Phase]
    counters: dict[str, str]                  # role -> how its tokens were counted
    assumptions: list[str]
    price_per_mtok: tuple[float, float] | None = None
    tokens_per_second: tuple[float | None, float] | None = None

    def total(self, what: str, role: str | None = None) -> int:
        return sum(getattr(p, what) for p in self.phases if role in (None, p.role))

    @property
    def prompt_tokens(self) -> int:
        return self.total("prompt_tokens") + self.total("label_tokens")

    @property
    def cost_usd(self) -> float | None:
        """prompt tokens x IN + new tokens (at most) x OUT, per million tokens."""
        if self.price_per_mtok is None:
            return None
        p_in, p_out = self.price_per_mtok
        return (self.prompt_tokens * p_in + self.total("new_tokens") * p_out) / 1e6

    @property
    def seconds(self) -> float | None:
        """New tokens (at most) / generation rate, plus prompt tokens / prompt rate if given."""
        if self.tokens_per_second is None:
            return None
        prompt_rate, gen_rate = self.tokens_per_second
        s = self.total("new_tokens") / gen_rate
        if prompt_rate:
            s += self.prompt_tokens / prompt_rate
        return s

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "mode": self.mode,
                "phases": [p.to_dict() for p in self.phases], "token_counting": self.counters,
                "assumptions": self.assumptions, "calls": self.total("calls"),
                "prompt_tokens": self.prompt_tokens, "new_tokens_at_most": self.total("new_tokens"),
                "price_per_mtok": self.price_per_mtok, "cost_usd": self.cost_usd,
                "tokens_per_second": self.tokens_per_second, "seconds": self.seconds}

    def __str__(self) -> str:
        c = self.config
        lines = [f"Dry run (no model loaded): {c.task}, {self.mode} mode, T={c.steps} steps, "
                 f"n={c.batch_size}, k={c.num_candidates}, |D_t|={c.val_size}, "
                 f"max_rules={c.max_rules}, validation={c.validation}, "
                 f"comparison trials {'on' if c.comparison_trials else 'off'}",
                 f"generator {c.generator}: tokens by {self.counters['generator']}",
                 f"optimizer {c.optimizer}: tokens by {self.counters['optimizer']}", "",
                 f"{'phase':<22}{'model':<10}{'requests/step':>14}{'requests':>11}{'calls':>10}"
                 f"{'prompt tok':>14}{'new tok':>11}"]
        for p in self.phases:
            le = "<=" if p.at_most else ""
            step = "" if p.per_step is None else f"{le}{p.per_step}"
            tok = p.prompt_tokens + p.label_tokens
            lines.append(f"{p.name:<22}{p.role:<10}{step:>14}{le + str(p.requests):>11}"
                         f"{'<=' + str(p.calls):>10}{('~' if p.estimated else '') + f'{tok:,}':>14}"
                         f"{'<=' + format(p.new_tokens, ','):>11}")
        est = any(p.estimated for p in self.phases)
        lines.append(f"{'total':<32}{'':>14}{self.total('requests'):>11}"
                     f"{'<=' + str(self.total('calls')):>10}"
                     f"{('~' if est else '') + f'{self.prompt_tokens:,}':>14}"
                     f"{'<=' + format(self.total('new_tokens'), ','):>11}")
        lines.append("calls: model calls with an empty call cache (identical requests run once; "
                     "duplicate candidates make fewer)")
        lines.append("prompt tok: prompt tokens of those calls"
                     + (", label tokens included" if self.mode == "rank" else "")
                     + ("; ~ marks an estimate" if est else "")
                     + "; new tok: at most (the optimizer stops at the end of its list)")
        for a in self.assumptions:
            lines.append(f"  * {a}")
        if self.price_per_mtok is not None:
            p_in, p_out = self.price_per_mtok
            lines.append(f"API cost: about ${self.cost_usd:,.2f} (estimate: {self.prompt_tokens:,} "
                         f"prompt tokens at ${p_in}/M + at most {self.total('new_tokens'):,} new "
                         f"tokens at ${p_out}/M)")
            if self.mode == "rank":
                lines.append("  note: label ranking needs a local model; an API server cannot rank labels")
        if self.tokens_per_second is not None:
            prompt_rate, gen_rate = self.tokens_per_second
            how = f"{self.total('new_tokens'):,} new tokens at {gen_rate:g} tok/s"
            if prompt_rate:
                how += f" + {self.prompt_tokens:,} prompt tokens at {prompt_rate:g} tok/s"
            else:
                how += "; prompt processing not counted (give PROMPT,GEN tokens per second)"
            lines.append(f"wall time: about {_duration(self.seconds)} (estimate: {how}; "
                         "model loading not counted)")
        return "\n".join(lines)


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def parse_rates(value, what: str, *, optional_first: bool = False) -> tuple | None:
    """``"IN,OUT"`` (or a pair) -> two non-negative floats; with ``optional_first``
    a single number is the second one (``"20"`` or ``20`` -> ``(None, 20.0)``)."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if optional_first and len(parts) == 1:
        parts = [None] + parts
    try:
        if len(parts) != 2:
            raise ValueError
        out = tuple(None if p in (None, "") else float(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} takes two numbers IN,OUT, got {value!r}") from None
    if out[1] is None or any(x is not None and not x >= 0 for x in out):
        raise ConfigError(f"{what} takes non-negative numbers, got {value!r}")
    if optional_first and out[1] == 0:
        raise ConfigError(f"{what}: the generation rate must be > 0, got {value!r}")
    return out


def estimate_cost(config: SEOConfig, *, price_per_mtok=None, tokens_per_second=None,
                  task=None, splits=None, generator_tokenizer: str | None = None,
                  optimizer_tokenizer: str | None = None) -> CostEstimate:
    """Count what ``run_experiment(config, ...)`` would send, loading no model.

    ``price_per_mtok``: ``"IN,OUT"`` USD per million prompt / new tokens;
    ``tokens_per_second``: ``"GEN"`` or ``"PROMPT,GEN"`` tokens per second.
    ``*_tokenizer``: a local folder holding that model's tokenizer files, used
    instead of the one the spec finds."""
    from .build import make_task
    from .data import load_splits
    from ..llm.cache import default_cache

    price = parse_rates(price_per_mtok, "price_per_mtok")
    rate = parse_rates(tokens_per_second, "tokens_per_second", optional_first=True)
    task = task or make_task(config)
    if splits is None:
        splits = load_splits(task, train=config.train_size, dev=config.dev_size,
                             test=config.test_size, seed=config.seed, source=config.data_source)
    gen = token_counter(config.generator, config.generator_options, generator_tokenizer)
    same = (config.optimizer == config.generator and config.optimizer_options == config.generator_options
            and optimizer_tokenizer == generator_tokenizer)
    opt = gen if same else token_counter(config.optimizer, config.optimizer_options, optimizer_tokenizer)
    ledger = _Ledger({"generator": gen, "optimizer": opt}, cache_on=default_cache() is not None)
    mode = _mode(task)
    typical, typical_basis = typical_experience(task, config)
    n, k, T = config.batch_size, config.num_candidates, config.steps
    greedy_opt = config.opt_temperature == 0
    fresh_max = n if greedy_opt else n * k
    validate = config.validation != "none"

    trials = Phase("trials", "generator", mode, n * (2 if config.comparison_trials else 1))
    optimizer = Phase("optimizer", "optimizer", "generate", n * k)
    validation = Phase("validation", "generator", mode,
                       (fresh_max + 1) * config.val_size if validate else 0, at_most=True)
    e0 = _Exp("E_0", Experience(config.initial_experience))
    est = lambda label: _Exp(label, typical, True)
    none = _Exp("none", None)
    current = e0
    train = list(splits.train)
    for t in range(T):
        batch = step_rng(config.seed, t, "batch").sample(train, n)
        pairs = [(ex, current) for ex in batch]
        if config.comparison_trials:
            pairs += [(ex, none) for ex in batch]
        ledger.call(trials, _generator_items(task, pairs))
        ledger.call(optimizer, [(f"opt{t}", r, True) for r in
                                _optimizer_requests(task, batch, current, config, t, mode)])
        nxt = est(f"E_{t + 1}")               # the candidate that becomes E_{t+1} (or E_t kept)
        if validate:
            val = (fixed_validation_set(train, config) if config.validation == "fixed" else
                   sample_validation_set(train, config.val_size,
                                         step_rng(config.seed, t, "validation"), batch))
            cands = [nxt] + [est(f"c{t}.{j}") for j in range(1, fresh_max)]
            ledger.call(validation, _generator_items(task, [(ex, e) for e in [current] + cands
                                                            for ex in val]))
        current = nxt
    phases = [trials, optimizer] + ([validation] if validate else [])
    for p in phases:                          # every step sends as many requests
        p.per_step = p.requests // T if T else p.per_step
    final = current                           # E_T (E_0 when T = 0)
    for split in ("dev", "test"):
        examples = list(getattr(splits, split))
        if examples:
            ph = Phase(f"{split}: E_T vs no E", "generator", mode, None)
            ledger.call(ph, _generator_items(task, [(ex, final) for ex in examples]
                                             + [(ex, none) for ex in examples]))
            phases.append(ph)
    if splits.dev:
        curve = Phase("dev curve: each E_t", "generator", mode, None, at_most=True)
        for e in [e0] + [est(f"E_{t}") for t in range(1, T)] + ([final] if T else []):
            ledger.call(curve, _generator_items(task, [(ex, e) for ex in splits.dev]))
        phases.append(curve)

    assumptions = []
    if T:
        assumptions.append(f"estimated: E_t for t >= 1 and every candidate as {typical_basis}")
    assumptions.append("estimated: the generator's answers inside the optimizer prompt are as long "
                       "as the gold answer" + ("" if mode == "rank" else
                                               f" (they may run to {task.gen_params.max_new_tokens} tokens)"))
    if not gen.exact or not opt.exact:
        assumptions.append(f"estimated: token counts without the model's tokenizer are characters / "
                           f"{CHARS_PER_TOKEN}, the common rule of thumb for English text")
    if greedy_opt:
        assumptions.append("the optimizer decodes greedily: its k replies per example are one call")
    if config.optimizer == "rulebank":
        assumptions.append("the rule bank is not a model: its calls cost no tokens")
    if not ledger.cache_on:
        assumptions.append("the call cache is off (SEO_LITE_CACHE): only identical requests within "
                           "one call are answered once")
    if mode == "rank":
        assumptions.append("label ranking generates no tokens; local backends run a shared prompt "
                           "prefix once, so they compute fewer prompt tokens than counted here")
    return CostEstimate(config, mode, phases, {"generator": gen.basis, "optimizer": opt.basis},
                        assumptions, price, rate)


def _optimizer_requests(task, batch, current: _Exp, config: SEOConfig, step: int,
                        mode: str) -> list[Request]:
    """The optimizer's requests for this step's trials, with stand-in answers (the gold)."""
    experience = current.experience or Experience()
    trials = []
    for ex in batch:
        p = Prediction(ex.id, ex.gold, ex.gold, 0.0)
        trials.append(Trial(ex, p, Prediction(ex.id, ex.gold, ex.gold, 0.0)
                            if config.comparison_trials else None))
    return optimizer_requests(task, trials, experience, config, step)


__all__ = ["CostEstimate", "Phase", "TokenCounter", "estimate_cost", "parse_rates",
           "token_counter", "typical_experience", "CHARS_PER_TOKEN"]
