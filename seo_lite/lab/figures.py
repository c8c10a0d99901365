"""Every figure of figures/, rebuilt from run directories by one command.

    seo-lite figures [--runs runs] [--out figures]

:func:`build_all` looks under ``runs_root`` for

* **grids** (a folder with ``grid.json``, written by :func:`seo_lite.lab.grid_runner.run_grid`):
  ablation bars, |D_t| sensitivity, learning curves and the evolution of the
  experience of one baseline run;
* **single runs** (a run directory with ``final.json``, outside any grid):
  their learning curves;
* **generalization results** (``<run>/generalization/<pair>.json``, written by
  :func:`seo_lite.lab.generalization.evaluate_generalization`): the
  out-of-distribution bars and the transfer matrix across translation directions;
* **validation-noise studies** (``validation_noise*.json``, written by the
  validation chapter with :func:`seo_lite.lab.noise_study.validation_noise`);
* **baseline comparisons** (``<task>/{reference,llm,rulebank}-s<seed>/``, written by
  ``python -m seo_lite.lab.baselines run``): one comparison figure per task
  (:func:`seo_lite.lab.baselines.build_figures`).

Nothing is read from a notebook's memory: a figure is a function of files.
Each names the models that made it in its footnote.  A run directory without
``final.json`` (still running, or interrupted) is left out and reported.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

from . import plots
from .grid_runner import GRID_FILE, GridCell, read_grid
from .noise_study import noise_summary
from ..machinery.runs import RunError, load_run
from ..method.stats import across_seeds, bootstrap_ci

Log = Callable[[str], None]


# -- reading runs --------------------------------------------------------------------------------
def _finished(run_dir: Path):
    """(run, final) of a finished run directory, else None."""
    if not (run_dir / "final.json").is_file():
        return None
    try:
        run, final = load_run(run_dir)
    except (RunError, ValueError):
        return None
    return (run, final) if final else None


def grid_runs(grid_dir: str | os.PathLike) -> list[tuple[GridCell, object, dict]]:
    """(cell, run, final) for every finished cell of a grid folder."""
    grid_dir = Path(grid_dir)
    out = []
    for cell in read_grid(grid_dir):
        got = _finished(grid_dir / cell.name)
        if got:
            out.append((cell, *got))
    return out


def discover(runs_root: str | os.PathLike) -> dict:
    """What ``runs_root`` holds: grid folders, single runs, result files."""
    root = Path(runs_root)
    found = {"grids": [], "runs": [], "generalization": [], "noise": [], "unfinished": []}
    if not root.is_dir():
        return found
    grids = sorted(p.parent for p in root.rglob(GRID_FILE))
    found["grids"] = grids
    for cfg in sorted(root.rglob("config.json")):
        run_dir = cfg.parent
        if any(g in run_dir.parents for g in grids):
            if not (run_dir / "final.json").is_file():
                found["unfinished"].append(run_dir)
            continue
        if (run_dir / "steps.jsonl").exists() or (run_dir / "checkpoint.json").exists():
            (found["runs"] if (run_dir / "final.json").is_file() else found["unfinished"]).append(run_dir)
    from .generalization import load_results

    found["generalization"] = load_results(root)
    found["noise"] = sorted(root.rglob("validation_noise*.json"))
    return found


def _score(final: dict, split: str = "test", key: str = "diff") -> float:
    comp = final["comparisons"][split]
    return comp["paired"]["diff"]["mean"] if key == "diff" else comp[key]["score"]["mean"]


def per_example(run, split: str = "test", key: str = "diff") -> list[float]:
    """Per-example scores of a finished run from ``eval/<split>.jsonl``: with E_T,
    without, or their paired difference."""
    path = Path(run.run_dir) / "eval" / f"{split}.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            w, wo = r["with"]["score"], r["without"]["score"]
            out.append(w - wo if key == "diff" else (w if key == "with" else wo))
    return out


MIN_SEEDS_FOR_T = 3


def _estimate(values: list[float], pooled: list[float] | None = None) -> dict:
    """Several seeds: their mean with a 95% interval.  With at least
    ``MIN_SEEDS_FOR_T`` seeds a t-interval across seeds (``stats.across_seeds``);
    with fewer, a percentile bootstrap over the pooled per-example scores of the
    runs (a t-interval from two seeds is uninformatively wide)."""
    if len(values) >= MIN_SEEDS_FOR_T or not pooled:
        e = across_seeds(values)
        return {"mean": e.mean, "low": e.low, "high": e.high, "n": e.n}
    b = bootstrap_ci(pooled, n_boot=2000, seed=0)
    return {"mean": sum(values) / len(values), "low": b.low, "high": b.high, "n": len(values)}


def _interval_note(n_seeds: int) -> str:
    if n_seeds >= MIN_SEEDS_FOR_T:
        return f"95% t-interval across {n_seeds} seeds"
    return (f"95% bootstrap interval over the pooled test examples of {n_seeds} seed(s) "
            f"(fewer than {MIN_SEEDS_FOR_T} seeds)")


# -- one builder per figure ----------------------------------------------------------------------
LEVEL_LABELS = {("baseline", "baseline"): "SEO (baseline)",
                ("validation", "fixed"): "fixed D",
                ("validation", "none"): "no validation",
                ("comparison_trials", "off"): "no comparison trials"}


def _label(cell: GridCell) -> str:
    if (cell.factor, cell.level) in LEVEL_LABELS:
        return LEVEL_LABELS[(cell.factor, cell.level)]
    if cell.factor == "optimizer":
        short = {"embedded-4bit": "4-bit", "embedded-hot": "T=1.6"}.get(cell.level, cell.level)
        return f"weaker optimizer ({short})"
    return f"{cell.factor}: {cell.level}"


def ablation_figure(grid_dir: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Test score with the learned experience and its paired gain over no experience,
    per setting (mean over seeds, 95% interval, one dot per seed)."""
    # calibration cells have their own figure: their "without E" is calibrated
    rows = [r for r in grid_runs(grid_dir) if r[0].factor not in ("val_size", "calibration")]
    if not rows:
        return None
    order: list[tuple[str, str]] = []
    by: dict[tuple[str, str], list] = {}
    for cell, run, final in rows:
        key = (cell.factor, cell.level)
        if key not in by:
            order.append(key)
        by.setdefault(key, []).append((cell, run, final))
    fig, (ax1, ax2) = plots.figure(max(9.0, 2.2 * len(order) + 2), 4.0, ncols=2)
    for ax, key, ylabel, title in (
            (ax1, "with", "test score with E_T", "Test score with the learned experience"),
            (ax2, "diff", "with E_T - without (paired)", "Gain over no experience")):
        groups = []
        for k in order:
            members = by[k]
            vals = [_score(f, key=key) for _, _, f in members]
            pooled = [x for _, r, _ in members for x in per_example(r, key=key)]
            groups.append({"label": _label(members[0][0]), "values": vals,
                           "estimate": _estimate(vals, pooled), "kind": k[0]})
        ref = None
        if key == "with":
            ref_vals = [_score(f, key="without") for _, _, f in rows]
            ref = sum(ref_vals) / len(ref_vals)
        plots.ablation_bars(groups, ax=ax, ylabel=ylabel, title=title, reference=ref,
                            limits=(0.0, 1.0) if key == "with" else (-1.0, 1.0))
    n_seeds = max(len(v) for v in by.values())
    fig.tight_layout()
    plots.footnote(fig, plots.models_note_many([(r, f) for _, r, f in rows]) +
                   f"\nbars: mean over seeds; error bars: {_interval_note(n_seeds)}; dots: single seeds; "
                   f"{rows[0][1].config.steps} steps per run, "
                   f"n(test) = {rows[0][2]['comparisons']['test']['with']['score']['n']} per seed")
    return plots.save(fig, Path(out) / f"{Path(grid_dir).name}-ablations.png")


