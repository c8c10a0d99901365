"""Two (or more) runs at once sharing one cache folder, like two papermill
cells of an ablation grid started together.

The call cache has no lock: every answer is one file written to a temporary
name and renamed into place, so a reader sees a whole entry or none, and two
writers of one key write the same answer.  These tests hold it to that with
real processes started at the same instant (a "go" file): runs that ask the
same questions at the same time, and a stress test of the cache alone in
which processes read and write the same keys in different orders.  After
them every cache file is valid JSON stored under the hash of its own
request, no temporary file remains, no entry is lost, no process saw a
corrupt entry, and each run equals the same run made alone.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.support.runs_check import (REPO, canonical, check_cache, child_env,
                                      invocation_cache_errors, run_child, spawn, step_numbers)

BASE = {"steps": 6, "seed": 21}
CELLS = {                                   # an ablation grid: two identical cells and one other
    "stochastic-a": {**BASE},
    "stochastic-b": {**BASE},
    "fixed": {**BASE, "validation": "fixed"},
}


def _spec(run_dir, cache, config, **extra):
    return {"run_dir": str(run_dir), "cache": str(cache), "model": "scripted",
            "config": config, **extra}


def _keys(cache):
    return {p.stem for p in cache.glob("??/*.json")}


def test_grid_cells_sharing_one_cache_run_at_once(tmp_path):
    shared, go = tmp_path / "shared-cache", tmp_path / "go"
    procs = {}
    for name, config in CELLS.items():
        procs[name] = spawn(_spec(tmp_path / "runs" / name, shared, config, go_file=str(go),
                                  ready_file=str(tmp_path / f"ready-{name}")))
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in CELLS):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for p in procs.values()), "a child died before the start"
        time.sleep(0.01)
    go.touch()                                       # all cells start at the same instant
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"{name}: {err.decode()[-3000:]}"

    n_shared = check_cache(shared)                   # valid, under their own keys, no temp files
    # each cell equals the same cell run alone with a cache of its own
    alone_keys = set()
    for name, config in CELLS.items():
        if name == "stochastic-b":
            continue
        alone = tmp_path / "alone" / name
        rc, _, err = run_child(_spec(alone, tmp_path / "alone-cache" / name, config))
        assert rc == 0, err
        alone_keys |= _keys(tmp_path / "alone-cache" / name)
        assert canonical(tmp_path / "runs" / name) == canonical(alone), name
    assert canonical(tmp_path / "runs" / "stochastic-a") == canonical(tmp_path / "runs" / "stochastic-b")
    # no entry lost, none extra: the shared cache holds exactly the union
    assert _keys(shared) == alone_keys and n_shared == len(alone_keys)
    for name in CELLS:
        run = tmp_path / "runs" / name
        assert step_numbers(run) == list(range(BASE["steps"]))
        assert invocation_cache_errors(run) == 0, f"{name} read a corrupt cache entry"
        assert [p.name for p in run.rglob(".*.tmp")] == []


STRESS = r"""
import json, random, sys, warnings
from seo_lite.llm.cache import CallCache
root, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = CallCache(root)
keys = list(range(n))
random.Random(seed).shuffle(keys)
hits = writes = bad = 0
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for rnd in range(3):
        for i in keys:
            payload = {"kind": "generate", "messages": [{"role": "user", "content": f"q{i}"}]}
            key = CallCache.key_of(payload)
            value = {"text": f"answer {i} " + "x" * (i * 37 % 3000), "prompt_tokens": i}
            got, err = cache.get(key, payload)
            if err:
                bad += 1
            elif got is None:
                cache.put(key, payload, value)
                writes += 1
            elif got != value:
                bad += 1
            else:
                hits += 1
print(json.dumps({"hits": hits, "writes": writes, "bad": bad, "warnings": len(caught)}))
"""


def test_processes_hammering_the_same_cache_keys(tmp_path):
    """Four processes read and write the same 300 keys in different orders,
    three rounds each: nobody ever reads a partial or wrong entry."""
    n, cache = 300, tmp_path / "cache"
    cmd = [sys.executable, "-c", STRESS, str(cache)]
    procs = [subprocess.Popen(cmd + [str(seed), str(n)], cwd=REPO, env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for seed in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    for r in results:
        assert r["bad"] == 0 and r["warnings"] == 0, results
        assert r["hits"] + r["writes"] == 3 * n
        assert r["hits"] >= 2 * n, "after its first round a process only reads"
    assert sum(r["writes"] for r in results) >= n
    assert check_cache(cache) == n
