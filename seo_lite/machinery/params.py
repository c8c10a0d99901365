"""The knobs of one run, derived from :class:`SEOConfig`'s fields: notebook parameters and CLI flags.

Every field of ``SEOConfig`` is one knob, under two spellings: the
parameter ``STEPS`` of ``run_seo.ipynb`` (papermill ``-p STEPS 3``, a grid
cell's parameters) and the flag ``--steps 3`` of ``seo-lite run``
(docs/architecture.md, "One knob list").

A knob left at None takes the preset's value (``classroom`` unless ``PRESET``
/ ``--preset`` says otherwise), else the field's default; :func:`make_setup`
resolves the two that depend on others.  In a notebook, keep credentials in
the environment: papermill writes every parameter into the executed copy.
"""
from __future__ import annotations

import json
import os
import sys
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from .build import make_models, resolve_answer_mode
from ..method.config import PRESETS, ConfigError, SEOConfig
from ..llm.secrets import is_secret_name

DEFAULT_PRESET = "classroom"
GENERATOR_DEFAULTS = ("optimizer", "optimizer_options")   # None: the generator's
FLAG_NAMES = {"initial_experience": "--rule"}              # kept from the first CLI


@dataclass(frozen=True)
class Knob:
    """One SEOConfig field as a notebook parameter and a command-line flag."""

    field: str
    param: str                  # STEPS
    flag: str                   # --steps
    type: Any                   # int, float, str, bool, dict or list
    help: str
    symbol: str | None

    def default(self, preset: str = DEFAULT_PRESET) -> Any:
        """The value a run takes when this knob is not given (None: see :meth:`describe_default`)."""
        if self.field in GENERATOR_DEFAULTS:
            return None
        return PRESETS[preset].get(self.field, _field_default(self.field))

    def describe_default(self, preset: str = DEFAULT_PRESET) -> str:
        if self.field == "optimizer":
            return "the generator"
        if self.field == "optimizer_options":
            return "the generator's, when the optimizer is the generator"
        if self.field == "answer_mode":
            return "the task's own; notebooks: auto"
        if any(self.field in p for p in PRESETS.values()):
            others = ", ".join(f"{n} {self.default(n)}" for n in PRESETS if n != preset)
            return f"{self.default(preset)}; presets {others}"
        value = self.default(preset)
        return "none" if value in ({}, ()) else str(value)


def _field_default(name: str) -> Any:
    f = next(f for f in fields(SEOConfig) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default


def _knob_type(hint) -> Any:
    if hint in (int, float, bool, str, dict):
        return hint
    if typing.get_origin(hint) is tuple or hint is tuple:
        return list
    return str                                   # str | None


def _knobs() -> dict[str, Knob]:
    hints = typing.get_type_hints(SEOConfig)
    out = {}
    for f in fields(SEOConfig):
        typ = _knob_type(hints[f.name])
        if typ is dict and f.name.endswith("_options"):
            flag = "--" + f.name[: -len("s")].replace("_", "-")          # --generator-option
        else:
            flag = FLAG_NAMES.get(f.name, "--" + f.name.replace("_", "-"))
        out[f.name] = Knob(f.name, f.name.upper(), flag, typ, f.metadata.get("help", ""),
                           f.metadata.get("symbol"))
    return out


#: Every SEOConfig field as a knob, in the dataclass's order.
KNOBS: dict[str, Knob] = _knobs()

#: Every parameter of ``run_seo.ipynb`` with its default (a field's None: the preset's value).
RUN_PARAMETERS: dict[str, Any] = {
    "PRESET": DEFAULT_PRESET,
    **{k.param: None for k in KNOBS.values()},
    "ANSWER_MODE": "auto",         # notebooks and grids: label ranking where it can work
    "CONFIG_OVERRIDES": {},
    "OUT_DIR": "runs/run_seo",
    # the dry run (seo_lite.machinery.dryrun): what the run will cost, printed before any model loads
    "DRY_RUN": False,
    "PRICE_PER_MTOK": None,        # "IN,OUT": USD per million prompt / new tokens
    "TOKENS_PER_SECOND": None,     # "GEN" or "PROMPT,GEN": for a wall-time estimate
}


@dataclass
class RunSetup:
    """A validated config and its run directory."""

    config: SEOConfig
    out_dir: Path

    def secrets(self) -> list[tuple[str, Any]]:
        """(name, value) of the secret options (API keys) of both models: held by the
        config, never written."""
        return [(k, v) for options in (self.config.generator_options, self.config.optimizer_options)
                for k, v in options.items() if is_secret_name(k)]

    def models(self):
        """The generator and optimizer (one object when they are the same model)."""
        return make_models(self.config)

    def describe(self) -> str:
        """The config as JSON, for the notebook to print (no secret in it)."""
        hidden = sorted({k for k, _ in self.secrets()})
        note = f"\n(secret options kept out of the config file: {', '.join(hidden)})" if hidden else ""
        return json.dumps(self.config.to_dict(), indent=1, sort_keys=True) + note


def make_setup(values: dict[str, Any], *, preset: str = DEFAULT_PRESET,
               overrides: dict | None = None, out_dir: str | os.PathLike | None = None) -> RunSetup:
    """The one place where knob values (by field name; None: not given) become a
    config: the optimizer defaults to the generator, ``"auto"`` is resolved, the
    preset fills the rest."""
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}; "
                          f"valid keys: {', '.join(KNOBS)}")
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    given = {**(overrides or {}), **{k: v for k, v in values.items() if v is not None}}
    base = {**{k.field: k.default(preset) for k in KNOBS.values()}, **given}
    generator = base["generator"]
    optimizer = given.get("optimizer") or generator
    opt_options = given.get("optimizer_options")
    if opt_options is None:
        opt_options = base["generator_options"] if optimizer == generator else {}
    given.update(optimizer=optimizer, optimizer_options=dict(opt_options),
                 answer_mode=resolve_answer_mode(base["answer_mode"], base["task"], generator))
    config = SEOConfig.preset(preset, **given)
    return RunSetup(config, Path(out_dir if out_dir is not None else RUN_PARAMETERS["OUT_DIR"]))


