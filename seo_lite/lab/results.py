"""Reading: run directories, grids and result files turned into plain numbers.

This module opens files and draws nothing; :mod:`seo_lite.lab.plots` draws
what it returns.  Each reader returns what one figure needs (lists, dicts,
estimates with their intervals), so a figure is a function of files and its
drawing can be tested with numbers written by hand.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .grid_runner import GRID_FILE, GridCell, read_grid
from ..machinery.runs import RunError, load_run
from ..method.stats import across_seeds, bootstrap_ci

MIN_SEEDS_FOR_T = 3


# -- runs and grids -----------------------------------------------------------------------------
def finished(run_dir: str | os.PathLike):
    """(run, final) of a finished run directory, else None."""
    try:
        run, final = load_run(run_dir) if (Path(run_dir) / "final.json").is_file() else (None, None)
    except (RunError, ValueError):
        return None
    return (run, final) if final else None


def grid_runs(grid_dir: str | os.PathLike) -> list[tuple[GridCell, object, dict]]:
    """(cell, run, final) for every finished cell of a grid folder."""
    grid_dir = Path(grid_dir)
    return [(cell, *got) for cell in read_grid(grid_dir) if (got := finished(grid_dir / cell.name))]


def discover(runs_root: str | os.PathLike) -> dict:
    """What ``runs_root`` holds: grid folders, single runs, noise studies
    (generalization results: :func:`seo_lite.lab.generalization.load_results`)."""
    root = Path(runs_root)
    found = {"grids": [], "runs": [], "noise": [], "unfinished": []}
    if not root.is_dir():
        return found
    grids = found["grids"] = sorted(p.parent for p in root.rglob(GRID_FILE))
    for cfg in sorted(root.rglob("config.json")):
        run_dir, done = cfg.parent, (cfg.parent / "final.json").is_file()
        if any(g in run_dir.parents for g in grids):
            found["unfinished"] += [] if done else [run_dir]
        elif (run_dir / "steps.jsonl").exists() or (run_dir / "checkpoint.json").exists():
            found["runs" if done else "unfinished"].append(run_dir)
    found["noise"] = sorted(root.rglob("validation_noise*.json"))
    return found


# -- scores ------------------------------------------------------------------------------------------
def score(final: dict, split: str = "test", key: str = "diff") -> float:
    """A finished run's mean test score with E_T, without, or their paired difference."""
    comp = final["comparisons"][split]
    return comp["paired"]["diff"]["mean"] if key == "diff" else comp[key]["score"]["mean"]


def eval_scores(run_dir, split: str = "test") -> dict[str, tuple[float, float]]:
    """example id -> (score with E_T, score without) from ``eval/<split>.jsonl`` (empty if none)."""
    path = Path(run_dir) / "eval" / f"{split}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return {r["example_id"]: (float(r["with"]["score"]), float(r["without"]["score"]))
            for r in map(json.loads, filter(str.strip, lines))}


def per_example(run, split: str = "test", key: str = "diff") -> list[float]:
    """Per-example scores of a run: with E_T, without, or the difference."""
    pairs = eval_scores(run.run_dir, split).values()
    return [w - wo if key == "diff" else (w if key == "with" else wo) for w, wo in pairs]


def chance_level(final: dict | None) -> float | None:
    """1/len(labels) when the run's task has labels (``final.json``'s ``task.labels``)."""
    labels = ((final or {}).get("task") or {}).get("labels")
    return 1.0 / len(labels) if labels else None


def estimate(values: list[float], pooled: list[float] | None = None) -> dict:
    """Seeds' mean with a 95% interval: a t-interval across seeds with at least
    ``MIN_SEEDS_FOR_T`` of them, else a percentile bootstrap over the pooled
    per-example scores (a t-interval from two seeds is uninformatively wide)."""
    if len(values) >= MIN_SEEDS_FOR_T or not pooled:
        return across_seeds(values).to_dict()
    b = bootstrap_ci(pooled, n_boot=2000, seed=0)
    return {"mean": sum(values) / len(values), "low": b.low, "high": b.high, "n": len(values)}


