"""Does a learned experience carry over to data it was not trained on?

The paper tests two kinds of generalization of an experience E_T learned on
one task:

* **out of distribution**: E_T learned on HotpotQA (closed book) is put, as
  it is, into the prompt for 2WikiMultihopQA questions;
* **transfer across translation directions**: E_T learned on en->de is used
  for en->fr, en->cs, ..., and E_T learned on de->en for fr->en, cs->en, ...

For each target task the same examples are answered with E_T and without it,
and the paired difference

    Delta = mean_x [ s(M_gen(x; E_T), x) - s(M_gen(x), x) ]

is reported with a paired bootstrap interval (:func:`seo_lite.method.evaluation.compare`).
Which tasks pair with which is data (:data:`seo_lite.machinery.data.GENERALIZATION`),
and the examples come from :func:`seo_lite.machinery.data.load_eval_set`, which leaves
out everything the run trained or validated on.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..machinery.build import make_task
from ..machinery.data import GENERALIZATION, load_eval_set
from ..machinery.files import save_json
from ..machinery.runs import load_run
from ..llm.secrets import public_options
from ..method.evaluation import compare
from ..tasks import get_task

RESULTS_FOLDER = "generalization"


def pairs_for(task_name: str) -> list[str]:
    """The generalization pairs whose training task is ``task_name``."""
    name = get_task(task_name).name
    return [p for p, spec in GENERALIZATION.items() if get_task(spec["train"]).name == name]


def _estimate(d: dict) -> dict:
    """What a result keeps of a comparison (``Comparison.to_dict()``, as in ``final.json``)."""
    return {"n": d["with"]["score"]["n"], "with": d["with"]["score"], "without": d["without"]["score"],
            "diff": d["paired"]["diff"], "wins": d["paired"]["wins"],
            "losses": d["paired"]["losses"], "ties": d["paired"]["ties"],
            "metrics_with": d["with"]["metrics"], "metrics_without": d["without"]["metrics"]}


def evaluate_generalization(run_dir: str | os.PathLike, pair: str | None = None, *, size: int = 20,
                            tasks: Sequence[str] | None = None, generator=None,
                            progress: bool = False) -> dict:
    """Evaluate the run's learned experience on the targets of ``pair`` (default:
    the one pair whose training task is the run's task) and write
    ``<run_dir>/generalization/<pair>.json``.  ``tasks`` restricts the targets."""
    run, final = load_run(run_dir)
    cfg = run.config
    if pair is None:
        found = pairs_for(cfg.task)
        if len(found) != 1:
            raise ValueError(f"task {cfg.task!r} has {len(found)} generalization pairs "
                             f"({', '.join(found) or 'none'}); name one with pair=...")
        pair = found[0]
    if pair not in GENERALIZATION:
        raise ValueError(f"unknown pair {pair!r}; known: {', '.join(GENERALIZATION)}")
    spec = GENERALIZATION[pair]
    if get_task(spec["train"]).name != get_task(cfg.task).name:
        raise ValueError(f"pair {pair!r} trains on {spec['train']}, but the run trained on {cfg.task}")
    targets = list(spec["eval"]) if tasks is None else list(tasks)
    unknown = [t for t in targets if t not in spec["eval"]]
    if unknown:
        raise ValueError(f"{pair!r} evaluates on {', '.join(spec['eval'])}, not {', '.join(unknown)}")
    if generator is None:
        from ..llm import make_llm

        generator = make_llm(cfg.generator, **cfg.generator_options)
    results = {}
    for name in targets:
        task = make_task(cfg, name, lenient=True)   # the run's options where they apply
        examples = load_eval_set(pair, task, size=size, train=cfg.train_size, dev=cfg.dev_size,
                                 seed=cfg.seed, source=cfg.data_source)
        comp = compare(task, generator, examples, run.experience, split=f"transfer:{task.name}",
                       n_boot=cfg.bootstrap, seed=cfg.seed,
                       progress=f"{task.name}" if progress else False)
        results[task.name] = _estimate(comp.to_dict())
    test = (final or {}).get("comparisons", {}).get("test")
    in_domain = _estimate(test) if test else None
    out = {"pair": pair, "train_task": get_task(cfg.task).name, "size": size,
           "experience": run.experience.to_list(), "steps": len(run.steps),
           "models": {"generator": generator.identity(),
                      "optimizer": (final or {}).get("models", {}).get("optimizer",
                                                                      {"model": cfg.optimizer})},
           "config": {"generator": cfg.generator, "optimizer": cfg.optimizer,
                      "generator_options": public_options(cfg.generator_options),
                      "optimizer_options": public_options(cfg.optimizer_options), "seed": cfg.seed,
                      "task": cfg.task},
           "in_domain": in_domain, "results": results}
    path = save_json(out, Path(run_dir) / RESULTS_FOLDER / f"{pair}.json")
    out["path"] = str(path)
    return out


def load_results(root: str | os.PathLike) -> list[dict]:
    """Every ``generalization/<pair>.json`` under ``root`` (recursively)."""
    out = []
    for p in sorted(Path(root).rglob(f"{RESULTS_FOLDER}/*.json")):
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(d, dict) and "pair" in d and "results" in d:
            d["path"] = str(p)
            out.append(d)
    return out


# -- the transfer matrix --------------------------------------------------------------------------
def other_language(task_name: str) -> str:
    """For a translation direction to or from English, the other language
    (``flores:en-fr`` -> ``fr``, ``flores:fr-en`` -> ``fr``); else the task name."""
    name = task_name.split(":", 1)[-1]
    if "-" in name:
        src, tgt = name.split("-", 1)
        if src == "en":
            return tgt
        if tgt == "en":
            return src
    return task_name


def direction_label(task_name: str) -> str:
    return task_name.split(":", 1)[-1].replace("-", "\u2192")


def _family(task_name: str) -> str:
    fam = get_task(task_name).family
    return "qa" if "qa" in fam else fam


def merge_seeds(results: Sequence[dict]) -> list[dict]:
    """One result per pair: results of the same pair from runs with different
    seeds are combined, per target task, into the mean over seeds with a 95%
    t-interval across seeds (``seeds`` and ``per_seed`` kept beside them; ``n``
    is the examples per seed).  A pair with one result is returned as it is."""
    from ..method.stats import across_seeds

    by_pair: dict[str, list[dict]] = {}
    for r in results:
        by_pair.setdefault(r["pair"], []).append(r)
    out = []
    for pair, group in by_pair.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        group = sorted(group, key=lambda r: r.get("config", {}).get("seed", 0))
        seeds = [r.get("config", {}).get("seed") for r in group]

        def combine(entries: list[dict]) -> dict:
            merged = {"n": entries[0]["n"], "seeds": seeds, "per_seed": {}}
            for key in ("with", "without", "diff"):
                vals = [e[key]["mean"] for e in entries]
                merged[key] = across_seeds(vals).to_dict()
                merged["per_seed"][key] = vals
            return merged

        tasks = [t for t in group[0]["results"] if all(t in r["results"] for r in group)]
        merged = {**group[0], "seeds": seeds, "experience": [r["experience"] for r in group],
                  "results": {t: combine([r["results"][t] for r in group]) for t in tasks},
                  "in_domain": (combine([r["in_domain"] for r in group])
                                if all(r.get("in_domain") for r in group) else None)}
        merged.pop("path", None)
        out.append(merged)
    return out


def transfer_matrix(results: Sequence[dict], value: str = "diff") -> dict:
    """Rows: the direction an experience was learned on; columns: the other
    language of the direction it is used on (so en->de and de->en rows line up:
    column ``fr`` is en->fr for the first and fr->en for the second).  The
    learned direction's own column holds its in-domain test result.  ``value``:
    ``diff`` (with - without), ``with`` or ``without``; cells are means, with the
    interval and n kept beside them."""
    results = merge_seeds(results)
    rows, cols, cells = [], [], {}
    known = list(GENERALIZATION)
    order = lambda r: (known.index(r["pair"]) if r["pair"] in known else len(known), r["pair"])
    for res in sorted(results, key=order):
        row = res["train_task"]
        if row not in rows:
            rows.append(row)
        own = other_language(row)
        entries = dict(res["results"])
        if res.get("in_domain"):
            entries = {row: res["in_domain"], **entries}
        for task, r in entries.items():
            col = other_language(task)
            if col not in cols:
                cols.append(col)
            cells[(row, col)] = {"task": task, "mean": r[value]["mean"], "low": r[value]["low"],
                                 "high": r[value]["high"], "n": r["n"], "in_domain": col == own}
    return {"rows": rows, "cols": cols, "cells": cells, "value": value}


# -- a whole study: train on each source task, evaluate on its targets ----------------------------
#: The CPU study behind figures/ood.png and figures/transfer-matrix.png: each source task
#: learned with 3 seeds at a reduced classroom budget (4 steps, |D_t| = 8), then used as
#: it is on 100 2WikiMultihopQA questions and on 40 FLORES sentences per direction.
CPU_STUDY = dict(
    pairs=("ood_hotpotqa_to_2wiki", "transfer_flores_de-en"),
    seeds=(0, 1, 2),
    preset="classroom",
    overrides={"steps": 4, "val_size": 8, "dev_size": 20},
    family_overrides={"qa": {"test_size": 80}, "translation": {"test_size": 60}},
    max_new_tokens={"translation": 80},
    eval_size={"qa": 100, "translation": 40},
    langs=("fr", "ru", "zh"))


def source_config(train_task: str, *, preset: str = "smoke", overrides: dict | None = None,
                  max_new_tokens: dict | None = None, seed: int = 0, data_source: str = "local",
                  generator: str | None = None, generator_options: dict | None = None,
                  optimizer: str | None = None, optimizer_options: dict | None = None):
    """The SEOConfig that learns an experience on ``train_task`` (through the same
    knob layer as run_seo.ipynb and the CLI); the generation length is capped per
    task family (``{"qa": 24, "translation": 64}``), since the families' defaults
    (up to 256 tokens) are slow on a CPU."""
    from ..machinery.params import make_setup

    cap = (max_new_tokens or {}).get(_family(train_task))
    values = dict(task=train_task, task_options={"max_new_tokens": int(cap)} if cap else None,
                  seed=seed, data_source=data_source, generator=generator,
                  generator_options=generator_options, optimizer=optimizer,
                  optimizer_options=optimizer_options)
    return make_setup(values, preset=preset, overrides=overrides).config


def run_name(task_name: str) -> str:
    """A folder name for a task's run (``flores:en-de`` -> ``flores_en-de``)."""
    return get_task(task_name).name.replace(":", "_")


