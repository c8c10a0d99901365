"""Issue 22, target 3: what a class waits for, cold call cache, model already converted.

1. a ``smoke`` run of a translation direction from the shipped data, through
   the generic route a user's own corpus takes (``--task translation
   --task-option data_file=...``): <= 120 s;
2. a ``classroom`` FLORES run (``--task flores:en-fr``): <= 300 s;
3. chapter 07 (``notebooks/07_generalisation.ipynb``) with its default
   parameters, through papermill: <= 240 s.

Each runs in a child process with a brand-new call cache folder that links
to the converted checkpoint (``models/``, ``hashes/``), so every answer is
computed and no conversion is timed.  Wall times: run on a quiet machine.

    .venv/bin/python bench/run_times.py               # ~12 minutes on 2 quiet cores
    .venv/bin/python bench/run_times.py --only smoke
    .venv/bin/python bench/run_times.py --only smoke --stop-repeats 4   # with the loop stop
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Result, Timer, report

FLORES = "flores200_devtest_multiparallel_200.jsonl"
RUN = [sys.executable, "-m", "seo_lite.cli", "run", "--quiet", "--no-figure"]
TARGETS = {
    "smoke": ("smoke translation run (generic route, en-fr), cold", "<= 120",
              RUN + ["--preset", "smoke", "--task", "translation",
                     *[x for kv in (f"data_file={FLORES}", "source_column=eng_Latn",
                                    "target_column=fra_Latn", "source_lang=en", "target_lang=fr")
                       for x in ("--task-option", kv)]]),
    "classroom": ("classroom FLORES run (flores:en-fr), cold", "<= 300",
                  RUN + ["--preset", "classroom", "--task", "flores:en-fr"]),
    "chapter07": ("chapter 07 with its defaults, cold", "<= 240", None),
}


def fresh_cache(root: Path) -> Path:
    """A new call cache folder sharing the converted checkpoint of the default one."""
    from seo_lite.llm import make_llm
    from seo_lite.llm.cache import cache_root

    make_llm("embedded", cache=None).load()          # converts the model once, if needed
    cache = root / "cache"
    cache.mkdir(parents=True)
    for sub in ("models", "hashes"):
        (cache_root() / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(cache_root() / sub, target_is_directory=True)
    return cache


def run(key: str, root: Path, stop_repeats: int | None = None) -> Result:
    name, target, cmd = TARGETS[key]
    if stop_repeats is not None and cmd is not None:
        name, cmd = f"{name}, stop_repeats={stop_repeats}", cmd + ["--task-option", f"stop_repeats={stop_repeats}"]
    work = root / key
    env = {**os.environ, "SEO_LITE_CACHE": str(fresh_cache(work))}
    if cmd is None:                                   # chapter 07 through papermill
        cmd = [sys.executable, "-m", "papermill", str(REPO / "notebooks" / "07_generalisation.ipynb"),
               str(work / "07.ipynb"), "-p", "RUNS_DIR", str(work / "runs"), "--no-progress-bar"]
    else:
        cmd = cmd + ["--out", str(work / "run")]
    with Timer() as t:
        p = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-2000:])
    return Result(name, t.seconds if p.returncode == 0 else float("inf"), target, "s",
                  {"command": " ".join(cmd[1:])})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=sorted(TARGETS), action="append")
    ap.add_argument("--stop-repeats", type=int, default=None,
                    help="add --task-option stop_repeats=N to the two runs (default: the "
                         "translation tasks' own, 4; 0 turns the loop stop off; chapter 07 unchanged)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="seo-bench-times-"))
    results = [run(k, root, args.stop_repeats) for k in (args.only or TARGETS)]
    print(f"run folders: {root}")
    return report(results, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
