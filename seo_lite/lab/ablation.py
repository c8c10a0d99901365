"""The paper's ablations as grids of runs of one parameterized notebook.

An ablation is a list of :class:`~seo_lite.lab.grid_runner.GridCell`\\ s, each a
set of ``run_seo.ipynb`` parameters (:data:`seo_lite.machinery.params.RUN_PARAMETERS`);
:func:`seo_lite.lab.grid_runner.run_grid` executes them through papermill.  The
paper's ablations, one factor at a time around a baseline:

* stochastic validation vs a fixed validation set vs no validation
  (``VALIDATION = "stochastic" | "fixed" | "none"``);
* comparison trials on / off (the optimizer sees delta_E = s(Y_E) - s(Y), or
  only Y_E);
* the size of the validation set |D_t| (the noise of v(E) on D_t falls like
  1/sqrt(|D_t|), see :mod:`seo_lite.lab.noise_study`);
* a weaker optimizer M_opt: on a CPU the same SmolLM2-135M in 4 bits or sampling
  hot (:data:`WEAK_OPTIMIZERS`), or any model spec (``--weak-optimizer``).

Not in the paper: label ranking with calibration (``CALIBRATION =
"contextual" | "batch"``, :mod:`seo_lite.tasks.calibration`).  These cells
answer "what does SEO learn that calibration does not, and the reverse?":
their test score without E is calibration alone, with E_T both
(``seo_lite.lab.figures.grid_figure("calibration", ...)``).

A grid is data: :data:`GRIDS` holds the package's own, and a lab's grid is a
JSON or TOML file of the same keys (:func:`load_grid_file`; docs/grids.md).
Each setting runs with several seeds.  Secrets never enter a parameter
(:func:`_check_params`: papermill writes parameters into the executed notebook).
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Sequence

from .grid_runner import GridCell
from ..machinery.params import RUN_PARAMETERS
from ..machinery.runs import safe_run_path
from ..llm.secrets import is_secret_name

#: Weaker optimizers that run on a CPU: (parameters changed, what it is).
WEAK_OPTIMIZERS: dict[str, tuple[dict, str]] = {
    "embedded-4bit": ({"OPTIMIZER": "embedded", "OPTIMIZER_OPTIONS": {"load_in_4bit": True}},
                      "SmolLM2-135M quantized to 4 bits (NF4, bitsandbytes) as optimizer; "
                      "the generator stays full precision"),
    "embedded-hot": ({"OPT_TEMPERATURE": 1.6},
                     "the same SmolLM2-135M optimizer sampling at temperature 1.6 instead of 0.8"),
}


def cell_name(factor: str, level: str, seed: int) -> str:
    """A run name that :func:`seo_lite.machinery.runs.safe_run_path` accepts."""
    level = re.sub(r"[^A-Za-z0-9._-]+", "-", str(level)).strip("-.") or "x"
    return f"{factor}-{level}_seed{seed}" if factor != "baseline" else f"baseline_seed{seed}"


def ablation_grid(base: dict | None = None, *, seeds: Sequence[int] = (0, 1, 2),
                  validation: Sequence[str] = ("fixed", "none"),
                  comparison_off: bool = True, val_sizes: Sequence[int] = (),
                  weak_optimizer: str | None = "embedded-4bit",
                  weak_optimizer_options: dict | None = None,
                  calibrations: Sequence[str] = (),
                  factors: dict[str, dict[str, dict]] | None = None) -> list[GridCell]:
    """The one-factor-at-a-time grid around ``base`` (run_seo parameters).

    ``val_sizes`` lists the |D_t| values besides the baseline's own;
    ``weak_optimizer`` is a name of :data:`WEAK_OPTIMIZERS` or any model spec
    (with ``weak_optimizer_options``); ``calibrations`` the label-ranking
    calibrations to train with (rank mode); ``factors`` adds any other factor
    (``{"factor": {"level": {PARAM: value}}}``)."""
    base = dict(base or {})
    settings: list[tuple[str, str, dict]] = [("baseline", "baseline", {})]
    settings += [("validation", v, {"VALIDATION": v}) for v in validation]
    if comparison_off:
        settings.append(("comparison_trials", "off", {"COMPARISON_TRIALS": False}))
    settings += [("val_size", str(n), {"VAL_SIZE": int(n)}) for n in val_sizes]
    if weak_optimizer in WEAK_OPTIMIZERS:
        settings.append(("optimizer", weak_optimizer, WEAK_OPTIMIZERS[weak_optimizer][0]))
    elif weak_optimizer:
        settings.append(("optimizer", weak_optimizer, {"OPTIMIZER": weak_optimizer,
                                                       "OPTIMIZER_OPTIONS": dict(weak_optimizer_options or {})}))
    settings += [("calibration", c, {"CALIBRATION": c}) for c in calibrations]
    for factor, levels in (factors or {}).items():
        settings += [(factor, str(level), dict(change)) for level, change in levels.items()]
    for _, _, change in [("", "", base)] + settings:
        _check_params(change)
    cells = []
    for factor, level, change in settings:
        for seed in seeds:
            params = {**base, **change, "SEED": int(seed)}
            cells.append(GridCell(cell_name(factor, level, seed), factor, level, int(seed), params))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ValueError("two grid cells got the same name; make the levels distinct")
    return cells


def _check_params(params: dict) -> None:
    unknown = sorted(set(params) - set(RUN_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown run_seo parameter(s) in the grid: {', '.join(unknown)}")
    for k in params:
        if k.endswith("OPTIONS") and any(is_secret_name(o) for o in (params[k] or {})):
            raise ValueError(f"{k} holds a secret option; papermill would write it into the "
                             "executed notebook. Put API keys in the environment instead "
                             "(OPENAI_API_KEY, HF_TOKEN).")


# -- named grids and the command line ----------------------------------------------------------
#: The grids behind the committed figures (``figures/README.md`` says what each costs).
GRIDS: dict[str, dict[str, Any]] = {
    # TREC, label ranking, embedded model: the CPU grid of figures/
    "trec-rank": dict(
        base={"TASK": "trec", "ANSWER_MODE": "rank", "PRESET": "classroom", "STEPS": 3,
              "BATCH_SIZE": 2, "NUM_CANDIDATES": 2, "VAL_SIZE": 8, "TRAIN_SIZE": 40,
              "DEV_SIZE": 24, "TEST_SIZE": 60, "OPT_MAX_NEW_TOKENS": 48},
        seeds=(0, 1), validation=("fixed", "none"), comparison_off=True,
        val_sizes=(4, 16), weak_optimizer="embedded-4bit"),
    # SST-2, label ranking, embedded model: the quick start's own budget (classroom),
    # so the baseline cells are the quick start; 27 cells, 2-5 minutes each on 2 cores
    "sst2-rank": dict(
        base={"TASK": "sst2", "ANSWER_MODE": "rank", "PRESET": "classroom"},
        seeds=(0, 1, 2), validation=("fixed", "none"), comparison_off=True,
        val_sizes=(4, 32), weak_optimizer="embedded-hot",
        calibrations=("contextual", "batch")),
    # a minute or two: checks the pipeline end to end
    "smoke": dict(
        base={"TASK": "trec", "ANSWER_MODE": "rank", "PRESET": "smoke", "STEPS": 1,
              "BATCH_SIZE": 1, "NUM_CANDIDATES": 2, "VAL_SIZE": 4, "TRAIN_SIZE": 12,
              "DEV_SIZE": 4, "TEST_SIZE": 4, "OPT_MAX_NEW_TOKENS": 32},
        seeds=(0,), validation=("none",), comparison_off=False, val_sizes=(),
        weak_optimizer=None),
}
GRIDS["trec-score"] = GRIDS["trec-rank"]    # its old name ("score" was rank mode's): old run dirs resume


GRID_KEYS = {"base", "seeds", "tasks", "validation", "comparison_off", "val_sizes",
             "weak_optimizer", "weak_optimizer_options", "calibrations", "factors"}


def load_grid_file(path: str | os.PathLike) -> dict:
    """A grid from a JSON or TOML file with the keys of :data:`GRIDS` entries
    (``base``, ``seeds``, the factors) and ``tasks`` (one grid per task)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        spec = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except ValueError as e:
        raise ValueError(f"{path} is not a valid {path.suffix[1:] or 'JSON'} grid file: {e}") from None
    unknown = sorted(set(spec) - GRID_KEYS) if isinstance(spec, dict) else ["(not a table)"]
    if unknown:
        raise ValueError(f"{path}: unknown grid key(s) {', '.join(unknown)}; keys: {', '.join(sorted(GRID_KEYS))}")
    return spec


