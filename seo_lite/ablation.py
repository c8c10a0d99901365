"""Ablations as a grid of runs of one parameterized notebook.

The unit of reproduction is ``notebooks/run_seo.ipynb``: one cell tagged
``parameters`` (papermill) holds every knob, and the notebook calls
:func:`seo_lite.experiment.run_experiment`.  An ablation is a list of
*cells*, each a set of those parameters, and the grid runs every cell as

    papermill run_seo.ipynb  <grid>/<name>.ipynb  -p ...  OUT_DIR=<grid>/<name>/

The paper's ablations, one factor at a time around a baseline:

* stochastic validation vs a fixed validation set vs no validation
  (``validation = "stochastic" | "fixed" | "none"``);
* comparison trials on / off (the optimizer sees delta_E = s(Y_E) - s(Y), or
  only Y_E);
* the size of the validation set |D_t| (the noise of v(E) on D_t falls like
  1/sqrt(|D_t|), see :func:`validation_noise`);
* a weaker optimizer M_opt.  On a CPU the embedded model is the only local
  model, so "weaker" is the same SmolLM2-135M loaded in 4 bits (NF4 through
  bitsandbytes: a coarser copy of the same weights) or the same model
  sampling at a much higher temperature; :data:`WEAK_OPTIMIZERS` names both
  and each cell records which one it used.  On a GPU, pass any model spec.

Each setting runs with several seeds, so figures can show the spread across
seeds (:func:`seo_lite.stats.across_seeds`).

Resuming.  A cell is finished when its run directory holds ``final.json``;
an interrupted grid, run again, skips finished cells and re-executes the
others, and a half-finished run directory resumes after its last logged step
(the run directory's own resume).  Every execution is appended to
``<grid>/executions.jsonl``, which is how one can check that nothing ran twice.

Secrets never enter a parameter: papermill writes parameters into the
executed notebook, and the run directory stores the config.  API keys stay
in the environment (``OPENAI_API_KEY``, ``HF_TOKEN``); :func:`split_secrets`
keeps them out of every file when a user passes one anyway.
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .config import SEOConfig, is_secret_name
from .llm.cache import atomic_write_text
from .runs import RunError, safe_run_path

REPO = Path(__file__).resolve().parents[1]
RUN_NOTEBOOK = REPO / "notebooks" / "run_seo.ipynb"
LOCAL_BACKENDS = ("embedded", "hf:")

# -- the parameters of run_seo.ipynb ------------------------------------------------
#: Every parameter of ``run_seo.ipynb`` with its default (None: the preset's value).
RUN_PARAMETERS: dict[str, Any] = {
    "TASK": "trec",
    "ANSWER_MODE": "auto",          # "auto": label scoring for a local model on a labelled task
    "GENERATOR": "embedded",
    "GENERATOR_OPTIONS": {},
    "OPTIMIZER": None,              # None: the generator's spec (and options)
    "OPTIMIZER_OPTIONS": None,
    "PRESET": "classroom",
    "STEPS": None,
    "BATCH_SIZE": None,
    "NUM_CANDIDATES": None,
    "VAL_SIZE": None,
    "MAX_RULES": None,
    "TRAIN_SIZE": None,
    "DEV_SIZE": None,
    "TEST_SIZE": None,
    "OPT_TEMPERATURE": None,
    "OPT_MAX_NEW_TOKENS": None,
    "VALIDATION": "stochastic",
    "COMPARISON_TRIALS": True,
    "CONFIG_OVERRIDES": {},
    "SEED": 0,
    "DATA_SOURCE": "local",
    "OUT_DIR": "runs/run_seo",
}

_KNOB_TO_FIELD = {"STEPS": "steps", "BATCH_SIZE": "batch_size", "NUM_CANDIDATES": "num_candidates",
                  "VAL_SIZE": "val_size", "MAX_RULES": "max_rules", "TRAIN_SIZE": "train_size",
                  "DEV_SIZE": "dev_size", "TEST_SIZE": "test_size",
                  "OPT_TEMPERATURE": "opt_temperature", "OPT_MAX_NEW_TOKENS": "opt_max_new_tokens"}

def split_secrets(options: dict | None) -> tuple[dict, dict]:
    """``(public, secret)`` halves of a model's options.  Only the public half
    goes into the config (hence ``config.json``); the secret half goes to the
    model's constructor and nowhere else."""
    options = dict(options or {})
    secret = {k: options.pop(k) for k in list(options) if is_secret_name(k)}
    return options, secret


