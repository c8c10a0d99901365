"""Baselines in the same harness: does SEO add anything over simpler alternatives?

Four ways to run one generator on one task, compared on the same test examples:

* **no experience** -- the generator with the task instruction only;
* **reference experience** -- a short hand-written experience per task
  (``data/reference_experiences.json``, written from the task's definition
  and label set, never tuned on data), evaluated exactly like a learned one:
  a run directory with ``steps=0`` and the reference as ``initial_experience``;
* **SEO, LLM optimizer** -- the paper's method (M_opt = a model);
* **SEO, rule bank** -- the same config with ``optimizer="rulebank"``
  (:mod:`seo_lite.llm.rulebank`), so the same generator call budget (the
  figure reports the calls made: repeated candidates are scored once).

Run directories ``<out>/<task>/<arm>-s<seed>``; the "no experience" scores are
the paired ``without`` side of every run (same seed, same test split).
``python -m seo_lite.lab.baselines run`` makes (or resumes) them, ``... figure``
writes ``comparison-<task>.png`` and ``.json`` per task: each arm's test score
and each paired difference with a 95% interval (:func:`stratified_bootstrap`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Sequence

from ..llm.usage import add_usage
from ..machinery.runs import load_run
from ..method.config import ConfigError, SEOConfig
from ..method.experience import Experience

REFERENCE_FILE = "reference_experiences.json"
ARMS = ("reference", "llm", "rulebank")
ARM_LABELS = {"none": "no experience", "reference": "reference (hand-written)",
              "llm": "SEO, LLM optimizer", "rulebank": "SEO, rule bank"}
_RUN_NAME = re.compile(r"^(reference|llm|rulebank)-s(\d+)$")


# -- 1. reference experiences ----------------------------------------------------------------------
def _packaged_file(name: str) -> Path:
    """A data file that ships with seo_lite, beside the JSONL samples."""
    from ..machinery.data import shipped_data_folder

    folder = shipped_data_folder()
    if folder is None or not (folder / name).is_file():
        raise FileNotFoundError(f"{name} not found: it ships in the repository's data/ folder "
                                "(seo_lite.samples in an installed package)")
    return folder / name


def load_references(path: str | os.PathLike | None = None) -> dict:
    """The reference-experience file as a dict (``tasks`` and ``families``)."""
    path = Path(path) if path is not None else _packaged_file(REFERENCE_FILE)
    return json.loads(path.read_text(encoding="utf-8"))


def reference_experience(task, *, path: str | os.PathLike | None = None) -> Experience:
    """The hand-written reference experience of ``task`` (a name or a Task)."""
    from ..tasks import get_task

    task = get_task(task)
    refs = load_references(path)
    entry = refs["tasks"].get(task.name)
    if entry is not None:
        return Experience(tuple(entry["rules"]))
    fam = refs.get("families", {}).get(task.family)
    if fam is None:
        raise KeyError(f"no reference experience for task {task.name!r} (family {task.family!r}); "
                       f"tasks: {', '.join(refs['tasks'])}; families: {', '.join(refs.get('families', {}))}")
    names = {"src": getattr(task, "src_name", "source"), "tgt": getattr(task, "tgt_name", "target")}
    return Experience(tuple(r.format(**names) for r in fam["rules"]))


# -- the runs behind the comparison figure ------------------------------------------------------------
def task_slug(task: str) -> str:
    return task.replace(":", "_")


def arm_configs(task: str, seed: int, *, preset: str = "classroom", overrides: dict | None = None,
                generator: str = "embedded", optimizer: str | None = None,
                answer_mode: str | None = "auto") -> dict[str, SEOConfig]:
    """The three run configs of one (task, seed).  ``llm`` and ``rulebank``
    differ only in the optimizer; ``reference`` trains for 0 steps from the
    reference experience."""
    from ..machinery.build import resolve_answer_mode

    mode = resolve_answer_mode(answer_mode, task, generator)
    base = SEOConfig.preset(preset, **{**(overrides or {}), "task": task, "seed": seed,
                                       "generator": generator, "answer_mode": mode})
    rules = reference_experience(task).to_list()
    return {
        "reference": base.replace(steps=0, initial_experience=tuple(rules),
                                  max_rules=max(base.max_rules, len(rules)),
                                  optimizer=base.generator),
        "llm": base.replace(optimizer=optimizer or generator),
        "rulebank": base.replace(optimizer="rulebank", optimizer_options={}),
    }


def comparison_plan(tasks: Sequence[str], seeds: Sequence[int], out: str | os.PathLike, *,
                    preset: str = "classroom", overrides: dict | None = None,
                    generator: str = "embedded", generator_options: dict | None = None,
                    optimizer: str | None = None,
                    answer_mode: str | None = "auto") -> list[tuple[Path, SEOConfig]]:
    """``(run directory, config)`` of every run the comparison figure needs."""
    plans = []
    for task in tasks:
        for seed in seeds:
            cfgs = arm_configs(task, seed, preset=preset, overrides=overrides, generator=generator,
                               optimizer=optimizer, answer_mode=answer_mode)
            for arm in ARMS:
                cfg = cfgs[arm].replace(generator_options=dict(generator_options or {}))
                plans.append((Path(out) / task_slug(task) / f"{arm}-s{seed}", cfg))
    return plans


def run_comparison(tasks: Sequence[str], seeds: Sequence[int], out: str | os.PathLike, *,
                   progress: bool = False, log=print, **plan) -> list[Path]:
    """Make (or resume) every run the comparison figure needs; returns their folders.
    One generator is loaded and shared by all runs; ``plan``: the arguments of
    :func:`comparison_plan`."""
    from .grid_runner import is_finished
    from .experiment import run_experiment
    from ..llm import make_llm

    plans = comparison_plan(tasks, seeds, out, **plan)
    gen = rulebank = llm_opt = None
    done = []
    for run_dir, cfg in plans:
        if is_finished(run_dir):
            log(f"done     {run_dir}")
            done.append(run_dir)
            continue
        if gen is None:
            gen = make_llm(cfg.generator, **cfg.generator_options)
        if cfg.optimizer == "rulebank":
            rulebank = rulebank or make_llm("rulebank")
            opt = rulebank
        elif cfg.optimizer == cfg.generator:
            opt = gen
        else:
            llm_opt = llm_opt or make_llm(cfg.optimizer, **cfg.optimizer_options)
            opt = llm_opt
        t0 = time.perf_counter()
        log(f"running  {run_dir}")
        run_experiment(cfg, run_dir, progress=progress, figure=False, generator=gen, optimizer=opt)
        log(f"finished {run_dir} in {time.perf_counter() - t0:.0f} s")
        done.append(run_dir)
    return done


# -- reading the runs ---------------------------------------------------------------------------------
def _training_requests(run) -> dict[str, int]:
    """Generator and optimizer requests (calls + cache hits) over the run's steps."""
    u = add_usage(s.usage for s in run.steps)
    return {f"{role}_requests": u.get(role, {}).get("calls", 0) + u.get(role, {}).get("cache_hits", 0)
            for role in ("generator", "optimizer")}


