"""Calibration table: accuracy and predicted label distribution under each
label calibration ("none", "contextual", "batch"), per task, per experience.

    .venv/bin/python bench/calibration_table.py                 # no experience
    .venv/bin/python bench/calibration_table.py --run runs/sst2 # + a run's learned experience

Split: ``load_splits(task, train=60, dev=40, test=100, seed=0)`` (the classroom
preset's sizes), scored on the test rows with the embedded model in label-
scoring mode.  Batch calibration's prior is the mean label distribution over
the test split under the experience (see ``seo_lite.tasks.calibration``).
Every call goes through the default call cache, so a second run is instant.
This is a measurement, not a speed benchmark: it has no target and always
exits 0.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import _common  # noqa: F401  (puts the repository on sys.path)

TASKS = ("sst2", "trec", "ag_news")


def conditions_for(task_name: str, runs: list[str]) -> dict:
    """label -> Experience | None: no experience, then each run's learned one
    (runs on another task are skipped)."""
    from seo_lite.machinery.runs import load_run
    from seo_lite.tasks import get_task

    out = {"no experience": None}
    for d in runs:
        run, _ = load_run(d)
        if get_task(run.config.task).name == get_task(task_name).name:
            out[f"E from {Path(d).name}"] = run.experience
    return out


def measure(tasks=TASKS, runs=(), train=60, dev=40, test=100, seed=0, generator="embedded"):
    """Rows of {task, experience, calibration, accuracy, macro_f1, distribution, gold},
    and the model (for its usage)."""
    from seo_lite.machinery.data import load_splits
    from seo_lite.llm import make_llm
    from seo_lite.tasks import get_task
    from seo_lite.tasks.calibration import CALIBRATIONS

    llm = make_llm(generator)
    rows = []
    for name in tasks:
        examples = load_splits(get_task(name), train=train, dev=dev, test=test, seed=seed).test
        gold = Counter(ex.gold for ex in examples)
        for label, experience in conditions_for(name, list(runs)).items():
            for cal in CALIBRATIONS:
                task = get_task(name, answer_mode="rank", calibration=cal)
                preds = task.predict(llm, examples, experience, progress=f"{name} {cal}")
                m = task.evaluate_predictions(preds, examples)
                rows.append({"task": task.name, "experience": label, "calibration": cal,
                             "n": len(examples), "accuracy": m["accuracy"] / 100,
                             "macro_f1": m["macro_f1"] / 100,
                             "labels": list(task.labels),
                             "distribution": dict(Counter(p.answer for p in preds)),
                             "gold": dict(gold)})
    return rows, llm


def format_table(rows: list[dict]) -> str:
    lines = []
    for name in dict.fromkeys(r["task"] for r in rows):
        rs = [r for r in rows if r["task"] == name]
        labels, n = rs[0]["labels"], rs[0]["n"]
        short = [lab[:5] for lab in labels]
        lines.append(f"\n{name} ({n} test rows; chance {1 / len(labels):.2f}); "
                     f"predicted label counts ({', '.join(labels)})")
        lines.append(f"  {'experience':<22}{'calibration':<12}{'acc':>6}{'mF1':>6}   "
                     + " ".join(f"{s:>6}" for s in short))
        lines.append(f"  {'(gold)':<22}{'':<12}{'':>6}{'':>6}   "
                     + " ".join(f"{rs[0]['gold'].get(lab, 0):>6}" for lab in labels))
        for r in rs:
            lines.append(f"  {r['experience'][:21]:<22}{r['calibration']:<12}{r['accuracy']:>6.2f}"
                         f"{r['macro_f1']:>6.2f}   "
                         + " ".join(f"{r['distribution'].get(lab, 0):>6}" for lab in labels))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--run", action="append", default=[],
                    help="a run directory; its learned experience is scored on its task")
    ap.add_argument("--train", type=int, default=60)
    ap.add_argument("--dev", type=int, default=40)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--generator", default="embedded")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    rows, llm = measure(args.tasks, args.run, args.train, args.dev, args.test, args.seed,
                         args.generator)
    print(f"label ranking, generator {args.generator}, split seed {args.seed} "
          f"(train={args.train}, dev={args.dev}, test={args.test})")
    print(format_table(rows))
    print(f"\nmodel calls {llm.usage.total().calls}, cache hits {llm.usage.total().cache_hits}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