def files_containing(folder: str | os.PathLike, values: Iterable[str]) -> list[Path]:
    """Files under ``folder`` that contain any of ``values`` (e.g. an API key):
    the check that a secret reached no run file."""
    needles = [str(v).encode() for v in values if v and len(str(v)) >= 4]
    if not needles:
        return []
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and any(n in p.read_bytes() for n in needles))


def resolve_answer_mode(answer_mode: str | None, task: str, generator: str) -> str | None:
    """``"auto"``: label scoring when the task has a label set and the generator is
    a local model (servers return text, not log-probabilities); else the task's own
    default (None)."""
    if answer_mode != "auto":
        return answer_mode
    from .tasks import get_task

    local = generator == "embedded" or str(generator).startswith("hf:")
    return "score" if local and get_task(task).labels else None


@dataclass
class RunSetup:
    """What ``run_seo.ipynb`` runs: the config, and the secret options kept out of it."""

    config: SEOConfig
    out_dir: Path
    generator_secrets: dict = field(default_factory=dict, repr=False)
    optimizer_secrets: dict = field(default_factory=dict, repr=False)

    def models(self):
        """The generator and optimizer (one object when they are the same model)."""
        from .llm import make_llm

        cfg = self.config
        gen = make_llm(cfg.generator, **cfg.generator_options, **self.generator_secrets)
        if (cfg.optimizer == cfg.generator and cfg.optimizer_options == cfg.generator_options
                and self.optimizer_secrets == self.generator_secrets):
            return gen, gen
        return gen, make_llm(cfg.optimizer, **cfg.optimizer_options, **self.optimizer_secrets)

    def describe(self) -> str:
        """The config as JSON, for the notebook to print (no secret in it)."""
        d = self.config.to_dict()         # secret-named options are not in it
        hidden = sorted(set(self.generator_secrets) | set(self.optimizer_secrets))
        note = f"\n(secret options kept out of the config: {', '.join(hidden)})" if hidden else ""
        return json.dumps(d, indent=1, sort_keys=True) + note