def grid_spec(name: str) -> dict:
    """A grid of :data:`GRIDS` by name, or a grid file by path."""
    if name in GRIDS:
        return dict(GRIDS[name])
    if name.endswith((".json", ".toml")):
        return load_grid_file(name)
    raise ValueError(f"unknown grid {name!r}; grids: {', '.join(GRIDS)}, or a .json/.toml grid file")


def grid_cells(spec: dict, *, base: dict | None = None, seeds: Sequence[int] | None = None,
               task: str | None = None) -> list[GridCell]:
    """The cells of a grid spec; ``base`` changes every cell's parameters (the
    command's model and budget flags), ``task`` picks the task."""
    spec = {k: v for k, v in spec.items() if k != "tasks"}
    if seeds is not None:
        spec["seeds"] = tuple(seeds)
    params = {**spec.pop("base", {}), **(base or {}), **({"TASK": task} if task else {})}
    return sorted(ablation_grid(params, **spec), key=lambda c: c.seed)  # an early stop leaves whole seeds


def knob_values(args) -> dict:
    """The SEOConfig fields given as flags or ``--set`` (field names, only those given)."""
    from ..method.config import ConfigError
    from ..machinery.params import KNOBS, pairs

    values = pairs(args.set, "--set")
    unknown = sorted(set(values) - set(KNOBS))
    if unknown:
        raise ConfigError(f"--set: unknown field(s) {', '.join(unknown)}; fields: {', '.join(KNOBS)}")
    for k in KNOBS.values():
        v = getattr(args, k.field, None)
        if v is not None:
            values[k.field] = pairs(v, k.flag) if k.type is dict else v
    return values


