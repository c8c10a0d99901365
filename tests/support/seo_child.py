"""A child process that runs one SEO experiment, for crash, resume and
concurrency tests.

    python -m tests.support.seo_child '<json spec>'

The spec names the run directory, the cache folder, the config (a preset and
overrides), the models and, optionally, a **kill point**: the child then
sends itself SIGKILL at that exact moment, which is how a test lands a crash
in places a timer cannot hit reliably (half-way through writing a log line,
between the log and the checkpoint, inside an atomic rename).  Nothing in the
library knows about this: the kill points are monkeypatches of ``open``,
``os.fsync`` and ``os.replace`` as seen from this process, or a model that
dies after answering its n-th request.

Models:

* ``"scripted"`` -- deterministic stand-ins (SHA-256 of the prompt decides),
  fast enough to crash a run dozens of times: the generator scores labels
  (``answer_mode="rank"``), the optimizer writes numbered lists (sometimes
  no list, which is a failed candidate).  Both answer one request at a time
  (``_generate`` / ``_loglikelihood`` yield as they go), so a kill can land in the
  middle of a batch, and both use the real call cache.
* ``"embedded"`` -- the real SmolLM2 model, for the end-to-end crash test.

Spec keys: ``run_dir``, ``cache``, ``model`` ("scripted" | "embedded"),
``preset``, ``config`` (overrides), ``kill`` ({"at": point, "n": count}),
``slow`` (seconds of sleep per scripted answer, so that a timer can land
inside a step), ``go_file`` (wait until it exists before starting: two
children start together), ``ready_file`` (touched when the child is about to
start working).  Kill points: ``gen`` / ``opt`` (after the model's n-th
answer), ``log_write`` (write half of the n-th step line, then die),
``log_fsync`` (right after the n-th step line is on disk), ``replace:<name>``
(just before the n-th atomic rename onto a file called <name>: the temporary
file is written, the rename not done), ``cache_replace`` (the same for the
n-th cache entry).
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from seo_lite.llm.base import LLM, Completion, Loglikelihoods  # noqa: E402


def die() -> None:
    """SIGKILL this process: no cleanup, no finally blocks, no flush."""
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)                       # never reached


def h(*parts) -> int:
    """A stable hash (Python's own ``hash`` changes between processes)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


RULE_BANK = ("Questions asking 'who' are about a human.",
             "Questions asking 'where' are about a location.",
             "How many or how much asks for a number.",
             "What does X stand for asks for an abbreviation.",
             "Definitions are descriptions.",
             "Name the type of answer, not the answer.",
             "Animals, colours and objects are entities.")


class Stepper(LLM):
    """Scripted model that counts its answers and may die after the n-th."""

    supports_loglikelihood = True

    def __init__(self, name: str, cache, *, kill_after: int | None = None, slow: float = 0.0):
        super().__init__(cache)
        self._name, self.kill_after, self.slow, self.answered = name, kill_after, slow, 0

    backend = "scripted"

    def identity(self) -> dict:
        return {"backend": "scripted", "model": self._name}

    def _tick(self):
        if self.slow:
            time.sleep(self.slow)
        self.answered += 1
        if self.kill_after is not None and self.answered > self.kill_after:
            die()

    def _generate(self, requests):
        for i, r in enumerate(requests):
            self._tick()
            prompt = r.messages[-1]["content"]
            x = h(prompt, r.sample_index, r.params.seed)
            if x % 7 == 0:
                text = "I am not sure what rules would help here."
            else:
                n = 1 + x % 3
                picks = [RULE_BANK[(x >> (8 * j)) % len(RULE_BANK)] for j in range(n)]
                text = "\n".join(f"{j + 1}. {p}" for j, p in enumerate(picks))
            yield i, Completion(text=text, prompt_tokens=len(prompt.split()),
                                completion_tokens=len(text.split()))

    def _loglikelihood(self, requests):
        for i, r in enumerate(requests):
            self._tick()
            prompt = r.messages[-1]["content"]
            lps = [-((h(prompt, c) % 1000) / 100.0) for c in r.continuations]
            yield i, Loglikelihoods(logprobs=lps, token_counts=[1] * len(lps),
                            prompt_tokens=len(prompt.split()))


def install_kill_point(point: str, n: int, run_dir: Path, cache: Path) -> None:
    """Patch file operations as this process sees them so that it dies at ``point``."""
    import seo_lite.machinery.runs as runs

    seen = {"count": 0}

    def nth() -> bool:
        seen["count"] += 1
        return seen["count"] == n

    log_path = (run_dir / "steps.jsonl").resolve()

    if point == "log_write":
        real_open = open

        class HalfWriter:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self.f.__exit__(*exc)

            def write(self, data):
                if nth():
                    self.f.write(data[: len(data) // 2])
                    self.f.flush()
                    os.fsync(self.f.fileno())
                    die()
                return self.f.write(data)

            def __getattr__(self, name):
                return getattr(self.f, name)

        def patched_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if "a" in mode and Path(file).resolve() == log_path:
                return HalfWriter(f)
            return f

        runs.open = patched_open          # module global shadows the builtin in runs.py only
    elif point == "log_fsync":
        real_fsync = os.fsync

        def patched_fsync(fd):
            real_fsync(fd)
            try:
                target = Path(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                return
            if target == log_path and nth():
                die()

        os.fsync = patched_fsync
    elif point.startswith("replace:") or point == "cache_replace":
        name = point.partition(":")[2]
        real_replace = os.replace
        cache_root = cache.resolve()

        def patched_replace(src, dst, *args, **kwargs):
            d = Path(dst).resolve()
            hit = (d.name == name) if name else (cache_root in d.parents)
            if hit and nth():
                die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = patched_replace
    elif point not in ("gen", "opt"):
        raise SystemExit(f"unknown kill point {point!r}")


def main(spec: dict) -> int:
    from seo_lite import SEOConfig
    from seo_lite.lab.experiment import run_experiment
    from seo_lite.llm import CallCache, make_llm

    run_dir, cache = Path(spec["run_dir"]), Path(spec["cache"])
    kill = spec.get("kill") or {}
    point, n = kill.get("at"), int(kill.get("n", 1))
    if point:
        install_kill_point(point, n, run_dir, cache)
    if spec.get("model", "scripted") == "embedded":
        config = SEOConfig.preset(spec.get("preset", "smoke"), **spec.get("config", {}))
        gen = opt = make_llm("embedded", cache=cache)
    else:
        overrides = {"generator": "scripted:gen", "optimizer": "scripted:opt", "answer_mode": "rank",
                     **spec.get("config", {})}
        config = SEOConfig.preset(spec.get("preset", "smoke"), **overrides)
        slow = float(spec.get("slow", 0.0))
        gen = Stepper("gen", CallCache(cache), slow=slow,
                      kill_after=n - 1 if point == "gen" else None)
        opt = Stepper("opt", CallCache(cache), slow=slow,
                      kill_after=n - 1 if point == "opt" else None)
    if spec.get("ready_file"):
        Path(spec["ready_file"]).touch()
    if spec.get("go_file"):
        while not Path(spec["go_file"]).exists():
            time.sleep(0.005)
    result = run_experiment(config, run_dir, progress=False, figure=False,
                            generator=gen, optimizer=opt)
    print(json.dumps({"experience": result.run.experience.to_list(),
                      "steps": len(result.run.steps)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