def interval_note(n_seeds: int) -> str:
    if n_seeds >= MIN_SEEDS_FOR_T:
        return f"95% t-interval across {n_seeds} seeds"
    return (f"95% bootstrap interval over the pooled test examples of {n_seeds} seed(s) "
            f"(fewer than {MIN_SEEDS_FOR_T} seeds)")


# -- conditions ------------------------------------------------------------------------------------
CONDITIONS = {("baseline", "baseline"): "SEO", ("validation", "fixed"): "fixed D",
              ("validation", "none"): "no validation",
              ("comparison_trials", "off"): "no comparison trials"}


def condition(cell: GridCell) -> str:
    """The condition a grid cell runs: the key of its colour."""
    if (cell.factor, cell.level) in CONDITIONS:
        return CONDITIONS[(cell.factor, cell.level)]
    if cell.factor == "val_size":
        return f"|D_t|={cell.level}"
    if cell.factor == "calibration":
        return f"SEO + {cell.level} calibration"
    return "weaker optimizer" if cell.factor == "optimizer" else f"{cell.factor}: {cell.level}"


OPTIMIZERS = {"embedded-4bit": "4-bit", "embedded-hot": "T=1.6"}


def label(cell: GridCell) -> str:
    """The condition with what tells its cells apart (``weaker optimizer (T=1.6)``)."""
    if cell.factor == "optimizer":
        return f"weaker optimizer ({OPTIMIZERS.get(cell.level, cell.level)})"
    return "SEO (baseline)" if cell.factor == "baseline" else condition(cell)


# -- one reader per figure ----------------------------------------------------------------------------
def ablation(grid_dir) -> dict | None:
    """Per setting of a grid (not |D_t|, not calibration, which have their own
    figures): test score with E_T and the paired gain, per seed and estimated."""
    rows = [r for r in grid_runs(grid_dir) if r[0].factor not in ("val_size", "calibration")]
    if not rows:
        return None
    by: dict[tuple, list] = {}
    for cell, run, final in rows:
        by.setdefault((cell.factor, cell.level), []).append((cell, run, final))
    panels = {}
    for key in ("with", "diff"):
        panels[key] = []
        for members in by.values():
            vals = [score(f, key=key) for _, _, f in members]
            pooled = [x for _, r, _ in members for x in per_example(r, key=key)]
            panels[key].append({"label": label(members[0][0]), "condition": condition(members[0][0]),
                                "values": vals, "estimate": estimate(vals, pooled)})
    without = [score(f, key="without") for _, _, f in rows]
    return {**panels, "reference": sum(without) / len(without), "chance": chance_level(rows[0][2]),
            "runs": [(r, f) for _, r, f in rows], "n_seeds": max(len(v) for v in by.values()),
            "steps": rows[0][1].config.steps,
            "n_test": rows[0][2]["comparisons"]["test"]["with"]["score"]["n"]}


def val_size(grid_dir) -> dict | None:
    """The paired test gain and the accepted updates per |D_t| (baseline cells included)."""
    rows = [r for r in grid_runs(grid_dir) if r[0].factor in ("val_size", "baseline")]
    sizes = sorted({run.config.val_size for _, run, _ in rows})
    if len(sizes) < 2:
        return None
    base = {run.config.val_size for c, run, _ in rows if c.factor == "baseline"}
    out = {"sizes": sizes, "gains": [], "gain": [], "accepted": [], "accept": [],
           "conditions": ["SEO" if s in base else f"|D_t|={s}" for s in sizes],
           "runs": [(r, f) for _, r, f in rows], "steps": rows[0][1].config.steps}
    for size in sizes:
        members = [(run, final) for _, run, final in rows if run.config.val_size == size]
        out["gains"].append([score(f) for _, f in members])
        out["gain"].append(estimate(out["gains"][-1], [x for r, _ in members for x in per_example(r)]))
        out["accepted"].append([float(run.accepted) for run, _ in members])
        out["accept"].append(across_seeds(out["accepted"][-1]).to_dict())
    out["n_seeds"] = max(len(v) for v in out["gains"])
    return out