def collect(runs_root: str | os.PathLike) -> dict[str, dict[int, dict[str, Path]]]:
    """task folder -> seed -> arm -> finished run directory."""
    found: dict[str, dict[int, dict[str, Path]]] = {}
    root = Path(runs_root)
    if not root.is_dir():
        return found
    for task_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for run_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
            m = _RUN_NAME.match(run_dir.name)
            if m and (run_dir / "final.json").is_file() and (run_dir / "eval" / "test.jsonl").is_file():
                found.setdefault(task_dir.name, {}).setdefault(int(m.group(2)), {})[m.group(1)] = run_dir
    return found


def _config(run_dir: Path) -> dict:
    return json.loads((run_dir / "config.json").read_text(encoding="utf-8"))


def check_equal_budget(llm_dir: Path, rulebank_dir: Path) -> None:
    """The two SEO arms must differ only in the optimizer."""
    a, b = _config(llm_dir), _config(rulebank_dir)
    diff = sorted(k for k in a if k not in ("optimizer", "optimizer_options") and a[k] != b.get(k))
    if diff:
        raise ConfigError(f"{llm_dir} and {rulebank_dir} differ in {', '.join(diff)}: the "
                          "comparison needs the same config apart from the optimizer")


# -- statistics -------------------------------------------------------------------------------------------
def stratified_bootstrap(per_seed: Sequence[Sequence[float]], *, n_boot: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> dict:
    """Mean over seeds of per-seed means (kept as ``per_seed``), with a percentile
    interval that resamples examples within each seed.  For a paired difference
    pass the per-example differences."""
    groups = [list(map(float, g)) for g in per_seed if len(g)]
    if not groups:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0, "seeds": 0}
    means = [sum(g) / len(g) for g in groups]
    mean = sum(means) / len(means)
    rng = random.Random(seed)
    boots = []
    for _ in range(n_boot):
        tot = 0.0
        for g in groups:
            n = len(g)
            tot += sum(g[rng.randrange(n)] for _ in range(n)) / n
        boots.append(tot / len(groups))
    boots.sort()
    a = (1 - confidence) / 2
    q = lambda p: boots[min(len(boots) - 1, max(0, int(round(p * (len(boots) - 1)))))]
    return {"mean": mean, "low": q(a), "high": q(1 - a), "n": sum(len(g) for g in groups),
            "seeds": len(groups), "per_seed": means}


