"""figures/: which files each PNG is made from, rebuilt by ``seo-lite figures [--runs runs] [--out figures]``.

Each builder reads with :mod:`seo_lite.lab.results`, draws with :mod:`seo_lite.lab.plots`
and saves one PNG (what :func:`build_all` looks for: :func:`seo_lite.lab.results.discover`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from . import plots, results
from .generalization import direction_label, load_results, merge_seeds, transfer_matrix

Log = Callable[[str], None]


def _save(fig, path) -> Path | None:
    return plots.save(fig, path) if fig else None


def step_figure(run_dir: str | os.PathLike, step: int = 0,
                out: str | os.PathLike | None = None) -> Path:
    """The diagram of one logged step of a run (default ``<run_dir>/figures/step-<step>.png``)."""
    run, _ = results.load_run(run_dir)
    if not 0 <= step < len(run.steps):
        raise ValueError(f"{run_dir} has {len(run.steps)} logged step(s); no step {step}")
    return plots.save(plots.step_diagram(run.steps[step], config=run.config),
                      out or Path(run_dir) / "figures" / f"step-{step}.png")


GRID_FIGURES = {"ablations": (results.ablation, plots.ablations),
                "val-size": (results.val_size, plots.val_size),
                "calibration": (results.calibration_contrasts, plots.calibration)}


def grid_figure(kind: str, grid_dir, out) -> Path | None:
    """``<grid>-<kind>.png`` of :data:`GRID_FIGURES`, or None when the grid has no cells for it."""
    read, draw = GRID_FIGURES[kind]
    data = read(grid_dir)
    return _save(data and draw(data), Path(out) / f"{Path(grid_dir).name}-{kind}.png")


def learning_curves_figure(entries: list[tuple], path, title: str = "Learning curves",
                           average: bool = False) -> Path | None:
    """``entries``: (label, run, final[, condition]); see :func:`results.curves`."""
    data = results.curves(entries, average)
    return _save(data and plots.curves(data, title), path)


def evolution_figure(run, final: dict | None, path, label: str = "") -> Path:
    fig = plots.experience_evolution([list(e.rules) for e in run.experiences],
                                     [s.decision.accepted for s in run.steps],
                                     title=f"Experience evolution{': ' + label if label else ''}")
    return plots.save(plots.footnote(fig, plots.models_note_many([(run.config, final)])), path)


def grid_figures(grid_dir: Path, out: Path, log: Log) -> list[Path]:
    rows = results.grid_runs(grid_dir)
    log(f"grid {grid_dir}: {len(rows)} of {len(results.read_grid(grid_dir))} cells finished")
    if not rows:
        return []
    paths = [grid_figure(kind, grid_dir, out) for kind in GRID_FIGURES] + [
             learning_curves_figure([(results.label(c), r, f, results.condition(c)) for c, r, f in rows],
                                    out / f"{grid_dir.name}-learning-curves.png", "Every setting", True)]
    # the baseline run (SEO as the paper runs it) that changed its experience most often
    # (ties: the lowest seed); another validated setting only if no baseline run changed,
    # a run without validation (which takes every step's candidate) only if no other did
    cell, run, final = max(rows, key=lambda e: (e[1].accepted > 0 and e[1].config.validation != "none",
                                                e[0].factor == "baseline" and e[1].accepted > 0,
                                                e[1].accepted, -e[0].seed))
    paths.append(evolution_figure(run, final, out / f"{grid_dir.name}-experience-evolution.png",
                                  f"{results.label(cell)}, seed {cell.seed} ({run.accepted} of "
                                  f"{len(run.steps)} updates accepted)"))
    return [p for p in paths if p is not None]


def ood_figure(found: list[dict], out: Path) -> Path | None:
    """In-domain and out-of-distribution scores without and with E_T (seeds merged)."""
    rows = merge_seeds([r for r in found if r["pair"].startswith("ood_")])
    return _save(rows and plots.ood(rows), Path(out) / "ood.png")


def transfer_figure(found: list[dict], out: Path) -> Path | None:
    """The transfer matrix across translation directions (paired chrF gain)."""
    rows = merge_seeds([r for r in found if r["pair"].startswith("transfer_")])
    m = transfer_matrix(rows)
    return _save(rows and plots.transfer(m, rows, [f"learned on {direction_label(r)}" for r in m["rows"]]),
                 Path(out) / "transfer-matrix.png")


def noise_figure(path: Path, out: Path) -> Path:
    return plots.save(plots.validation_noise(results.noise(path)),
                      Path(out) / f"{Path(path).stem.replace('_', '-')}.png")


def build_all(runs_root: str | os.PathLike = "runs", out: str | os.PathLike = "figures",
              log: Log | None = print) -> list[Path]:
    """Rebuild every figure that the run directories under ``runs_root`` support,
    into ``out``; returns the files written (empty, with a message, when there
    is nothing to build from)."""
    say = log or (lambda s: None)
    root, out = Path(runs_root), Path(out)
    found = {**results.discover(root), "generalization": load_results(root) if root.is_dir() else []}
    from .baselines import build_figures as comparison_figures, collect as comparisons

    compared = comparisons(root)
    if not any(found[k] for k in ("grids", "runs", "generalization", "noise")) and not compared:
        where = f"{root} does not exist" if not root.is_dir() else f"{root} holds no finished run"
        say(f"no figures built: {where}. Make runs first, e.g. `seo-lite run --task trec "
            f"--answer-mode rank --preset smoke --out {root / 'trec-smoke'}` or "
            f"`python -m seo_lite.lab.ablation smoke --runs {root}`, then run `seo-lite figures` again.")
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for g in found["grids"]:
        paths += grid_figures(g, out, say)
    singles = [(p.name, *got) for p in found["runs"] if (got := results.finished(p))]
    paths += [learning_curves_figure(singles[:8], out / "runs-learning-curves.png", "Single runs")]
    paths += [ood_figure(found["generalization"], out), transfer_figure(found["generalization"], out)]
    paths += [noise_figure(n, out) for n in found["noise"]]
    if compared:
        paths += comparison_figures(root, out, log=say)
    if found["unfinished"]:
        say(f"left out {len(found['unfinished'])} unfinished run(s) (no final.json), e.g. "
            f"{found['unfinished'][0]}")
    return [p for p in paths if p is not None]