def study_targets(pair: str, langs: Sequence[str] | None = None) -> list[str]:
    """The tasks ``pair`` evaluates on; ``langs`` keeps only the translation
    directions to or from those languages (other targets, e.g. QA, stay)."""
    return [t for t in GENERALIZATION[pair]["eval"]
            if langs is None or _family(t) != "translation"
            or other_language(get_task(t).name) in langs]


def study_plan(runs_dir: str | os.PathLike, *, pairs: Sequence[str], preset: str, overrides: dict,
               max_new_tokens: dict, eval_size: int | dict, langs: Sequence[str] | None = None,
               seeds: Sequence[int] = (0,), family_overrides: dict | None = None,
               data_source: str = "local", values: dict | None = None) -> list[dict]:
    """One entry per source task and seed: its config, run directory ``<task>-s<seed>``,
    targets and evaluation size.  ``family_overrides`` and ``eval_size`` may differ
    per task family (``{"qa": ..., "translation": ...}``); ``values`` (SEOConfig
    fields: the models, a budget) win over both."""
    from ..machinery.runs import safe_run_path

    out = []
    for pair in pairs:
        spec = GENERALIZATION[pair]
        family = _family(spec["train"])
        for seed in seeds:
            cfg = source_config(spec["train"], preset=preset, max_new_tokens=max_new_tokens,
                                overrides={**overrides, **(family_overrides or {}).get(family, {}),
                                           **(values or {})}, seed=seed,
                                data_source=(values or {}).get("data_source", data_source))
            out.append({"pair": pair, "config": cfg, "targets": study_targets(pair, langs),
                        "run_dir": safe_run_path(runs_dir, f"{run_name(spec['train'])}-s{seed}"),
                        "size": eval_size[family] if isinstance(eval_size, dict) else eval_size})
    return out