def summarize(task_runs: dict[int, dict[str, Path]], *, n_boot: int = 2000) -> dict:
    """Per-arm scores and paired differences for one task (seeds with all arms present)."""
    from ..method.stats import across_seeds
    from .results import eval_scores

    seeds = sorted(s for s, arms in task_runs.items() if set(arms) >= set(ARMS))
    if not seeds:
        raise ValueError("no seed has all three runs (reference, llm, rulebank)")
    scores: dict[str, list[list[float]]] = {k: [] for k in ("none", *ARMS)}
    usage: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    experiences: dict[str, list[list[str]]] = {arm: [] for arm in ARMS}
    for s in seeds:
        arms = task_runs[s]
        check_equal_budget(arms["llm"], arms["rulebank"])
        per = {arm: eval_scores(arms[arm]) for arm in ARMS}
        ids = sorted(per["reference"])
        for arm in ARMS:
            if sorted(per[arm]) != ids:
                raise ValueError(f"seed {s}: {arms[arm]} was tested on other examples than "
                                 f"{arms['reference']}; runs of one seed must share the test split")
        scores["none"].append([per["reference"][i][1] for i in ids])
        for arm in ARMS:
            scores[arm].append([per[arm][i][0] for i in ids])
            run, final = load_run(arms[arm])
            usage[arm].append(_training_requests(run))
            experiences[arm].append(final.get("experience", []))
    out = {"seeds": seeds, "n_test_per_seed": [len(x) for x in scores["none"]],
           "arms": {arm: stratified_bootstrap(per_seed, n_boot=n_boot) for arm, per_seed in scores.items()},
           "differences": {}, "usage": {}, "experiences": experiences}
    pairs = [("reference", "none"), ("llm", "none"), ("rulebank", "none"), ("llm", "rulebank"),
             ("llm", "reference"), ("rulebank", "reference")]
    for a, b in pairs:
        diffs = [[x - y for x, y in zip(sa, sb)] for sa, sb in zip(scores[a], scores[b])]
        est = stratified_bootstrap(diffs, n_boot=n_boot)
        if len(seeds) >= 3:
            t = across_seeds(est["per_seed"])
            est["across_seeds"] = {"mean": t.mean, "low": t.low, "high": t.high, "n": t.n}
        out["differences"][f"{a} - {b}"] = est
    for arm in ARMS:
        out["usage"][arm] = {k: sum(u[k] for u in usage[arm]) / len(usage[arm])
                             for k in ("generator_requests", "optimizer_requests")}
    return out


def verdict(summary: dict) -> list[str]:
    """Who beat whom: one line per paired difference, from its interval."""
    lines = []
    for key, d in summary["differences"].items():
        a, b = key.split(" - ")
        word = ("beat" if d["low"] > 0 else "lost to" if d["high"] < 0 else "did not separate from")
        lines.append(f"{ARM_LABELS[a]} {word} {ARM_LABELS[b]}: {d['mean']:+.3f} "
                     f"[{d['low']:+.3f}, {d['high']:+.3f}]")
    return lines


# -- the figure -----------------------------------------------------------------------------------------------
def comparison_figure(task_name: str, summary: dict, out: str | os.PathLike,
                      models_note: str = "") -> Path:
    from . import plots, results

    fig, (ax1, ax2) = plots.figure(11.0, 4.0, ncols=2)
    groups = [{"label": ARM_LABELS[a], "estimate": summary["arms"][a], "condition": a,
               "values": summary["arms"][a]["per_seed"]} for a in ("none", *ARMS)]
    plots.ablation_bars(groups, ax=ax1, ylabel="test score", limits=(0.0, 1.0),
                        title=f"{task_name}: test score",
                        chance=results.task_chance(summary.get("config", {}).get("task", task_name)))
    labels = {"reference - none": "reference - none", "llm - none": "SEO-LLM - none",
              "rulebank - none": "SEO-rule bank - none", "llm - rulebank": "SEO-LLM - rule bank"}
    diffs = [{"label": lab, "estimate": summary["differences"][k], "condition": k.split(" - ")[0],
              "values": summary["differences"][k]["per_seed"]} for k, lab in labels.items()]
    plots.ablation_bars(diffs, ax=ax2, ylabel="paired difference", limits=(-1.0, 1.0),
                        title="Paired differences")
    u = summary["usage"]
    seeds = summary["seeds"]
    plots.footnote(fig, (models_note + "\n" if models_note else "") +
                   f"bars: mean over {len(seeds)} seed(s) {seeds}; error bars: 95% stratified paired "
                   f"bootstrap over the test examples (n = {summary['n_test_per_seed'][0]} per seed); "
                   f"dots: single seeds\ngenerator requests in training per run: SEO-LLM "
                   f"{u['llm']['generator_requests']:.0f}, SEO-rule bank {u['rulebank']['generator_requests']:.0f}"
                   f" (same config; repeated candidates are scored once), reference 0")
    return plots.save(fig, Path(out) / f"comparison-{task_name}.png")