def setup_from_parameters(**params) -> RunSetup:
    """Turn the notebook's parameters (the names of :data:`RUN_PARAMETERS`) into
    a validated :class:`SEOConfig` and the run directory.  Unknown names are an
    error, so a typo in a papermill ``-p`` does not pass silently."""
    unknown = sorted(set(params) - set(RUN_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown run_seo parameter(s) {', '.join(unknown)}; "
                         f"parameters: {', '.join(RUN_PARAMETERS)}")
    p = {**RUN_PARAMETERS, **params}
    for name in ("GENERATOR_OPTIONS", "OPTIMIZER_OPTIONS", "CONFIG_OVERRIDES"):
        if isinstance(p[name], str):             # papermill -p passes text; accept JSON
            try:
                p[name] = json.loads(p[name])
            except ValueError:
                raise ValueError(f"{name} must be a dict (or its JSON text), got {p[name]!r}") from None
        if p[name] is not None and not isinstance(p[name], dict):
            raise ValueError(f"{name} must be a dict, got {type(p[name]).__name__}")
    gen_opts, gen_secret = split_secrets(p["GENERATOR_OPTIONS"])
    optimizer = p["OPTIMIZER"] or p["GENERATOR"]
    if p["OPTIMIZER_OPTIONS"] is None:
        opt_raw = p["GENERATOR_OPTIONS"] if optimizer == p["GENERATOR"] else {}
    else:
        opt_raw = p["OPTIMIZER_OPTIONS"]
    opt_opts, opt_secret = split_secrets(opt_raw)
    overrides = dict(p["CONFIG_OVERRIDES"] or {})
    for knob, name in _KNOB_TO_FIELD.items():
        if p[knob] is not None:
            overrides[name] = p[knob]
    config = SEOConfig.preset(
        p["PRESET"], task=p["TASK"],
        answer_mode=resolve_answer_mode(p["ANSWER_MODE"], p["TASK"], p["GENERATOR"]),
        generator=p["GENERATOR"], generator_options=gen_opts,
        optimizer=optimizer, optimizer_options=opt_opts,
        validation=p["VALIDATION"], comparison_trials=bool(p["COMPARISON_TRIALS"]),
        seed=int(p["SEED"]), data_source=p["DATA_SOURCE"], **overrides)
    return RunSetup(config, Path(p["OUT_DIR"]), gen_secret, opt_secret)


# -- the grid ---------------------------------------------------------------------------
#: Weaker optimizers that run on a CPU: (parameters changed, what it is).
WEAK_OPTIMIZERS: dict[str, tuple[dict, str]] = {
    "embedded-4bit": ({"OPTIMIZER": "embedded", "OPTIMIZER_OPTIONS": {"load_in_4bit": True}},
                      "SmolLM2-135M quantized to 4 bits (NF4, bitsandbytes) as optimizer; "
                      "the generator stays full precision"),
    "embedded-hot": ({"OPT_TEMPERATURE": 1.6},
                     "the same SmolLM2-135M optimizer sampling at temperature 1.6 instead of 0.8"),
}


@dataclass(frozen=True)
class GridCell:
    """One run of the grid: a factor, its level, a seed and the parameters."""

    name: str
    factor: str                  # baseline | validation | comparison_trials | val_size | optimizer
    level: str
    seed: int
    params: dict

    def to_dict(self) -> dict:
        return asdict(self)


def cell_name(factor: str, level: str, seed: int) -> str:
    """A run name that :func:`seo_lite.runs.safe_run_path` accepts."""
    level = re.sub(r"[^A-Za-z0-9._-]+", "-", str(level)).strip("-.") or "x"
    return f"{factor}-{level}_seed{seed}" if factor != "baseline" else f"baseline_seed{seed}"


def ablation_grid(base: dict | None = None, *, seeds: Sequence[int] = (0, 1, 2),
                  validation: Sequence[str] = ("fixed", "none"),
                  comparison_off: bool = True, val_sizes: Sequence[int] = (),
                  weak_optimizer: str | None = "embedded-4bit",
                  extra: dict[str, dict] | None = None) -> list[GridCell]:
    """The one-factor-at-a-time grid around ``base`` (run_seo parameters).

    ``val_sizes`` lists the |D_t| values besides the baseline's own;
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


def baseline_val_size(cells: Iterable[GridCell]) -> int | None:
    """|D_t| of the baseline cells (from their parameters, else the preset)."""
    for c in cells:
        if c.factor == "baseline":
            return setup_from_parameters(**{k: v for k, v in c.params.items()
                                            if k != "OUT_DIR"}).config.val_size
    return None


# -- running a grid through papermill ----------------------------------------------------------
@dataclass
class CellStatus:
    name: str
    status: str                  # "done" (already finished) | "ran" | "failed"
    run_dir: Path
    seconds: float = 0.0
    error: str | None = None


GRID_FILE = "grid.json"
EXECUTIONS_FILE = "executions.jsonl"


def is_finished(run_dir: str | os.PathLike) -> bool:
    return (Path(run_dir) / "final.json").is_file()


def _papermill(notebook: Path, output: Path, parameters: dict, kernel_name: str,
               cwd: Path) -> None:
    import papermill as pm

    pm.execute_notebook(str(notebook), str(output), parameters=parameters,
                        kernel_name=kernel_name, progress_bar=False, log_output=False,
                        cwd=str(cwd))


def write_grid_file(grid_dir: Path, cells: Sequence[GridCell], notebook: Path) -> None:
    """``grid.json``: the cells of the grid (what figures group runs by).  Cells of
    an earlier call that are not in this one are kept."""
    path = grid_dir / GRID_FILE
    known: dict[str, dict] = {}
    if path.is_file():
        try:
            known = {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]}
        except (ValueError, KeyError, TypeError) as e:
            raise RunError(f"{path} is not a grid file ({e}); use another folder") from e
    for c in cells:
        known[c.name] = c.to_dict()
    atomic_write_text(path, json.dumps({"grid": grid_dir.name, "notebook": notebook.name,
                                        "cells": list(known.values())}, indent=1) + "\n")


def read_grid(grid_dir: str | os.PathLike) -> list[GridCell]:
    data = json.loads((Path(grid_dir) / GRID_FILE).read_text(encoding="utf-8"))
    return [GridCell(**c) for c in data["cells"]]


def run_grid(cells: Sequence[GridCell], grid_dir: str | os.PathLike, *,
             notebook: str | os.PathLike = RUN_NOTEBOOK, kernel_name: str = "python3",
             log: Callable[[str], None] | None = print, stop_on_error: bool = False,
             execute: Callable[..., None] | None = None) -> list[CellStatus]:
    """Run every unfinished cell of the grid through papermill (in order).

    Writes ``<grid>/<name>.ipynb`` (the executed notebook) and ``<grid>/<name>/``
    (the run directory).  Finished cells are skipped; a failing cell is recorded
    and the grid goes on (``stop_on_error=True`` raises instead)."""
    grid = Path(grid_dir).resolve()
    grid.mkdir(parents=True, exist_ok=True)
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"{notebook} not found: the ablation grid runs the parameterized "
                                "notebook run_seo.ipynb of the seo_lite repository (clone it)")
    write_grid_file(grid, cells, notebook)
    execute = execute or _papermill
    say = log or (lambda s: None)
    out: list[CellStatus] = []
    for i, cell in enumerate(cells, 1):
        run_dir = safe_run_path(grid, cell.name)
        if is_finished(run_dir):
            say(f"[{i}/{len(cells)}] {cell.name}: finished earlier, skipped")
            out.append(CellStatus(cell.name, "done", run_dir))
            continue
        params = {**cell.params, "OUT_DIR": str(run_dir)}
        resumed = (run_dir / "steps.jsonl").is_file()
        say(f"[{i}/{len(cells)}] {cell.name}: running" + (" (resuming its run directory)" if resumed else ""))
        t0 = time.time()
        error = None
        try:
            execute(notebook, safe_run_path(grid, cell.name + ".ipynb"), params, kernel_name, grid)
        except KeyboardInterrupt:
            _log_execution(grid, cell, t0, "interrupted", resumed)
            raise
        except Exception as e:                        # a failing cell must not stop the grid
            error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        seconds = time.time() - t0
        status = "ran" if error is None and is_finished(run_dir) else "failed"
        if status == "failed" and error is None:
            error = "the notebook finished without writing final.json"
        _log_execution(grid, cell, t0, status, resumed, error)
        say(f"    {status} in {seconds:.0f} s" + (f": {error}" if error else ""))
        out.append(CellStatus(cell.name, status, run_dir, seconds, error))
        if error and stop_on_error:
            raise RuntimeError(f"grid cell {cell.name} failed: {error}")
    return out


def _log_execution(grid: Path, cell: GridCell, t0: float, status: str, resumed: bool,
                   error: str | None = None) -> None:
    line = json.dumps({"cell": cell.name, "started": round(t0, 3),
                       "seconds": round(time.time() - t0, 2), "status": status,
                       "resumed": resumed, "error": error})
    with open(grid / EXECUTIONS_FILE, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def executions(grid_dir: str | os.PathLike) -> list[dict]:
    """Every execution the grid made (one line per papermill run)."""
    path = Path(grid_dir) / EXECUTIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]


# -- the noise of a small validation set ------------------------------------------------------
def validation_noise(task, generator, pool, experiences: dict[str, Any], sizes: Sequence[int],
                     draws: int, *, seed: int = 0, exclude=(), progress: bool = False) -> dict:
    """Score each experience on ``draws`` fresh random validation sets of each size.

    This is step 4 of SEO repeated: ``sample_validation_set`` then
    ``score_experiences``, many times.  The result shows how much v(E) on D_t
    moves from draw to draw, and how often the better experience (by its mean
    over the whole pool) wins on one draw.  With a cache, a draw that repeats
    examples costs no model call."""
    from .seo import sample_validation_set, score_experiences

    names = list(experiences)
    exps = [experiences[n] for n in names]
    rng = random.Random(f"noise:{seed}")
    results = {"task": task.name, "models": f"generator {generator.name}",
               "sizes": [int(s) for s in sizes], "draws": int(draws), "experiences": names,
               "rules": {n: list(getattr(e, "rules", ()) or ()) for n, e in experiences.items()},
               "pool": len(pool) - len({ex.id for ex in exclude}), "scores": {}, "seed": seed}
    for size in sizes:
        per = {n: [] for n in names}
        for _ in range(draws):
            d_t = sample_validation_set(pool, int(size), rng, exclude)
            scores = score_experiences(task, generator, exps, d_t, progress=progress)
            for n, s in zip(names, scores):
                per[n].append(sum(s) / len(s))
        results["scores"][str(size)] = per
    full = score_experiences(task, generator, exps, [ex for ex in pool if ex.id not in
                                                     {e.id for e in exclude}])
    results["pool_means"] = {n: sum(s) / len(s) for n, s in zip(names, full)}
    return results


def noise_summary(results: dict) -> list[dict]:
    """Per |D_t|: mean and standard deviation of v(E) across draws for each
    experience, and (with two experiences) how often the better one wins."""
    names = results["experiences"]
    rows = []
    best = max(names, key=lambda n: results["pool_means"][n]) if len(names) > 1 else None
    for size in results["sizes"]:
        per = results["scores"][str(size)]
        row = {"size": size}
        for n in names:
            v = per[n]
            m = sum(v) / len(v)
            row[f"{n} mean"] = m
            row[f"{n} sd"] = math.sqrt(sum((x - m) ** 2 for x in v) / max(1, len(v) - 1))
        if best is not None:
            others = [n for n in names if n != best]
            wins = [all(per[best][i] > per[o][i] for o in others) for i in range(results["draws"])]
            row["better wins"] = sum(wins) / len(wins)
        rows.append(row)
    return rows


def save_json(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")
    return path


__all__ = ["RUN_PARAMETERS", "RUN_NOTEBOOK", "WEAK_OPTIMIZERS", "RunSetup", "GridCell",
           "CellStatus", "setup_from_parameters", "split_secrets", "is_secret_name",
           "resolve_answer_mode", "ablation_grid", "cell_name", "run_grid", "read_grid",
           "is_finished", "executions", "files_containing", "validation_noise", "noise_summary", "save_json",
           "baseline_val_size"]


# -- named grids and the command line ----------------------------------------------------------
#: The grids behind the committed figures (``figures/README.md`` says what each costs).
GRIDS: dict[str, dict[str, Any]] = {
    # TREC, label scoring, embedded model: the CPU grid of figures/
    "trec-score": dict(
        base={"TASK": "trec", "ANSWER_MODE": "score", "PRESET": "classroom", "STEPS": 3,
              "BATCH_SIZE": 2, "NUM_CANDIDATES": 2, "VAL_SIZE": 8, "TRAIN_SIZE": 40,
              "DEV_SIZE": 24, "TEST_SIZE": 60, "OPT_MAX_NEW_TOKENS": 48},
        seeds=(0, 1), validation=("fixed", "none"), comparison_off=True,
        val_sizes=(4, 16), weak_optimizer="embedded-4bit"),
    # a minute or two: checks the pipeline end to end
    "smoke": dict(
        base={"TASK": "trec", "ANSWER_MODE": "score", "PRESET": "smoke", "STEPS": 1,
              "BATCH_SIZE": 1, "NUM_CANDIDATES": 2, "VAL_SIZE": 4, "TRAIN_SIZE": 12,
              "DEV_SIZE": 4, "TEST_SIZE": 4, "OPT_MAX_NEW_TOKENS": 32},
        seeds=(0,), validation=("none",), comparison_off=False, val_sizes=(),
        weak_optimizer=None),
}


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
    """``python -m seo_lite.ablation GRID [--runs runs] [--seeds 0 1]``: run (or
    resume) a named grid into ``<runs>/<GRID>/``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m seo_lite.ablation", description=main.__doc__)
    ap.add_argument("grid", choices=list(GRIDS))
    ap.add_argument("--runs", default="runs", help="folder that holds the grid's folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--kernel", default="python3")
    args = ap.parse_args(argv)
    cells = named_grid(args.grid, seeds=args.seeds)
    grid_dir = safe_run_path(args.runs, args.grid)
    t0 = time.time()
    status = run_grid(cells, grid_dir, kernel_name=args.kernel)
    failed = [s for s in status if s.status == "failed"]
    print(f"{len(status)} cells: {sum(s.status == 'ran' for s in status)} ran, "
          f"{sum(s.status == 'done' for s in status)} already finished, {len(failed)} failed; "
          f"{(time.time() - t0) / 60:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