def run_study(runs_dir: str | os.PathLike, *, progress: bool = True, **study) -> list[dict]:
    """Train once per source task and seed (resuming its run directory) and evaluate
    its experience on the pair's targets (``langs`` restricts translation targets);
    ``study``: the arguments of :func:`study_plan`."""
    from .experiment import run_experiment

    out = []
    for item in study_plan(runs_dir, **study):
        result = run_experiment(item["config"], item["run_dir"], progress=progress)
        out.append(evaluate_generalization(item["run_dir"], item["pair"], size=item["size"],
                                           tasks=item["targets"], progress=progress))
        print(result.run.summary() if progress else "", end="\n" if progress else "")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m seo_lite.lab.generalization [--runs runs/generalization] [--generator SPEC ...]``:
    the CPU study (:data:`CPU_STUDY`): train on HotpotQA closed-book (evaluated OOD on 2Wiki)
    and on FLORES de-en (evaluated on fr, ru, zh into English), three seeds each; results
    land in each run directory.  Every SEOConfig flag (models, budget, ``--set``) changes
    every source run."""
    import argparse
    import time

    from .ablation import add_grid_flags, knob_values
    from .fanout import print_costs

    ap = argparse.ArgumentParser(prog="python -m seo_lite.lab.generalization", description=main.__doc__)
    ap.add_argument("--runs", default="runs/generalization")
    ap.add_argument("--eval-size", type=int, default=None,
                    help="examples per target task (default: 100 QA, 40 translation)")
    ap.add_argument("--pairs", nargs="+", choices=list(GENERALIZATION), default=None)
    add_grid_flags(ap, fan_out=False)
    args = ap.parse_args(argv)
    study = dict(CPU_STUDY)
    for key, value in (("eval_size", args.eval_size), ("pairs", args.pairs), ("preset", args.preset),
                       ("seeds", args.seeds and tuple(args.seeds))):
        if value is not None:
            study[key] = value
    try:
        study["values"] = knob_values(args)
        if "task" in study["values"]:
            raise ValueError("the study's tasks are its pairs' (--pairs), not --task")
        plan = study_plan(args.runs, **study)
    except ValueError as e:                          # ConfigError is a ValueError
        ap.error(str(e))
    if args.dry_run:
        print_costs([(f"{p['run_dir'].name} ({p['pair']})", p["config"]) for p in plan],
                    price_per_mtok=args.price_per_mtok, tokens_per_second=args.tokens_per_second)
        print("not counted: the transfer evaluations (per run: 2 x eval size x targets generations)")
        return 0
    t0 = time.time()
    for res in run_study(args.runs, **study):
        print(f"{res['pair']}: learned on {res['train_task']}, seed {res['config']['seed']} "
              f"({len(res['experience'])} rules)")
        for task, r in res["results"].items():
            d = r["diff"]
            print(f"  {task:<22} n={r['n']:<3} without {r['without']['mean']:.3f}  with {r['with']['mean']:.3f}"
                  f"  diff {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
    print(f"{(time.time() - t0) / 60:.1f} min")
    return 0


__all__ = ["evaluate_generalization", "load_results", "pairs_for", "transfer_matrix",
           "other_language", "direction_label", "RESULTS_FOLDER", "CPU_STUDY", "source_config",
           "run_name", "run_study", "study_plan", "study_targets", "merge_seeds", "main"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