def build_figures(runs_root: str | os.PathLike, out: str | os.PathLike, *, n_boot: int = 2000,
                  log=print) -> list[Path]:
    """One comparison figure (and its numbers as JSON) per task folder under ``runs_root``."""
    found = collect(runs_root)
    paths = []
    if not found:
        log(f"no comparison runs under {runs_root}; make them with "
            f"`python -m seo_lite.lab.baselines run --task trec --seeds 0 1 2 --out {runs_root}`")
        return paths
    for task_name, task_runs in found.items():
        try:
            summary = summarize(task_runs, n_boot=n_boot)
        except ValueError as e:
            log(f"skipped {task_name}: {e}")
            continue
        first = task_runs[summary["seeds"][0]]
        cfg = _config(first["llm"])
        note = (f"{cfg['task']} ({cfg.get('answer_mode') or 'default'} mode) | generator "
                f"{cfg['generator']} | LLM optimizer {cfg['optimizer']} | {cfg['steps']} steps, "
                f"n={cfg['batch_size']}, k={cfg['num_candidates']}, |D_t|={cfg['val_size']}")
        summary["config"] = {k: cfg[k] for k in ("task", "answer_mode", "generator", "optimizer",
                                                 "steps", "batch_size", "num_candidates",
                                                 "val_size", "max_rules", "train_size", "test_size")}
        summary["verdict"] = verdict(summary)
        p = comparison_figure(task_name, summary, out, note)
        j = p.with_suffix(".json")
        j.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
        for line in summary["verdict"]:
            log(f"{task_name}: {line}")
        paths += [p, j]
    return paths


# -- command line -----------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    from .ablation import add_grid_flags, knob_values

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    p = argparse.ArgumentParser(prog="python -m seo_lite.lab.baselines",
                                description="no experience vs reference vs SEO (LLM) vs SEO (rule bank)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="make or resume the comparison runs", conflict_handler="resolve",
                       description="Every SEOConfig field is a flag (models, budget; --set FIELD=VALUE).")
    add_grid_flags(r, fan_out=False)
    r.add_argument("--task", action="append", help="repeatable; default trec")
    r.add_argument("--out", default="runs/compare")
    r.add_argument("--progress", action="store_true")
    f = sub.add_parser("figure", help="build the comparison figures from the run directories")
    f.add_argument("--runs", default="runs/compare")
    f.add_argument("--out", default="figures")
    args = p.parse_args(argv)
    try:
        if args.command == "run":
            values = knob_values(args)
            tasks = values.pop("task", None) or ["trec"]
            plan = dict(preset=args.preset or "classroom", generator=values.pop("generator", "embedded"),
                        generator_options=values.pop("generator_options", {}),
                        optimizer=values.pop("optimizer", None),
                        answer_mode=values.pop("answer_mode", "auto"), overrides=values)
            seeds = args.seeds or [0, 1, 2]
            if args.dry_run:
                from .fanout import print_costs

                print_costs([(f"{d.parent.name}/{d.name}", c) for d, c in
                             comparison_plan(tasks, seeds, args.out, **plan)],
                            price_per_mtok=args.price_per_mtok, tokens_per_second=args.tokens_per_second)
                return 0
            t0 = time.perf_counter()
            run_comparison(tasks, seeds, args.out, progress=args.progress, **plan)
            print(f"all runs finished in {time.perf_counter() - t0:.0f} s; now: "
                  f"python -m seo_lite.lab.baselines figure --runs {args.out} --out figures")
        else:
            for path in build_figures(args.runs, args.out):
                print(path)
    except (ConfigError, ValueError, KeyError, OSError) as e:
        print(f"seo_lite.lab.baselines: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
