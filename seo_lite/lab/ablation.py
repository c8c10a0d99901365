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
* a weaker optimizer M_opt.  On a CPU the embedded model is the only local
  model, so "weaker" is the same SmolLM2-135M loaded in 4 bits (NF4 through
  bitsandbytes: a coarser copy of the same weights) or the same model
  sampling at a much higher temperature; :data:`WEAK_OPTIMIZERS` names both
  and each cell records which one it used.  On a GPU, pass any model spec.

Not in the paper: label ranking with calibration (``CALIBRATION =
"contextual" | "batch"``, :mod:`seo_lite.tasks.calibration`).  These cells
answer "what does SEO learn that calibration does not, and the reverse?":
their test score without E is calibration alone, with E_T both
(:func:`seo_lite.lab.figures.calibration_figure`).

Each setting runs with several seeds, so figures can show the spread across
seeds (:func:`seo_lite.method.stats.across_seeds`).  Secrets never enter a
parameter (papermill writes parameters into the executed notebook): API keys
stay in the environment (``OPENAI_API_KEY``, ``HF_TOKEN``).
"""
from __future__ import annotations

import re
import sys
import time
from typing import Any, Sequence

from .grid_runner import GridCell, run_grid
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
                  calibrations: Sequence[str] = (),
                  extra: dict[str, dict] | None = None) -> list[GridCell]:
    """The one-factor-at-a-time grid around ``base`` (run_seo parameters).

    ``val_sizes`` lists the |D_t| values besides the baseline's own;
    ``calibrations`` the label-ranking calibrations to train with (rank mode);
    ``extra`` adds named settings (``{"label": {PARAM: value}}``)."""
    base = dict(base or {})
    unknown = sorted(set(base) - set(RUN_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown run_seo parameter(s) in the base: {', '.join(unknown)}")
    for k in base:
        if k.endswith("OPTIONS") and any(is_secret_name(o) for o in (base[k] or {})):
            raise ValueError(f"{k} holds a secret option; papermill would write it into the "
                             "executed notebook. Put API keys in the environment instead "
                             "(OPENAI_API_KEY, HF_TOKEN).")
    settings: list[tuple[str, str, dict]] = [("baseline", "baseline", {})]
    settings += [("validation", v, {"VALIDATION": v}) for v in validation]
    if comparison_off:
        settings.append(("comparison_trials", "off", {"COMPARISON_TRIALS": False}))
    settings += [("val_size", str(n), {"VAL_SIZE": int(n)}) for n in val_sizes]
    if weak_optimizer:
        if weak_optimizer not in WEAK_OPTIMIZERS:
            raise ValueError(f"unknown weak optimizer {weak_optimizer!r}; "
                             f"choose from {', '.join(WEAK_OPTIMIZERS)}")
        settings.append(("optimizer", weak_optimizer, WEAK_OPTIMIZERS[weak_optimizer][0]))
    settings += [("calibration", c, {"CALIBRATION": c}) for c in calibrations]
    for label, change in (extra or {}).items():
        settings.append(("extra", label, dict(change)))
    cells = []
    for factor, level, change in settings:
        for seed in seeds:
            params = {**base, **change, "SEED": int(seed)}
            cells.append(GridCell(cell_name(factor, level, seed), factor, level, int(seed), params))
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise ValueError("two grid cells got the same name; make the levels distinct")
    return cells


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


def named_grid(name: str, *, seeds: Sequence[int] | None = None) -> list[GridCell]:
    """The cells of a grid of :data:`GRIDS`, ordered seed by seed (so an early
    stop leaves every setting with the same seeds)."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; grids: {', '.join(GRIDS)}")
    spec = dict(GRIDS[name])
    if seeds is not None:
        spec["seeds"] = tuple(seeds)
    cells = ablation_grid(spec.pop("base"), **spec)
    return sorted(cells, key=lambda c: c.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seo_lite.lab.ablation GRID [--runs runs] [--seeds 0 1] [--notebook PATH]``:
    run (or resume) a named grid into ``<runs>/<GRID>/``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m seo_lite.lab.ablation", description=main.__doc__)
    ap.add_argument("grid", choices=list(GRIDS))
    ap.add_argument("--runs", default="runs", help="folder that holds the grid's folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--kernel", default="python3")
    ap.add_argument("--notebook", default=None,
                    help="path of run_seo.ipynb (default: found from the working folder)")
    args = ap.parse_args(argv)
    cells = named_grid(args.grid, seeds=args.seeds)
    grid_dir = safe_run_path(args.runs, args.grid)
    t0 = time.time()
    try:
        status = run_grid(cells, grid_dir, notebook=args.notebook, kernel_name=args.kernel)
    except FileNotFoundError as e:                # run_seo.ipynb is not in the package
        print(f"{ap.prog}: error: {e} (--notebook PATH)", file=sys.stderr)
        return 2
    failed = [s for s in status if s.status == "failed"]
    print(f"{len(status)} cells: {sum(s.status == 'ran' for s in status)} ran, "
          f"{sum(s.status == 'done' for s in status)} already finished, {len(failed)} failed; "
          f"{(time.time() - t0) / 60:.1f} min")
    return 1 if failed else 0


__all__ = ["WEAK_OPTIMIZERS", "GRIDS", "ablation_grid", "cell_name", "named_grid", "main"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
