"""Issue 18, item 5: a grid's cells serially vs with local workers, and a worker killed mid-grid.

1. The grid's cells (default: ``sst2-rank``, seed 0, 9 cells) run serially,
   then with ``--workers`` submitit local workers of 1 thread each, each side
   with a fresh call cache (the converted checkpoint is shared, no answer is):
   the wall-time ratio (goal >= 1.4) and every cell's decisions (accepted per
   step, the final experience, test scores with and without it) identical.
2. The same grid again with the workers, and one worker SIGKILLed (with its
   papermill kernel) while its cell runs: the grid command finishes the other
   worker's cells and reports the dead one; running the same command again
   executes only the unfinished cells, and every cell equals the unbroken run.

The full run takes about an hour on 2 quiet cores; a small check that the
machinery works::

    python bench/grid_fanout.py --grid smoke            # 2 cells, a few minutes
    python bench/grid_fanout.py                         # sst2-rank seed 0 (the measurement)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, Result, Timer, report


def grid_command(args, runs: Path, engine: str) -> list[str]:
    return [sys.executable, "-m", "seo_lite.lab.ablation", args.grid, "--runs", str(runs),
            "--seeds", *map(str, args.seeds), "--engine", engine, "--workers", str(args.workers),
            *sum((["--set", s] for s in args.set), [])]


def fresh_cache(work: Path, name: str) -> str:
    """A new call cache that reuses the converted model checkpoint, not the answers."""
    from seo_lite.llm.cache import cache_root

    cache = work / f"cache-{name}"
    cache.mkdir()
    for sub in ("models", "hashes"):
        (cache_root() / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(cache_root() / sub, target_is_directory=True)
    return str(cache)


def start(args, work: Path, name: str, engine: str, threads: int) -> subprocess.Popen:
    env = {**os.environ, "SEO_LITE_CACHE": fresh_cache(work, name) if not (work / f"cache-{name}").exists()
           else str(work / f"cache-{name}"), "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO)}                   # workers and kernels use this checkout
    log = open(work / f"{name}.log", "a")
    return subprocess.Popen(grid_command(args, work / name, engine), cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def decisions(grid: Path) -> dict:
    out = {}
    for run in sorted(p.parent for p in grid.glob("*/final.json")):
        final = json.loads((run / "final.json").read_text())
        steps = [json.loads(l) for l in (run / "steps.jsonl").read_text().splitlines() if l.strip()]
        test = final["comparisons"]["test"]
        out[run.name] = ([s.get("accepted") for s in steps], (run / "experience.md").read_text(),
                         test["with"]["score"]["mean"], test["without"]["score"]["mean"])
    return out


def lines(grid: Path) -> list[dict]:
    path = grid / "executions.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.is_file() else []


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and the processes it started (its papermill kernel)."""
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and _ppid(p) == pid]
    for child in children:
        kill_tree(child)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _ppid(proc: Path) -> int:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default="sst2-rank")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="passed to the grid command (e.g. steps=1 for a quicker check)")
    ap.add_argument("--serial-threads", type=int, default=os.cpu_count(),
                    help="OMP threads of the serial run (default: every core)")
    ap.add_argument("--work", help="folder for runs and caches (default: a new temporary folder)")
    ap.add_argument("--kill-only", action="store_true",
                    help="only the kill check, against the workers run already in --work")
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="grid-fanout-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)

    times = {}
    for name, engine, threads in (("serial", "serial", args.serial_threads), ("workers", "local", 1)):
        if args.kill_only and (name == "serial" or (work / name).is_dir()):
            continue                                   # the unbroken run of an earlier call is the reference
        with Timer() as t:
            rc = start(args, work, name, engine, threads).wait()
        if rc != 0:
            raise SystemExit(f"{name} grid failed (rc {rc}); see {work / name}.log")
        times[name] = t.seconds
        print(f"{name}: {t.seconds:.0f} s", flush=True)
    grid_name = Path(args.grid).stem
    serial, workers = decisions(work / "serial" / grid_name), decisions(work / "workers" / grid_name)
    same = serial == workers and len(serial) > 0
    results = [] if args.kill_only else [
        Result(f"{grid_name} seeds {args.seeds}: serial / {args.workers} workers (wall time)",
               times["serial"] / times["workers"], ">= 1.4",
               details={"serial_s": round(times["serial"], 1), "workers_s": round(times["workers"], 1),
                        "cells": len(serial), "serial_threads": args.serial_threads,
                        "note": "wall times on this machine as it was loaded during the run"}),
        Result("every cell's decisions and scores identical (1 = yes)", float(same), ">= 1",
               details={"differing": sorted(k for k in serial.keys() | workers.keys()
                                            if serial.get(k) != workers.get(k))})]

    # a worker killed mid-grid, then the same command again
    grid = work / "killed" / grid_name
    proc = start(args, work, "killed", "local", 1)
    victim = None
    while victim is None and proc.poll() is None:
        ended = {e["cell"] for e in lines(grid) if e["status"] != "running"}
        running = [e for e in lines(grid) if e["status"] == "running" and e["cell"] not in ended]
        run_dir = grid / running[-1]["cell"] if running else None
        if run_dir and (run_dir / "steps.jsonl").is_file() and not (run_dir / "final.json").exists():
            victim = running[-1]                       # killed after its first logged step
            kill_tree(victim["pid"])
        time.sleep(0.5)
    first_rc = proc.wait()
    finished_before, n_lines = set(decisions(grid)), len(lines(grid))
    rc = start(args, work, "killed", "local", 1).wait()
    again = lines(grid)[n_lines:]                       # what the resubmission executed
    reran = sorted({e["cell"] for e in again if e["status"] == "ran"} & finished_before)
    resumed = [e for e in again if victim and e["cell"] == victim["cell"] and e["status"] == "ran"]
    kill_ok = (victim is not None and first_rc != 0 and rc == 0 and not reran
               and decisions(grid) == workers and len(resumed) == 1)

    results += [
        Result("SIGKILLed worker: resubmit runs only unfinished cells, equal results (1 = yes)",
               float(kill_ok), ">= 1",
               details={"killed_cell": victim and victim["cell"], "first_rc": first_rc,
                        "finished_before_resubmit": len(finished_before), "re-executed_finished": reran,
                        "resumed_cell_runs": len(resumed)}),
    ]
    return report(results, args.json)


if __name__ == "__main__":
    sys.exit(main())