def setup_from_parameters(**params) -> RunSetup:
    """Turn the notebook's parameters (the names of :data:`RUN_PARAMETERS`) into
    a validated :class:`SEOConfig` and the run directory.  Unknown names are an
    error, so a typo in a papermill ``-p`` does not pass silently."""
    unknown = sorted(set(params) - set(RUN_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown run_seo parameter(s) {', '.join(unknown)}; "
                         f"parameters: {', '.join(RUN_PARAMETERS)}")
    p = {**RUN_PARAMETERS, **params}
    dicts = [k.param for k in KNOBS.values() if k.type is dict] + ["CONFIG_OVERRIDES"]
    for name in dicts:
        if isinstance(p[name], str):             # papermill -p passes text; accept JSON
            try:
                p[name] = json.loads(p[name])
            except ValueError:
                raise ValueError(f"{name} must be a dict (or its JSON text), got {p[name]!r}") from None
        if p[name] is not None and not isinstance(p[name], dict):
            raise ValueError(f"{name} must be a dict, got {type(p[name]).__name__}")
    values = {k.field: p[k.param] for k in KNOBS.values()}
    return make_setup(values, preset=p["PRESET"], overrides=p["CONFIG_OVERRIDES"],
                      out_dir=p["OUT_DIR"])


# -- the command line ---------------------------------------------------------------------------
def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def pairs(items, what: str) -> dict:
    """``["KEY=VALUE", ...]`` -> a dict (values read as JSON when they are)."""
    out = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} takes KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = _value(val)
    return out


def add_run_flags(parser) -> None:
    """One flag per knob on ``parser`` (``seo-lite run``), with help and default."""
    import argparse

    from ..method.config import VALIDATION_MODES
    from ..tasks.base import ANSWER_MODE_CHOICES

    choices = {"validation": VALIDATION_MODES, "answer_mode": ANSWER_MODE_CHOICES}
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=list(PRESETS),
                        help="the budget the other flags start from (default %(default)s)")
    for k in KNOBS.values():
        sym = f"{k.symbol}: " if k.symbol else ""
        text = f"{sym}{k.help} (default {k.describe_default()})".replace("%", "%%")
        if k.type is bool:
            parser.add_argument(k.flag, dest=k.field, action=argparse.BooleanOptionalAction,
                                default=None, help=text)
        elif k.type in (dict, list):
            meta = "KEY=VALUE" if k.type is dict else "RULE"
            parser.add_argument(k.flag, dest=k.field, action="append", metavar=meta,
                                help=text + " (repeatable)")
        else:
            parser.add_argument(k.flag, dest=k.field, type=k.type, default=None,
                                choices=choices.get(k.field), help=text)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="any SEOConfig field by name (repeatable)")


def add_cost_flags(parser) -> None:
    """``--dry-run`` and what it prices with (:mod:`seo_lite.machinery.dryrun`)."""
    parser.add_argument("--dry-run", action="store_true",
                        help="print the model calls and tokens this run will need (and a cost or "
                        "time with the two flags below), then stop: no model is loaded")
    parser.add_argument("--price-per-mtok", metavar="IN,OUT",
                        help="USD per million prompt and new tokens, for an API cost estimate")
    parser.add_argument("--tokens-per-second", metavar="[PROMPT,]GEN",
                        help="generated (and prompt) tokens per second, for a wall-time estimate")


def parse_rates(value, what: str, *, optional_first: bool = False) -> tuple | None:
    """``"IN,OUT"`` (or a pair) -> two non-negative floats; with ``optional_first``
    a single number is the second one (``"20"`` or ``20`` -> ``(None, 20.0)``)."""
    if value is None:
        return None
    parts = ([p.strip() for p in value.split(",")] if isinstance(value, str) else
             list(value) if isinstance(value, (tuple, list)) else [value])
    parts = [None] + parts if optional_first and len(parts) == 1 else parts
    try:
        out = tuple(None if p in (None, "") else float(p) for p in parts)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 2:
        raise ConfigError(f"{what} takes two numbers IN,OUT, got {value!r}")
    if out[1] is None or any(x is not None and not x >= 0 for x in out):
        raise ConfigError(f"{what} takes non-negative numbers, got {value!r}")
    if optional_first and out[1] == 0:
        raise ConfigError(f"{what}: the generation rate must be > 0, got {value!r}")
    return out


def setup_from_args(args, out_dir=None) -> RunSetup:
    """The :class:`RunSetup` of parsed ``seo-lite run`` flags."""
    values = {}
    if getattr(args, "answer_mode", None) == "score":
        print("seo-lite: note: --answer-mode score is now called --answer-mode rank "
              "('score' means only the task's metric)", file=sys.stderr)
    for k in KNOBS.values():
        v = getattr(args, k.field)
        values[k.field] = pairs(v, k.flag) if (k.type is dict and v is not None) else v
    return make_setup(values, preset=args.preset, overrides=pairs(args.set, "--set"),
                      out_dir=out_dir)
