"""Embedded model load time: first load (GGUF converted to safetensors) vs later loads.

Each load runs in a fresh process (so nothing is shared in memory) with the
same, initially empty, cache folder.  Also prints generation throughput at
batch size 1 and 8 (the numbers the foundation issue asked for).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _common import REPO, Result, report

CHILD = r"""
import json, time
t0 = time.perf_counter()
from seo_lite.llm import make_llm, Request, GenParams
llm = make_llm("embedded", cache=None)
t1 = time.perf_counter(); llm.load(); t2 = time.perf_counter()
out = {"import_s": t1 - t0, "load_s": t2 - t1, "converted_s": llm._loaded.converted_seconds}
if THROUGHPUT:
    reqs = [Request(f"Write a sentence about the number {i}.", GenParams(max_new_tokens=32)) for i in range(8)]
    llm.generate(reqs[:1])
    for bs in (1, 8):
        llm.batch_size = bs
        t = time.perf_counter(); res = llm.generate(reqs); dt = time.perf_counter() - t
        out[f"tok_s_batch{bs}"] = sum(c.completion_tokens for c in res) / dt
print(json.dumps(out))
"""


def child(cache: str, throughput: bool) -> dict:
    env = {**os.environ, "SEO_LITE_CACHE": cache}
    code = CHILD.replace("THROUGHPUT", str(throughput))
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix="seo-load-")
    cold = child(cache, throughput=False)
    warm = child(cache, throughput=True)
    results = [
        Result("embedded load: first (converting) / cached", cold["load_s"] / warm["load_s"], None, "x",
               {"first load": f"{cold['load_s']:.1f} s (of which converting {cold['converted_s']:.1f} s)",
                "cached load": f"{warm['load_s']:.1f} s", "import seo_lite.llm": f"{warm['import_s']:.1f} s"}),
        Result("embedded generation batch 8 / batch 1, tokens/s", warm["tok_s_batch8"] / warm["tok_s_batch1"],
               None, "x", {"batch 1": f"{warm['tok_s_batch1']:.1f} tok/s",
                                "batch 8": f"{warm['tok_s_batch8']:.1f} tok/s"}),
    ]
    return report(results, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
