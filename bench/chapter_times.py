"""What each chapter's header says it costs: chapters 00-05 with their
defaults through papermill, cold and warm call cache, model already converted.

Cold: each chapter runs in a child papermill kernel with a brand-new call
cache folder (linked to the converted checkpoint: ``models/``, ``hashes/``),
so every model call is computed.  Warm: the same chapter again with that
cache and new output folders, so only the cache is warm (no run directory is
resumed).  Wall times, so run it alone on a quiet machine.

    .venv/bin/python bench/chapter_times.py                  # ~20 minutes on 2 quiet cores
    .venv/bin/python bench/chapter_times.py --only 02 03
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from _common import REPO, Result, Timer, report
from run_times import fresh_cache

CHAPTERS = {"00": ("00_quick_start.ipynb", "OUT_DIR"), "01": ("01_generator_and_experience.ipynb", None),
            "02": ("02_trials_and_effect.ipynb", None), "03": ("03_optimizer_and_candidates.ipynb", None),
            "04": ("04_validation_and_selection.ipynb", "RESULTS_DIR"),
            "05": ("05_training_loop.ipynb", "RUN_DIR")}


def execute(name: str, out_param: str | None, work: Path, cache: Path) -> float:
    import papermill as pm

    work.mkdir(parents=True)
    params = {out_param: str(work / "out")} if out_param else {}
    old = os.environ.get("SEO_LITE_CACHE")
    os.environ["SEO_LITE_CACHE"] = str(cache)        # the kernel inherits it
    try:
        with Timer() as t:
            pm.execute_notebook(str(REPO / "notebooks" / name), str(work / name), parameters=params,
                                cwd=str(work), progress_bar=False, kernel_name="python3")
    finally:
        os.environ.pop("SEO_LITE_CACHE") if old is None else os.environ.update(SEO_LITE_CACHE=old)
    return t.seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="+", choices=sorted(CHAPTERS))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="seo-bench-chapters-"))
    results = []
    for key in args.only or CHAPTERS:
        name, out_param = CHAPTERS[key]
        cache = fresh_cache(root / key)
        cold = execute(name, out_param, root / key / "cold", cache)
        warm = execute(name, out_param, root / key / "warm", cache)
        results += [Result(f"chapter {key} with its defaults, cold cache", cold, None, "s"),
                    Result(f"chapter {key} with its defaults, warm cache", warm, None, "s")]
        print(results[-2].line(), results[-1].line(), sep="\n", flush=True)
    print(f"run folders: {root}")
    return report(results, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
