"""Shared bits of the benchmarks: targets, reporting, exit codes.

Each benchmark measures both sides of a ratio in one run, on this machine,
prints it next to its target, and returns whether the target was met.
Benchmarks never run inside the test suite; tests check that speed-ups keep
results identical, benchmarks check that they are fast.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Result:
    name: str
    value: float
    target: str | None           # e.g. ">= 3.0"; None: a measurement with no target
    unit: str = "x"
    details: dict = field(default_factory=dict)

    @property
    def met(self) -> bool:
        if self.target is None:
            return True
        op, bound = self.target.split()
        bound = float(bound)
        return self.value >= bound if op == ">=" else self.value <= bound

    def line(self) -> str:
        mark = "ok  " if self.met else "MISS"
        if self.target is None:
            return f"[info] {self.name:<52} {self.value:10.3f} {self.unit:<4}"
        return f"[{mark}] {self.name:<52} {self.value:10.3f} {self.unit:<4} (target {self.target})"


def report(results: list[Result], json_path: str | None = None) -> int:
    for r in results:
        print(r.line())
        for k, v in r.details.items():
            print(f"         {k}: {v}")
    if json_path:
        Path(json_path).write_text(json.dumps([{**r.__dict__, "met": r.met} for r in results], indent=2))
    return 0 if all(r.met for r in results) else 1


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