def val_size_figure(grid_dir: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """The paired test gain and the number of accepted updates against |D_t|."""
    rows = [r for r in grid_runs(grid_dir) if r[0].factor in ("val_size", "baseline")]
    sizes = sorted({run.config.val_size for _, run, _ in rows})
    if len(sizes) < 2:
        return None
    gains, accepts, gain_est = [], [], []
    for size in sizes:
        members = [(run, final) for _, run, final in rows if run.config.val_size == size]
        gains.append([_score(f) for _, f in members])
        accepts.append([float(run.accepted) for run, _ in members])
        gain_est.append(_estimate(gains[-1], [x for r, _ in members for x in per_example(r)]))
    fig, (ax1, ax2) = plots.figure(10, 3.7, ncols=2)
    plots.sensitivity(sizes, gain_est, gains, ax=ax1, xlabel="|D_t|",
                      ylabel="test gain with E_T (paired)", title="Gain against |D_t|",
                      limits=(-1.0, 1.0))
    ax1.axhline(0, color="black", lw=0.6)
    steps = rows[0][1].config.steps
    plots.sensitivity(sizes, [across_seeds(v).to_dict() for v in accepts], accepts, ax=ax2,
                      xlabel="|D_t|", ylabel="updates accepted", limits=(0, steps),
                      title=f"Accepted updates (of {steps} steps)")
    n_seeds = max(len(v) for v in gains)
    fig.tight_layout()
    plots.footnote(fig, plots.models_note_many([(r, f) for _, r, f in rows]) +
                   f"\nleft: {_interval_note(n_seeds)}; right: 95% t-interval across seeds (clipped); "
                   "validation costs (1 + candidates) x |D_t| generator calls per step")
    return plots.save(fig, Path(out) / f"{Path(grid_dir).name}-val-size.png")


def _curve_series(entries: list[tuple[str, object, dict]]) -> list[dict]:
    series = []
    for label, run, final in entries:
        curve = final.get("curve") or []
        if curve:
            series.append({"label": label, "x": [c["step"] for c in curve],
                           "y": [c["dev"] for c in curve]})
    return series


def _mean_series(series: list[dict]) -> list[dict]:
    """Average the series that share a label (the seeds of one setting)."""
    out: dict[str, dict] = {}
    for s in series:
        acc = out.setdefault(s["label"], {"label": s["label"], "x": s["x"], "ys": []})
        if len(s["x"]) == len(acc["x"]):
            acc["ys"].append(s["y"])
    return [{"label": a["label"] + (f" (mean of {len(a['ys'])})" if len(a["ys"]) > 1 else ""),
             "x": a["x"], "y": [sum(v) / len(v) for v in zip(*a["ys"])]} for a in out.values()]


def learning_curves_figure(entries: list[tuple[str, object, dict]], path: Path,
                           title: str = "Learning curves", average: bool = False) -> Path | None:
    """Dev score of E_t against t (from ``final.json``'s curve) and v(E_t) on each
    step's D_t (from ``steps.jsonl``), one line per run, or per label averaged
    over its runs (``average``: the seeds of one setting)."""
    series = _curve_series(entries)
    if not series:
        return None
    if average:
        series = _mean_series(series)
    fig, (ax1, ax2) = plots.figure(11, 3.9, ncols=2)
    levels = {plots.chance_level(f) for _, _, f in entries}        # one task's labels: one level
    chance = levels.pop() if len(levels) == 1 else None
    one_task = len({run.config.task for _, run, _ in entries}) == 1   # a mean across tasks means nothing
    plots.learning_curves(series, ax=ax1, title=f"{title}: dev score of E_t",
                          show_mean=not average and one_task, chance=chance)
    val = []
    for label, run, _ in entries:
        pts = [(s.step + 1, s.decision.current_score) for s in run.steps
               if s.decision.current_score is not None]
        if pts:
            val.append({"label": label, "x": [p[0] for p in pts], "y": [p[1] for p in pts]})
    if average:
        val = _mean_series(val)
    if val:
        for i, s in enumerate(val):
            ax2.plot(s["x"], s["y"], "o-", color=plots.SERIES[i % len(plots.SERIES)], alpha=0.8,
                     label=s["label"], ms=4)
        ax2.set_xlabel("SEO step t")
        ax2.set_ylabel("v(E_t) on that step's D_t")
        ax2.set_title("Validation score of E_t (a new D_t each step)")
        plots.chance_line(ax2, chance)
        ax2.set_ylim(-0.03, 1.03)
        ax2.xaxis.set_major_locator(plots.matplotlib.ticker.MaxNLocator(integer=True))
        ax2.legend(fontsize=7.5, ncol=2)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    plots.footnote(fig, plots.models_note_many([(r, f) for _, r, f in entries]))
    return plots.save(fig, path)


def evolution_figure(run, final: dict | None, path: Path, label: str = "") -> Path:
    fig = plots.experience_evolution([list(e.rules) for e in run.experiences],
                                     [s.decision.accepted for s in run.steps],
                                     title=f"Experience evolution{': ' + label if label else ''}")
    fig.tight_layout()
    plots.footnote(fig, plots.models_note_many([(run.config, final)]))
    return plots.save(fig, path)


def calibration_contrasts(grid_dir: str | os.PathLike) -> dict | None:
    """Per seed, the four test scores of "what does SEO learn that calibration
    does not, and the reverse?": no experience, SEO alone (the baseline cells),
    calibration alone and both (a ``calibration`` cell: trained and tested with
    calibration), for each calibration the grid holds.  Seeds with a baseline
    and a calibration cell are paired (same seed, same test examples).

    Returns ``{"seeds": [...], "scores": {condition: [per seed]}, "contrasts":
    {name: [per seed]}}`` or None when the grid has no calibration cell."""
    return _calibration_contrasts(grid_runs(grid_dir))


def _calibration_contrasts(rows) -> dict | None:
    base = {c.seed: f for c, _, f in rows if c.factor == "baseline"}
    cal: dict[str, dict[int, dict]] = {}
    for c, _, f in rows:
        if c.factor == "calibration" and c.seed in base:
            cal.setdefault(c.level, {})[c.seed] = f
    if not cal:
        return None
    seeds = sorted(set(base).intersection(*[set(v) for v in cal.values()]))
    if not seeds:
        return None
    scores = {"no experience": [_score(base[s], key="without") for s in seeds],
              "SEO alone": [_score(base[s], key="with") for s in seeds]}
    contrasts = {"SEO vs no experience": [a - b for a, b in zip(scores["SEO alone"],
                                                                 scores["no experience"])]}
    for level, by_seed in cal.items():
        alone = [_score(by_seed[s], key="without") for s in seeds]
        both = [_score(by_seed[s], key="with") for s in seeds]
        scores[f"{level} calibration alone"] = alone
        scores[f"SEO + {level} calibration"] = both
        contrasts[f"{level} calibration vs no experience"] = [
            a - b for a, b in zip(alone, scores["no experience"])]
        contrasts[f"SEO added to {level} calibration"] = [a - b for a, b in zip(both, alone)]
        contrasts[f"{level} calibration added to SEO"] = [
            a - b for a, b in zip(both, scores["SEO alone"])]
    return {"seeds": seeds, "scores": scores, "contrasts": contrasts}


def calibration_figure(grid_dir: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """Left: test score under no experience / SEO / calibration / both; right:
    what each adds to the other (differences of test scores on the same
    examples, one per seed), each with a 95% t-interval across seeds."""
    rows = [r for r in grid_runs(grid_dir) if r[0].factor in ("baseline", "calibration")]
    got = _calibration_contrasts(rows)
    if got is None:
        return None
    n = len(got["seeds"])
    fig, (ax1, ax2) = plots.figure(14.0, 4.4, ncols=2)
    for ax, series, ylabel, title, limits in (
            (ax1, got["scores"], "test score", "Test score", (0.0, 1.0)),
            (ax2, got["contrasts"], "difference in test score", "What one adds to the other",
             (-1.0, 1.0))):
        groups = [{"label": name, "values": vals, "estimate": across_seeds(vals).to_dict(),
                   "kind": "baseline" if name.startswith("SEO") else "setting"}
                  for name, vals in series.items()]
        plots.ablation_bars(groups, ax=ax, ylabel=ylabel, title=title, limits=limits)
    plots.chance_line(ax1, plots.chance_level(rows[0][2]))
    fig.tight_layout()
    plots.footnote(fig, plots.models_note_many([(r, f) for _, r, f in rows]) +
                   f"\nbars: mean over seeds {got['seeds']}; error bars: 95% t-interval across "
                   f"{n} seeds; dots: single seeds; green: with a learned experience; "
                   "right: differences of the left bars, seed by seed, on the same test examples")
    return plots.save(fig, Path(out) / f"{Path(grid_dir).name}-calibration.png")


def grid_figures(grid_dir: Path, out: Path, log: Log) -> list[Path]:
    rows = grid_runs(grid_dir)
    cells = read_grid(grid_dir)
    log(f"grid {grid_dir}: {len(rows)} of {len(cells)} cells finished")
    if not rows:
        return []
    paths = [ablation_figure(grid_dir, out), val_size_figure(grid_dir, out),
             calibration_figure(grid_dir, out)]
    settings = [(_label(c).replace("\n", " "), r, f) for c, r, f in rows]
    paths.append(learning_curves_figure(settings, out / f"{grid_dir.name}-learning-curves.png",
                                        title="Every setting", average=True))
    # the baseline run (SEO as the paper runs it) that changed its experience most often
    # (ties: the lowest seed); another validated setting only if no baseline run changed,
    # a run without validation (which takes every step's candidate) only if no other did
    cell, run, final = max(rows, key=lambda e: (e[1].accepted > 0 and e[1].config.validation != "none",
                                                e[0].factor == "baseline" and e[1].accepted > 0,
                                                e[1].accepted, -e[0].seed))
    paths.append(evolution_figure(run, final, out / f"{grid_dir.name}-experience-evolution.png",
                                  f"{_label(cell)}, seed {cell.seed} ({run.accepted} of "
                                  f"{len(run.steps)} updates accepted)"))
    return [p for p in paths if p is not None]


def _seeds_note(rows: list[dict], n_label: str = "examples") -> str:
    seeds = rows[0].get("seeds")
    if seeds:
        return (f"bars and cells: mean over seeds {seeds} (each seed learned its own E_T); "
                f"95% t-intervals across the {len(seeds)} seeds")
    return "95% paired bootstrap intervals over the " + n_label


def ood_figure(results: list[dict], out: Path) -> Path | None:
    """In-domain test and out-of-distribution scores, without and with E_T
    (several seeds of a pair: their mean, with a t-interval across seeds)."""
    from .generalization import merge_seeds

    rows = merge_seeds([r for r in results if r["pair"].startswith("ood_")])
    if not rows:
        return None
    fig, axes = plots.figure(5.0 * len(rows), 3.8, ncols=len(rows))
    axes = axes if isinstance(axes, list) else [axes]
    for ax, res in zip(axes, rows):
        groups = []
        entries = ([(f"{res['train_task']}\n(in domain", res["in_domain"])] if res.get("in_domain") else [])
        entries += [(f"{task}\n(OOD", r) for task, r in res["results"].items()]
        for label, r in entries:
            d = r["diff"]
            groups.append({"label": f"{label}, n={r['n']})\ndiff {d['mean']:+.3f} "
                                    f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                           "with": r["with"], "without": r["without"]})
        plots.paired_bars(groups, ax=ax, title=f"{res['pair']}: E_T learned on {res['train_task']}")
    fig.tight_layout()
    plots.footnote(fig, _results_note(rows) + "\nmean per-example score (QA: token F1, "
                   "translation: chrF/100); " + _seeds_note(rows))
    return plots.save(fig, out / "ood.png")


def _results_note(results: list[dict]) -> str:
    gens, opts = [], []
    for r in results:
        c = r.get("config", {})
        g = plots.model_label(c.get("generator", "?"), c.get("generator_options"),
                              r.get("models", {}).get("generator"))
        o = plots.model_label(c.get("optimizer", "?"), c.get("optimizer_options"),
                              r.get("models", {}).get("optimizer"))
        gens += [g] if g not in gens else []
        opts += [o] if o not in opts else []
    return f"generator {'; '.join(gens)} | optimizer {'; '.join(opts)}"


def transfer_figure(results: list[dict], out: Path) -> Path | None:
    """The transfer matrix across translation directions (paired chrF gain)."""
    from .generalization import direction_label, merge_seeds, transfer_matrix

    rows = merge_seeds([r for r in results if r["pair"].startswith("transfer_")])
    if not rows:
        return None
    m = transfer_matrix(rows)
    vals, ann, outline = [], [], []
    for row in m["rows"]:
        vr, ar, orow = [], [], []
        for col in m["cols"]:
            c = m["cells"].get((row, col))
            if c is None:
                vr.append(math.nan), ar.append("n/a"), orow.append(False)
                continue
            vr.append(100 * c["mean"])
            ar.append(f"{100 * c['mean']:+.1f}\n[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]")
            orow.append(c["in_domain"])
        vals.append(vr), ann.append(ar), outline.append(orow)
    fig = plots.heatmap(vals, [f"learned on {direction_label(r)}" for r in m["rows"]],
                        [f"{c}" for c in m["cols"]], annotations=ann, outline=outline,
                        title="Transfer across translation directions",
                        xlabel="used on the direction between English and this language",
                        cbar_label="chrF gain with E_T (points)")
    n = sorted({c["n"] for c in m["cells"].values()})
    fig.tight_layout()
    plots.footnote(fig, _results_note(rows) + f"\ncells: paired chrF difference (with E_T - without); "
                   f"{_seeds_note(rows, 'sentences')}; n = {', '.join(map(str, n))} sentences per seed; "
                   "framed: the direction the experience was learned on (its test split)")
    return plots.save(fig, out / "transfer-matrix.png")


def noise_figure(path: Path, out: Path) -> Path:
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    results.setdefault("summary", noise_summary(results))
    fig = plots.validation_noise(results)
    note = results.get("models", "")
    fig.tight_layout()
    plots.footnote(fig, f"{results.get('task', '')} | {note} | {results['draws']} draws per size "
                   f"from {results['pool']} training examples; dashed: mean over all of them")
    return plots.save(fig, out / f"{Path(path).stem.replace('_', '-')}.png")


# -- everything -----------------------------------------------------------------------------------
def build_all(runs_root: str | os.PathLike = "runs", out: str | os.PathLike = "figures",
              log: Log | None = print) -> list[Path]:
    """Rebuild every figure that the run directories under ``runs_root`` support,
    into ``out``; returns the files written (empty, with a message, when there
    is nothing to build from)."""
    say = log or (lambda s: None)
    root, out = Path(runs_root), Path(out)
    found = discover(root)
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
    singles = [(p.name, *got) for p in found["runs"] if (got := _finished(p))]
    if singles:
        p = learning_curves_figure(singles[:8], out / "runs-learning-curves.png",
                                   title="Single runs")
        paths += [p] if p else []
    for builder in (ood_figure, transfer_figure):
        p = builder(found["generalization"], out)
        paths += [p] if p else []
    for n in found["noise"]:
        paths.append(noise_figure(n, out))
    if compared:
        paths += comparison_figures(root, out, log=say)
    if found["unfinished"]:
        say(f"left out {len(found['unfinished'])} unfinished run(s) (no final.json), e.g. "
            f"{found['unfinished'][0]}")
    return paths


__all__ = ["build_all", "discover", "grid_runs", "ablation_figure", "val_size_figure",
           "calibration_contrasts", "calibration_figure",
           "learning_curves_figure", "evolution_figure", "ood_figure", "transfer_figure",
           "noise_figure"]
