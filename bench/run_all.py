"""Run every benchmark; print each ratio beside its target; exit 1 if any is missed.

    .venv/bin/python bench/run_all.py            # about 40 minutes on 2 quiet cores

Run it on a quiet machine: each ratio is measured within one run, but other
work on the same cores slows the two sides unevenly.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["load_times.py", "batch_generation.py", "label_scoring.py", "openai_concurrency.py",
           "quickstart.py", "answer_stops.py", "run_times.py"]


def main() -> int:
    results, failed = [], False
    for name in BENCHES:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        print(f"== {name}", flush=True)
        p = subprocess.run([sys.executable, str(HERE / name), "--json", out])
        failed |= p.returncode != 0
        try:
            results += json.loads(Path(out).read_text())
        except ValueError:
            failed = True
            print(f"   {name} produced no results")
    print("\nsummary")
    for r in results:
        mark = "info" if r["target"] is None else "ok  " if r["met"] else "MISS"
        target = f"target {r['target']}" if r["target"] else ""
        print(f"  {mark} {r['name']:<52} {r['value']:10.3f} {r['unit']:<4} {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