def calibration_contrasts(grid_dir) -> dict | None:
    """Per seed, the test scores of no experience, SEO alone (the baseline
    cells), calibration alone and SEO + calibration (a ``calibration`` cell:
    trained and tested with calibration), for each calibration the grid holds,
    and what each adds to the other.  Seeds with a baseline and a calibration
    cell are paired (same seed, same test examples).

    Returns ``{"seeds", "scores": {condition: [per seed]}, "contrasts": {"A vs B"
    or "A added to B": [per seed]}, "chance", "runs"}`` or None when the grid
    has no calibration cell."""
    rows = [r for r in grid_runs(grid_dir) if r[0].factor in ("baseline", "calibration")]
    base = {c.seed: f for c, _, f in rows if c.factor == "baseline"}
    cal: dict[str, dict[int, dict]] = {}
    for c, _, f in rows:
        if c.factor == "calibration" and c.seed in base:
            cal.setdefault(c.level, {})[c.seed] = f
    seeds = sorted(set(base).intersection(*[set(v) for v in cal.values()])) if cal else []
    if not seeds:
        return None
    scores = {"no experience": [score(base[s], key="without") for s in seeds],
              "SEO alone": [score(base[s], key="with") for s in seeds]}
    diff = lambda a, b: [x - y for x, y in zip(scores[a], scores[b])]
    contrasts = {"SEO vs no experience": diff("SEO alone", "no experience")}
    for level, by_seed in cal.items():
        alone, both = f"{level} calibration alone", f"SEO + {level} calibration"
        scores[alone] = [score(by_seed[s], key="without") for s in seeds]
        scores[both] = [score(by_seed[s], key="with") for s in seeds]
        contrasts[f"{level} calibration vs no experience"] = diff(alone, "no experience")
        contrasts[f"SEO added to {level} calibration"] = diff(both, alone)
        contrasts[f"{level} calibration added to SEO"] = diff(both, "SEO alone")
    return {"seeds": seeds, "scores": scores, "contrasts": contrasts,
            "chance": chance_level(rows[0][2]), "runs": [(r, f) for _, r, f in rows]}


def curves(entries: list[tuple], average: bool = False) -> dict | None:
    """Per run (``entries``: (label, run, final[, condition])), the dev score of
    E_t against t (``final.json``'s curve) and v(E_t) on each step's D_t; with
    ``average``, one mean curve per label (the seeds of one setting)."""
    dev, val = [], []
    for label_, run, final, *cond in entries:
        c = final.get("curve") or []
        common = {"label": label_, **({"condition": cond[0]} if cond else {})}
        if c:
            dev.append({**common, "x": [p["step"] for p in c], "y": [p["dev"] for p in c]})
        pts = [(s.step + 1, s.decision.current_score) for s in run.steps
               if s.decision.current_score is not None]
        if pts:
            val.append({**common, "x": [p[0] for p in pts], "y": [p[1] for p in pts]})
    if not dev:
        return None
    levels = {chance_level(f) for _, _, f, *_ in entries}        # one task's labels: one level
    return {"dev": _mean_series(dev) if average else dev, "val": _mean_series(val) if average else val,
            "chance": levels.pop() if len(levels) == 1 else None, "average": average,
            "one_task": len({run.config.task for _, run, *_ in entries}) == 1,
            "runs": [(r, f) for _, r, f, *_ in entries]}


def _mean_series(series: list[dict]) -> list[dict]:
    """Average the series that share a label (the seeds of one setting)."""
    out: dict[str, dict] = {}
    for s in series:
        acc = out.setdefault(s["label"], {**s, "ys": []})
        if len(s["x"]) == len(acc["x"]):
            acc["ys"].append(s["y"])
    return [{**a, "label": a["label"] + (f" (mean of {len(a['ys'])})" if len(a["ys"]) > 1 else ""),
             "y": [sum(v) / len(v) for v in zip(*a.pop("ys"))]} for a in out.values()]


def noise(path: str | os.PathLike) -> dict:
    """A validation-noise study (``validation_noise*.json``) with its summary and chance level."""
    from .noise_study import noise_summary

    results = json.loads(Path(path).read_text(encoding="utf-8"))
    results.setdefault("summary", noise_summary(results))
    results["chance"] = task_chance(results.get("task", ""))
    return results


def task_chance(task_name: str) -> float | None:
    """1/len(labels) of a named task with labels, else None (also for a name not known here)."""
    from ..tasks import get_task

    try:
        labels = getattr(get_task(task_name), "labels", None)
    except ValueError:
        return None
    return 1.0 / len(labels) if labels else None
