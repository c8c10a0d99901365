"""Helpers for the crash, concurrency and fault tests: start child runs, read
a run directory back as comparable data, check a cache folder.

``canonical(run_dir)`` is what "the same run" means: every step record
without its timing and usage (those differ between a run that computed an
answer and one that read it from the cache), the final results without
usage, the per-example predictions, the experience Markdown files and the
checkpoint.  Two runs with the same seed must agree on all of it, whether
or not one of them was killed and resumed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHILD = [sys.executable, "-m", "tests.support.seo_child"]


def child_env(**extra: str) -> dict:
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "PYTHONPATH": str(REPO), **extra}
    return env


def spawn(spec: dict, **extra_env: str) -> subprocess.Popen:
    """Start ``tests/support/seo_child.py`` with ``spec`` (output captured)."""
    return subprocess.Popen(CHILD + [json.dumps(spec)], cwd=REPO, env=child_env(**extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_child(spec: dict, *, timeout: float = 600, **extra_env: str) -> tuple[int, str, str]:
    p = spawn(spec, **extra_env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"child did not finish within {timeout} s:\n{err.decode()[-3000:]}")
    return p.returncode, out.decode(), err.decode()


def kill_when(proc: subprocess.Popen, condition, *, poll: float = 0.002,
              timeout: float = 600) -> bool:
    """SIGKILL ``proc`` as soon as ``condition()`` holds; False if it exited first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if condition():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("condition never held")
        time.sleep(poll)
    return False


def cache_entries(cache: Path) -> list[Path]:
    return sorted(Path(cache).glob("??/*.json"))


def count_entries(cache: Path) -> int:
    n = 0
    try:
        with os.scandir(cache) as top:
            for d in top:
                if d.is_dir() and len(d.name) == 2:
                    n += sum(1 for f in os.scandir(d.path) if f.name.endswith(".json")
                             and not f.name.startswith("."))
    except FileNotFoundError:
        return 0
    return n


def temporaries(folder: Path) -> list[Path]:
    """Files a kill inside an atomic write can leave (``.<name>.*.tmp``)."""
    return sorted(p for p in Path(folder).rglob(".*.tmp"))


def check_cache(cache: Path) -> int:
    """Every entry is valid JSON, sits under the hash of its own payload and
    holds an answer; no temporary file remains.  Returns the entry count."""
    from seo_lite.llm.cache import CallCache

    entries = cache_entries(cache)
    for p in entries:
        entry = json.loads(p.read_text(encoding="utf-8"))
        assert set(entry) == {"payload", "value"}, p
        assert CallCache.key_of(entry["payload"]) == p.stem, f"{p} is not under its own key"
        assert isinstance(entry["value"], dict) and entry["value"], p
    assert temporaries(cache) == [], temporaries(cache)
    return len(entries)


def complete_lines(log: Path) -> bytes:
    """The bytes of ``steps.jsonl`` up to its last newline (the finished steps)."""
    if not log.exists():
        return b""
    data = log.read_bytes()
    return data[: data.rfind(b"\n") + 1]


def step_numbers(run_dir: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (Path(run_dir) / "steps.jsonl").read_bytes().splitlines()]


def strip_step(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "usage")}


def canonical(run_dir: Path, *, logprobs: list | None = None) -> dict:
    """A run directory as comparable data (see the module docstring).  With
    ``logprobs=[]`` the label log-probabilities are moved out into that list
    (to compare them with a tolerance) instead of being compared exactly."""
    d = Path(run_dir)
    steps = [strip_step(json.loads(x)) for x in (d / "steps.jsonl").read_bytes().splitlines()]
    final = json.loads((d / "final.json").read_text(encoding="utf-8"))
    final = {k: v for k, v in final.items() if k not in ("usage", "invocation")}
    evals = {p.name: [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines()]
             for p in sorted((d / "eval").glob("*.jsonl"))}
    out = {"steps": steps, "final": final, "eval": evals,
           "markdown": {p.relative_to(d).as_posix(): p.read_text(encoding="utf-8")
                        for p in sorted(d.rglob("*.md"))},
           "checkpoint": json.loads((d / "checkpoint.json").read_text(encoding="utf-8")),
           "config": json.loads((d / "config.json").read_text(encoding="utf-8")),
           "splits": json.loads((d / "splits.json").read_text(encoding="utf-8"))}
    if logprobs is not None:
        _pull_logprobs(out, logprobs)
    return out


def _pull_logprobs(obj, sink: list) -> None:
    if isinstance(obj, dict):
        if "label_logprobs" in obj:
            sink.extend(obj.pop("label_logprobs"))
        for v in obj.values():
            _pull_logprobs(v, sink)
    elif isinstance(obj, list):
        for v in obj:
            _pull_logprobs(v, sink)


def invocation_calls(run_dir: Path) -> int:
    """Model answers computed (not read from the cache) by the last invocation."""
    final = json.loads((Path(run_dir) / "final.json").read_text(encoding="utf-8"))
    return sum(u.get("calls", 0) for u in final["invocation"]["usage"].values())


def invocation_cache_errors(run_dir: Path) -> int:
    final = json.loads((Path(run_dir) / "final.json").read_text(encoding="utf-8"))
    return sum(u.get("cache_errors", 0) for u in final["invocation"]["usage"].values())
