"""What a run will cost, before it starts: the run itself, against a model that counts.

``estimate_cost(config)`` (``seo-lite run ... --dry-run``, ``DRY_RUN = True`` in
``run_seo.ipynb``) reads the config, the task and the data splits and runs the
real loop, :func:`seo_lite.method.seo.seo_steps`, and the real final evaluation,
:func:`seo_lite.method.evaluation.evaluate_run`, with a
:class:`~seo_lite.llm.counting.CountingLLM` as generator and optimizer: a
model that counts calls and prompt tokens (with the model's tokenizer where
one is on disk, else characters / 4) and answers with placeholders.  It loads
at most a tokenizer, never a model.  Calls are what the real call layer sends
to the backend with an empty call cache, per progress label of the loop
(trials, optimizer, validation; evaluate dev / test, dev curve).  A change to
the loop changes the estimate with it: there is no second copy of the loop.

The placeholders make the count the largest a run can make: the generator
answers the gold answer; every optimizer reply is a new experience of
``max_rules`` rules of typical length (:func:`typical_experience`), so n·k
fresh candidates are validated (n when the optimizer decodes greedily); and
every step accepts its best candidate (the run's config with
``min_improvement=-inf``), so E_t changes every step.  A real run makes as
many calls or fewer (repeated candidates, E_t kept) and no more.  New tokens
are upper bounds: ``max_new_tokens`` per generate call, none for label
ranking (which scores the label tokens after the prompt).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..llm.counting import CHARS_PER_TOKEN, CountingLLM, Phase, token_counter
from ..method.config import ConfigError, SEOConfig
from ..method.evaluation import evaluate_run
from ..method.experience import Experience
from ..method.seo import seo_steps

AT_MOST = ("validation", "dev curve")    # phases a real run makes fewer requests in


def typical_experience(task, config: SEOConfig) -> tuple[Experience, str]:
    """E of ``max_rules`` rules of typical length: the rule bank's rules for the task's
    family, in order (repeated if the cap is larger than the bank)."""
    from ..llm.rulebank import RULE_BANK

    family = task.family if task.family in RULE_BANK else "generic"
    bank = RULE_BANK[family]
    rules = [bank[i] if i < len(bank) else f"{bank[i % len(bank)]} ({i + 1})"
             for i in range(config.max_rules)]
    return Experience(tuple(rules)), (f"{config.max_rules} rules like the rule bank's {family} "
                                      f"rules (mean {sum(map(len, rules)) / len(rules):.0f} characters)")


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
    from .build import make_task, same_model
    from .data import load_splits

    price = parse_rates(price_per_mtok, "price_per_mtok")
    rate = parse_rates(tokens_per_second, "tokens_per_second", optional_first=True)
    task = task or make_task(config)
    if splits is None:
        splits = load_splits(task, train=config.train_size, dev=config.dev_size,
                             test=config.test_size, seed=config.seed, source=config.data_source)
    gen = token_counter(config.generator, config.generator_options, generator_tokenizer)
    opt = (gen if same_model(config) and optimizer_tokenizer == generator_tokenizer else
           token_counter(config.optimizer, config.optimizer_options, optimizer_tokenizer))
    typical, typical_basis = typical_experience(task, config)
    for model in {gen, opt}:
        model.set_task(task, [*splits.train, *splits.dev, *splits.test], typical.rules)
    experiences = [Experience(config.initial_experience)]
    for record in seo_steps(task, gen, opt, splits.train, config.replace(min_improvement=-math.inf),
                            experiences[0], progress=True):
        experiences.append(record.experience_after)
    evaluate_run(task, gen, splits, experiences, n_boot=0, progress=True)
    phases = [p for m in {gen: 0, opt: 0} for p in m.counted()]
    for p in phases:
        p.at_most = p.name in AT_MOST
        p.per_step = None if p.per_step is None else p.requests // config.steps

    mode = task.answer_mode
    assumptions = []
    if config.steps:
        assumptions.append(f"estimated: E_t for t >= 1 and every candidate as {typical_basis}, "
                           "and every step accepts a candidate")
        assumptions.append("estimated: the generator's answers inside the optimizer prompt are "
                           "the gold answers" + ("" if mode == "rank" else
                           f" (they may run to {task.gen_params.max_new_tokens} tokens)"))
    if not gen.exact or not opt.exact:
        assumptions.append(f"estimated: token counts without the model's tokenizer are characters / "
                           f"{CHARS_PER_TOKEN}, the common rule of thumb for English text")
    if config.opt_temperature == 0:
        assumptions.append("the optimizer decodes greedily: its k replies per example are one call")
    if config.optimizer == "rulebank":
        assumptions.append("the rule bank is not a model: its calls cost no tokens")
    if gen.cache is None:
        assumptions.append("the call cache is off (SEO_LITE_CACHE): only identical requests within "
                           "one call are answered once")
    if mode == "rank":
        assumptions.append("label ranking generates no tokens; local backends run a shared prompt "
                           "prefix once, so they compute fewer prompt tokens than counted here")
    return CostEstimate(config, mode, phases, {"generator": gen.basis, "optimizer": opt.basis},
                        assumptions, price, rate)


__all__ = ["CostEstimate", "Phase", "CountingLLM", "estimate_cost", "parse_rates",
           "token_counter", "typical_experience", "CHARS_PER_TOKEN"]