def add_grid_flags(ap, *, fan_out: bool = True) -> None:
    """The model and budget flags (one per SEOConfig field, from
    :mod:`seo_lite.machinery.params`), the dry run and, for grids, the fan-out."""
    from ..machinery.params import add_cost_flags, add_run_flags

    add_run_flags(ap)
    ap.set_defaults(preset=None)                       # None: the grid's own preset
    add_cost_flags(ap)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    if not fan_out:
        return
    from .fanout import ENGINES

    g = ap.add_argument_group("fan-out (seo_lite.lab.fanout)")
    g.add_argument("--engine", choices=ENGINES, default="serial", help="default %(default)s; "
                   "see python -m pydoc seo_lite.lab.fanout")
    g.add_argument("--workers", type=int, default=2, help="local/pool: processes at once")
    g.add_argument("--print-commands", action="store_true",
                   help="print one shell command per pending cell (for any scheduler) and stop")
    g.add_argument("--logs", help="submitit's logs (shared storage; default <grid>/submitit-logs)")
    g.add_argument("--print-sbatch", action="store_true", help="print the sbatch file slurm would submit")
    for flag, typ, text in (("--slurm-partition", str, "partition"), ("--gpus-per-node", int, "GPUs per cell"),
                            ("--cpus-per-task", int, "CPUs per cell"), ("--timeout-min", int, "minutes per cell"),
                            ("--mem-gb", int, "memory per cell"),
                            ("--array-parallelism", int, "cells running at once")):
        g.add_argument(flag, type=typ, help=f"slurm: {text}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seo_lite.lab.ablation GRID [--generator SPEC ...] [--engine local --workers 2]``:
    run (or resume) a grid of :data:`GRIDS` or a JSON/TOML grid file into
    ``<runs>/<GRID>/`` (``<runs>/<GRID>/<task>/`` for a grid of several tasks)."""
    import argparse

    from ..method.config import ConfigError
    from . import fanout

    ap = argparse.ArgumentParser(prog="python -m seo_lite.lab.ablation", description=main.__doc__)
    ap.add_argument("grid", help=f"{', '.join(GRIDS)} or a .json/.toml grid file")
    ap.add_argument("--runs", default="runs", help="folder that holds the grid's folder")
    ap.add_argument("--weak-optimizer", help=f"{', '.join(WEAK_OPTIMIZERS)}, any model spec, or none")
    ap.add_argument("--weak-optimizer-option", action="append", metavar="KEY=VALUE")
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--notebook", default=None,
                    help="path of run_seo.ipynb (default: found from the working folder)")
    add_grid_flags(ap)
    args = ap.parse_args(argv)
    try:
        from ..machinery.params import KNOBS, pairs

        spec = grid_spec(args.grid)
        if args.weak_optimizer:
            spec["weak_optimizer"] = None if args.weak_optimizer == "none" else args.weak_optimizer
            spec["weak_optimizer_options"] = pairs(args.weak_optimizer_option, "--weak-optimizer-option")
        base = {KNOBS[f].param: v for f, v in knob_values(args).items()}
        base.update({"PRESET": args.preset} if args.preset else {})
        tasks = [base.pop("TASK")] if "TASK" in base else list(spec.get("tasks") or [None])
        name = Path(args.grid).stem if args.grid not in GRIDS else args.grid
        grids = [(safe_run_path(args.runs, name) if len(tasks) == 1 else
                  safe_run_path(safe_run_path(args.runs, name), str(t).replace(":", "_")),
                  grid_cells(spec, base=base, seeds=args.seeds, task=t)) for t in tasks]
    except (ConfigError, ValueError, OSError) as e:
        ap.error(str(e))
    if args.dry_run:
        from ..machinery.params import setup_from_parameters

        rows = [(f"{d.name}/{c.name}" if len(grids) > 1 else c.name,
                 setup_from_parameters(**c.params).config) for d, cells in grids for c in cells]
        fanout.print_costs(rows, price_per_mtok=args.price_per_mtok,
                           tokens_per_second=args.tokens_per_second)
        return 0
    t0, failed = time.time(), 0
    engine = "commands" if args.print_commands else "sbatch" if args.print_sbatch else args.engine
    for grid_dir, cells in grids:
        try:
            done = fanout.fan_out(cells, grid_dir, engine=engine, workers=args.workers,
                                  notebook=args.notebook, kernel_name=args.kernel, logs=args.logs,
                                  slurm=fanout.slurm_parameters(args),
                                  log=print if engine in fanout.ENGINES[:4] else lambda s: None)
        except (FileNotFoundError, RuntimeError) as e:   # run_seo.ipynb is not in the package
            print(f"{ap.prog}: error: {e}", file=sys.stderr)
            return 2
        bad = [d for d in done if engine != "slurm" and d[1] == "failed"]
        failed += len(bad)
        for name_, _, error in bad:
            print(f"failed  {name_}: {error}")
        if engine in fanout.ENGINES[:4]:
            print(f"{(time.time() - t0) / 60:.1f} min; status: python -m seo_lite.lab.grid_runner "
                  f"status {grid_dir}")
    return 1 if failed else 0


__all__ = ["WEAK_OPTIMIZERS", "GRIDS", "ablation_grid", "cell_name", "grid_cells",
           "grid_spec", "load_grid_file", "knob_values", "add_grid_flags", "main"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
