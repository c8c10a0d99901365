"""What a run will cost, before it starts: the run itself, against a model that counts.

``estimate_cost(config)`` (``seo-lite run ... --dry-run``, ``DRY_RUN = True`` in
``run_seo.ipynb``) runs the real loop (:func:`~seo_lite.method.seo.seo_steps`)
and the run's final evaluation (:func:`~seo_lite.method.evaluation.evaluate_run`)
with a :class:`~seo_lite.llm.counting.CountingLLM` as generator and optimizer,
loading at most a tokenizer.  A change to the loop changes the estimate with it.
Its placeholder replies make the count the largest a run can make: each
optimizer reply is a new experience of ``max_rules`` typical rules, so n·k
fresh candidates are validated (n when the optimizer decodes greedily), and
every step accepts its best one (``min_improvement=-inf``), so E_t changes
every step.  A real run makes as many calls or fewer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..llm.counting import CHARS_PER_TOKEN, Phase, token_counter
from ..method.config import SEOConfig
from ..method.evaluation import evaluate_run
from ..method.experience import Experience
from ..method.seo import seo_steps
from .params import parse_rates  # noqa: F401  (the flags' parser, re-exported)

AT_MOST = ("validation", "dev curve")    # phases a real run sends fewer requests in


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
        if self.price_per_mtok is not None:
            return (self.prompt_tokens * self.price_per_mtok[0]
                    + self.total("new_tokens") * self.price_per_mtok[1]) / 1e6

    @property
    def seconds(self) -> float | None:
        """New tokens (at most) / generation rate, plus prompt tokens / prompt rate if given."""
        if self.tokens_per_second is not None:
            prompt_rate, gen_rate = self.tokens_per_second
            return self.total("new_tokens") / gen_rate + (self.prompt_tokens / prompt_rate
                                                          if prompt_rate else 0)

    def __str__(self) -> str:
        c, new, est = self.config, self.total("new_tokens"), any(p.estimated for p in self.phases)
        row = lambda *v: f"{v[0]:<22}{v[1]:<10}{v[2]:>14}{v[3]:>11}{v[4]:>10}{v[5]:>14}{v[6]:>11}"
        lines = [f"Dry run (no model loaded): {c.task}, {self.mode} mode, T={c.steps} steps, "
                 f"n={c.batch_size}, k={c.num_candidates}, |D_t|={c.val_size}, max_rules={c.max_rules}, "
                 f"validation={c.validation}, comparison trials {'on' if c.comparison_trials else 'off'}",
                 f"generator {c.generator}: tokens by {self.counters['generator']}",
                 f"optimizer {c.optimizer}: tokens by {self.counters['optimizer']}", "",
                 row("phase", "model", "requests/step", "requests", "calls", "prompt tok", "new tok")]
        for p in self.phases:
            le = "<=" if p.at_most else ""
            lines.append(row(p.name, p.role, "" if p.per_step is None else f"{le}{p.per_step}",
                             f"{le}{p.requests}", f"<={p.calls}", ("~" if p.estimated else "")
                             + f"{p.prompt_tokens + p.label_tokens:,}", f"<={p.new_tokens:,}"))
        lines += [row("total", "", "", self.total("requests"), f"<={self.total('calls')}",
                      ("~" if est else "") + f"{self.prompt_tokens:,}", f"<={new:,}"),
                  "calls: model calls with an empty call cache (identical requests run once; "
                  "duplicate candidates make fewer)",
                  "prompt tok: prompt tokens of those calls" + (", label tokens included" if
                  self.mode == "rank" else "") + ("; ~ marks an estimate" if est else "")
                  + "; new tok: at most (the optimizer stops at the end of its list)"]
        lines += [f"  * {a}" for a in self.assumptions]
        if self.price_per_mtok is not None:
            lines.append(f"API cost: about ${self.cost_usd:,.2f} (estimate: {self.prompt_tokens:,} "
                         f"prompt tokens at ${self.price_per_mtok[0]}/M + at most {new:,} new "
                         f"tokens at ${self.price_per_mtok[1]}/M)")
            if self.mode == "rank":
                lines.append("  note: label ranking needs a local model; an API server cannot rank labels")
        if self.tokens_per_second is not None:
            prompt_rate, gen_rate = self.tokens_per_second
            how = f"{new:,} new tokens at {gen_rate:g} tok/s" + (
                f" + {self.prompt_tokens:,} prompt tokens at {prompt_rate:g} tok/s" if prompt_rate
                else "; prompt processing not counted (give PROMPT,GEN tokens per second)")
            s = self.seconds
            took = f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"
            lines.append(f"wall time: about {took} (estimate: {how}; model loading not counted)")
        return "\n".join(lines)


def estimate_cost(config: SEOConfig, *, price_per_mtok=None, tokens_per_second=None,
                  task=None, splits=None, generator_tokenizer: str | None = None,
                  optimizer_tokenizer: str | None = None) -> CostEstimate:
    """Count what ``run_experiment(config, ...)`` would send, loading no model.

    ``price_per_mtok``: ``"IN,OUT"`` USD per million prompt / new tokens;
    ``tokens_per_second``: ``"GEN"`` or ``"PROMPT,GEN"`` tokens per second.
    ``*_tokenizer``: a local folder holding that model's tokenizer files, used
    instead of the one the spec finds."""
    from .build import same_model, task_and_splits

    price = parse_rates(price_per_mtok, "price_per_mtok")
    rate = parse_rates(tokens_per_second, "tokens_per_second", optional_first=True)
    task, splits = task_and_splits(config, task=task, splits=splits)
    gen = token_counter(config.generator, config.generator_options, generator_tokenizer)
    opt = (gen if same_model(config) and optimizer_tokenizer == generator_tokenizer else
           token_counter(config.optimizer, config.optimizer_options, optimizer_tokenizer))
    models = list(dict.fromkeys([gen, opt]))        # one object when M_gen is M_opt, as in a run
    rules = [m.set_task(task, [*splits.train, *splits.dev, *splits.test], config.max_rules)
             for m in models][0]
    experiences = [Experience(config.initial_experience)]
    experiences += [r.experience_after for r in seo_steps(
        task, gen, opt, splits.train, config.replace(min_improvement=-math.inf), experiences[0],
        progress=True)]
    evaluate_run(task, gen, splits, experiences, n_boot=0, progress=True)
    phases = [p for m in models for p in m.counted()]
    for p in phases:
        p.at_most = p.name in AT_MOST
        p.per_step = None if p.per_step is None else p.requests // config.steps

    mode, T = task.answer_mode, config.steps
    notes = [(T, f"estimated: E_t for t >= 1 and every candidate as {rules}, and every step "
                 "accepts a candidate"),
             (T, "estimated: the generator's answers inside the optimizer prompt are the gold "
                 "answers" + ("" if mode == "rank" else
                              f" (they may run to {task.gen_params.max_new_tokens} tokens)")),
             (not gen.exact or not opt.exact, "estimated: token counts without the model's "
              f"tokenizer are characters / {CHARS_PER_TOKEN}, the common rule of thumb for English text"),
             (gen.cache is None, "the call cache is off (SEO_LITE_CACHE): only identical requests "
              "within one call are answered once"),
             (mode == "rank", "label ranking generates no tokens; local backends run a shared prompt "
              "prefix once, so they compute fewer prompt tokens than counted here"),
             (gen.too_long, f"{len(gen.too_long)} example(s) do not fit the generator's context "
              f"window of {gen.context_window} tokens (prompt + answer), e.g. "
              f"{', '.join(sorted(gen.too_long)[:3])}: the run will refuse them; shorten the input "
              "(--task-option max_input_chars=N)")]
    return CostEstimate(config, mode, phases, {"generator": gen.basis, "optimizer": opt.basis},
                        [text for cond, text in notes if cond], price, rate)


__all__ = ["CostEstimate", "Phase", "estimate_cost", "parse_rates", "token_counter", "CHARS_PER_TOKEN"]
