"""Targets 3, 4 and 5: the README quick start, cold, warm, and without reuse.

1. cold: the quick-start command with a brand-new cache folder (the model is
   converted from GGUF, every answer computed): wall time and peak memory of
   the child process (issue 22: <= 100 s; issue 14: <= 2 GiB).
2. warm: the same command into a new run folder with the cache now warm
   (issue 14: <= 5 s, zero model calls, the same scores).
3. prefix sharing (issue 14): prompt tokens the model computed over prompt
   tokens requested in the cold run's steps (target <= 0.4), and a run with
   the cache off (no reuse across calls) must take the same decisions.
   Also reported: the optimizer's generated tokens and seconds per step
   (its list stops once ``max_rules`` rules are written).
4. the same cold run with both models at ``dtype=auto`` (bfloat16 on a CPU with
   bf16 instructions, float32 elsewhere), in a cache of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, Result, Timer, report

QUICKSTART = ["-m", "seo_lite.cli", "run", "--task", "sst2", "--answer-mode", "rank",
              "--preset", "classroom", "--quiet"]


def run(out: Path, cache: str, extra=()) -> tuple[float, int]:
    env = {**os.environ, "SEO_LITE_CACHE": cache}
    with Timer() as t:
        p = subprocess.run([sys.executable, *QUICKSTART, *extra, "--out", str(out)], env=env,
                           cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"quick start failed:\n{p.stdout}\n{p.stderr}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return t.seconds, peak_kib


def calls(final: dict) -> int:
    return sum(u.get("calls", 0) for u in final["invocation"]["usage"].values())


def steps(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--keep", help="keep the run folders here")
    args = ap.parse_args(argv)

    root = Path(args.keep or tempfile.mkdtemp(prefix="seo-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    cache = str(root / "cache")
    cold_s, cold_peak = run(root / "cold", cache)
    warm_s, _ = run(root / "warm", cache)
    nocache_s, _ = run(root / "nocache", "off")
    auto = ["--generator-option", "dtype=auto", "--optimizer-option", "dtype=auto"]
    auto_s, _ = run(root / "auto", str(root / "cache-auto"), auto)
    auto_dtype = json.loads((root / "auto" / "final.json").read_text())["models"]["generator"]["dtype"]

    cold_final = json.loads((root / "cold" / "final.json").read_text())
    warm_final = json.loads((root / "warm" / "final.json").read_text())
    cfg = json.loads((root / "cold" / "config.json").read_text())
    cold_steps = steps(root / "cold")
    total = lambda key, role=None: sum(u.get(key, 0) for s in cold_steps for r, u in s["usage"].items()
                                       if role in (None, r))
    requested, computed = total("prompt_tokens"), total("prompt_tokens_computed")
    opt_tokens, opt_seconds = total("completion_tokens", "optimizer"), total("seconds", "optimizer")
    opt_kept = total("completion_tokens_kept", "optimizer")
    decisions = lambda out: [(s["decision"]["accepted"], s["decision"]["chosen"], s["experience_after"])
                             for s in steps(out)]
    same_decisions = decisions(root / "cold") == decisions(root / "nocache") == decisions(root / "warm")
    same_scores = cold_final["comparisons"] == warm_final["comparisons"]

    results = [
        Result("quick start cold, wall time", cold_s, "<= 100", "s",
               {"includes": "GGUF conversion, training, dev/test evaluation, figure"}),
        Result(f"quick start cold with dtype=auto ({auto_dtype} here), wall time", auto_s, "<= 100", "s",
               {"float32 cold": f"{cold_s:.1f} s", "speed-up": f"{cold_s / auto_s:.2f}x"}),
        Result("quick start cold, peak memory", cold_peak / 2**20, "<= 2.0", "GiB"),
        Result("warm re-run wall time", warm_s if calls(warm_final) == 0 and same_scores else float("inf"),
               "<= 5", "s",
               {"warm": f"{warm_s:.1f} s", "cold": f"{cold_s:.1f} s",
                "warm model calls": calls(warm_final), "same scores": same_scores}),
        Result("prompt tokens computed / requested in the steps",
               computed / requested if same_decisions and requested else 1.0, "<= 0.4", "",
               {"requested": requested, "computed": computed,
                "same decisions with the cache off": same_decisions,
                "cache off run": f"{nocache_s:.1f} s"}),
        Result("optimizer seconds per step", opt_seconds / len(cold_steps), None, "s",
               {"optimizer tokens generated per step": round(opt_tokens / len(cold_steps), 1),
                "of those, kept as rules by the parser": round(opt_kept / len(cold_steps), 1)}),
    ]
    print(f"run folders: {root}")
    return report(results, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
