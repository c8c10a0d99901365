"""SEOConfig: every hyperparameter and ablation switch, with presets.

One object describes a run completely (it is written to ``config.json`` in
the run directory and a run resumes only with the same config).  The paper's
knobs and their names here:

==========================  =====================  =================================
paper                        field                  note
==========================  =====================  =================================
training steps T             ``steps``
mini-batch size n            ``batch_size``
candidates per example k     ``num_candidates``
validation set size |D_t|    ``val_size``           drawn fresh each step
rule cap                     ``max_rules``
ablation: no validation      ``validation="none"``  a random candidate taken unchecked
ablation: fixed validation   ``validation="fixed"`` one D drawn once and reused
ablation: no comparison      ``comparison_trials=False``  optimizer sees no delta
weaker optimizer             ``optimizer=...``      any model spec
==========================  =====================  =================================

The paper's exact hyperparameters are not public in our summary; the presets
are ours: ``smoke`` (seconds, for tests), ``classroom`` (minutes on a laptop
CPU with the embedded model), ``paper`` (a GPU with 4-bit Llama-2, or an API).

Secrets (``api_key``, ``token``, ...; :mod:`seo_lite.llm.secrets`) stay in the
object for the model, never in ``to_dict`` (hence ``config.json``) or ``repr``.

Each field carries a few words of help and the paper's symbol
(:func:`knob`); the notebook parameters, the ``seo-lite run`` flags and their
``--help`` are derived from them (:mod:`seo_lite.machinery.params`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..llm.secrets import REDACTED, SECRET_OPTION, is_secret_name, public_options  # noqa: F401

VALIDATION_MODES = ("stochastic", "fixed", "none")
OPTION_FIELDS = ("task_options", "generator_options", "optimizer_options")


def knob(default: Any, help: str, symbol: str | None = None):
    """A config field with its help text and the paper's symbol (for flags and docs)."""
    meta = {"help": help, "symbol": symbol}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A setting that cannot work; raised before any model call."""


@dataclass(frozen=True)
class SEOConfig:
    # what to optimize, with which models
    task: str = knob("sst2", "task name (`seo-lite tasks` lists them)")
    answer_mode: str | None = knob(None, "generate (free text, as the paper) | rank (rank the "
                                   "labels by log-likelihood) | auto (rank for a local model "
                                   "on a labelled task)")
    calibration: str = knob("none", "label ranking only: none | contextual | batch "
                            "(divide out the model's label prior)")
    task_options: dict = knob({}, "extra task options, e.g. max_new_tokens")
    generator: str = knob("embedded", "model spec: embedded | hf:<id, folder or .gguf> | "
                          "openai:<model>", "M_gen")
    optimizer: str = knob("embedded", "model spec of the optimizer", "M_opt")
    generator_options: dict = knob({}, "model options, e.g. load_in_4bit, base_url, batch_size")
    optimizer_options: dict = knob({}, "the optimizer's model options")
    data_source: str = knob("local", "local (the shipped samples, or SEO_LITE_DATA) | hub")
    # data
    train_size: int = knob(60, "training examples (B_t and D_t are drawn from them)")
    dev_size: int = knob(40, "dev examples (the held-out learning curve)")
    test_size: int = knob(100, "test examples (the final comparison)")
    # the algorithm
    steps: int = knob(6, "training steps", "T")
    batch_size: int = knob(2, "mini-batch size (trials per step)", "n")
    num_candidates: int = knob(2, "candidate experiences per trial", "k")
    val_size: int = knob(16, "validation examples, drawn fresh each step", "|D_t|")
    max_rules: int = knob(5, "most rules an experience may hold")
    initial_experience: tuple[str, ...] = knob((), "the starting rules", "E_0")
    gen_temperature: float = knob(0.0, "the generator's sampling temperature")
    opt_temperature: float = knob(0.8, "the optimizer's sampling temperature")
    opt_top_p: float = knob(0.95, "the optimizer's nucleus sampling top_p")
    opt_max_new_tokens: int = knob(160, "longest optimizer reply, in tokens")
    opt_prefix: str = knob("1.", "the optimizer's reply starts with this (local models)")
    min_improvement: float = knob(0.0, "accept E* only if v(E*) > v(E_t) + this")
    # ablations
    validation: str = knob("stochastic", "stochastic (fresh D_t) | fixed (one D, drawn once) | "
                           "none (take a candidate unchecked)")
    comparison_trials: bool = knob(True, "show the optimizer the answer without E and delta "
                                   "(off: an ablation)")
    # evaluation and reproducibility
    bootstrap: int = knob(1000, "bootstrap resamples for the 95% intervals")
    seed: int = knob(0, "the random seed (every draw of step t derives from it)")

    def __post_init__(self):
        from ..tasks.base import normalize_answer_mode     # "score" is the old name of "rank"

        object.__setattr__(self, "initial_experience", tuple(self.initial_experience))
        object.__setattr__(self, "answer_mode", normalize_answer_mode(self.answer_mode))
        self.validate()

    def validate(self) -> None:
        def need(cond, msg):
            if not cond:
                raise ConfigError(msg)

        for name in ("steps", "batch_size", "num_candidates", "val_size", "max_rules",
                     "train_size", "opt_max_new_tokens"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool),
                 f"{name} must be an integer, got {v!r}")
        need(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
        need(self.batch_size >= 1, f"batch_size (n) must be >= 1, got {self.batch_size}")
        need(self.num_candidates >= 1,
             f"num_candidates (k) must be >= 1, got {self.num_candidates}: with no candidates "
             "there is nothing to select")
        need(self.max_rules >= 1, f"max_rules must be >= 1, got {self.max_rules}")
        need(self.val_size >= 1, f"val_size (|D_t|) must be >= 1, got {self.val_size}")
        need(self.validation in VALIDATION_MODES,
             f"validation must be one of {VALIDATION_MODES}, got {self.validation!r}")
        from ..tasks.calibration import CALIBRATIONS

        need(self.calibration in CALIBRATIONS,
             f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        need(self.calibration == "none" or self.answer_mode != "generate",
             f"calibration={self.calibration!r} applies to label ranking (answer_mode='rank')")
        need(self.data_source in ("local", "hub"),
             f"data_source must be 'local' or 'hub', got {self.data_source!r}")
        need(self.train_size >= 1 and self.dev_size >= 0 and self.test_size >= 0,
             "train_size must be >= 1 and dev_size, test_size >= 0")
        need(self.batch_size <= self.train_size,
             f"batch_size (n={self.batch_size}) is larger than the training split "
             f"(train_size={self.train_size})")
        if self.validation == "stochastic":
            need(self.val_size <= self.train_size - self.batch_size,
                 f"val_size (|D_t|={self.val_size}) is larger than the training examples left "
                 f"after the mini-batch (train_size {self.train_size} - batch_size "
                 f"{self.batch_size} = {self.train_size - self.batch_size}); D_t is drawn from "
                 "the training split without the mini-batch")
        elif self.validation == "fixed":
            need(self.val_size <= self.train_size,
                 f"val_size (|D|={self.val_size}) is larger than the training split "
                 f"(train_size={self.train_size})")
        need(self.gen_temperature >= 0 and self.opt_temperature >= 0, "temperatures must be >= 0")
        need(0 < self.opt_top_p <= 1, f"opt_top_p must be in (0, 1], got {self.opt_top_p}")
        need(self.bootstrap >= 0, "bootstrap must be >= 0")
        need(all(isinstance(r, str) and r.strip() for r in self.initial_experience),
             "initial_experience must be a list of non-empty rule strings")
        need(len(self.initial_experience) <= self.max_rules,
             f"initial_experience has {len(self.initial_experience)} rules, more than "
             f"max_rules={self.max_rules}")

    # -- presets and (de)serialisation ------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> "SEOConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SEOConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; "
                              f"valid keys: {', '.join(sorted(names))}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Every field, without secrets (what ``config.json`` holds)."""
        d = asdict(self)
        d["initial_experience"] = list(self.initial_experience)
        for name in OPTION_FIELDS:
            d[name] = public_options(d[name])
        return d

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in OPTION_FIELDS:
                v = public_options(v, mark=True)
            shown.append(f"{f.name}={v!r}")
        return f"SEOConfig({', '.join(shown)})"

    def replace(self, **changes) -> "SEOConfig":
        return replace(self, **changes)

    def differences(self, other: "SEOConfig", ignore=("steps", "bootstrap")) -> dict[str, tuple]:
        """Keys whose values differ (``steps`` may grow: a run can be extended);
        secrets are not compared (a run directory never holds them)."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU: for tests and for checking a set-up
    "smoke": dict(steps=2, batch_size=2, num_candidates=2, val_size=6, max_rules=3,
                  train_size=16, dev_size=8, test_size=8, opt_max_new_tokens=64, bootstrap=200),
    # a few minutes on a 2-core CPU with the embedded model (the quick start)
    "classroom": dict(steps=6, batch_size=2, num_candidates=2, val_size=16, max_rules=5,
                      train_size=60, dev_size=40, test_size=100, opt_max_new_tokens=120),
    # a GPU with 4-bit Llama-2, or an API model; hours, not minutes
    "paper": dict(steps=20, batch_size=4, num_candidates=4, val_size=32, max_rules=10,
                  train_size=150, dev_size=50, test_size=100, opt_max_new_tokens=400,
                  bootstrap=2000),
}
