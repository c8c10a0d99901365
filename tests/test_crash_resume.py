"""Crash and resume: a run killed with SIGKILL anywhere resumes to the same end.

A child process (``tests/support/seo_child.py``) runs a whole experiment --
SEO steps, final evaluation -- and is killed with SIGKILL, either by itself
at an exact point (after the n-th model answer, half-way through writing a
log line, just after the line is on disk, inside the atomic rename of the
checkpoint, an experience file, a cache entry or final.json) or from outside
at a random moment.  Running the same child again on the same directory
must then

* keep every step that was finished (the log's complete lines, byte for byte),
* write no step twice and lose none (steps 0..T-1, once each, in order),
* end with exactly what an unbroken run with the same seed ends with
  (every decision, candidate, score, experience file, prediction, result),
* ask the models only for what the killed run had not cached (counted), and
* leave no temporary file behind in the run directory.

The fast cases use scripted models (deterministic, with the real cache); one
case kills the real embedded model (smoke preset, label ranking) mid-run.
Logs truncated at random byte offsets (a torn write seen from the outside,
including a cut inside a multi-byte character) resume the same way.
"""
from __future__ import annotations

import json
import random
import shutil
import signal
import warnings
from pathlib import Path

import pytest

from seo_lite import SEOConfig
from seo_lite.lab.experiment import run_experiment
from seo_lite.llm import CallCache, make_llm
from seo_lite.machinery.runs import load_run
from tests.support.runs_check import (canonical, check_cache, complete_lines, count_entries,
                                      invocation_calls, kill_when, run_child, spawn,
                                      step_numbers, temporaries)
from tests.support.seo_child import Stepper

STEPS = 5
# a non-ASCII rule, so that the log holds multi-byte characters a torn write can cut
RULE = "Answer with one word — «un mot», 一語で."
CONFIG = {"task": "trec", "steps": STEPS, "seed": 11, "initial_experience": [RULE]}
KILLED = -signal.SIGKILL


def spec(run_dir: Path, cache: Path, kill: tuple[str, int] | None = None, **extra) -> dict:
    s = {"run_dir": str(run_dir), "cache": str(cache), "model": "scripted", "config": CONFIG,
         **extra}
    if kill:
        s["kill"] = {"at": kill[0], "n": kill[1]}
    return s


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The unbroken run every crashed run must end up equal to."""
    base = tmp_path_factory.mktemp("reference")
    rc, out, err = run_child(spec(base / "run", base / "cache"))
    assert rc == 0, err
    entries = check_cache(base / "cache")
    assert invocation_calls(base / "run") == entries, "one model call per distinct request"
    ref = canonical(base / "run")
    assert ref["final"]["steps"] == STEPS
    # the scripted models make a run with variety: accepted and rejected steps,
    # failed candidates (no list in the reply), D_t fresh per step
    decisions = [s["decision"]["accepted"] for s in ref["steps"]]
    assert True in decisions and False in decisions
    assert any(c["failure"] for s in ref["steps"] for c in s["candidates"])
    return base, ref, entries


def crash_then_resume(tmp_path: Path, reference, kills: list[tuple[str, int]]):
    """Kill the run at each point in turn, then let it finish; check the
    invariants after every kill and at the end.  Returns per-kill states."""
    _, ref, ref_entries = reference
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    states = []
    for kill in kills:
        rc, _, err = run_child(spec(run_dir, cache, kill))
        assert rc == KILLED, f"the child should have died at {kill}, got {rc}: {err[-2000:]}"
        finished = complete_lines(run_dir / "steps.jsonl")
        states.append({"finished": finished, "entries": count_entries(cache),
                       "has_config": (run_dir / "config.json").exists(),
                       "tmp": temporaries(run_dir), "cache_tmp": temporaries(cache),
                       "torn": (run_dir / "steps.jsonl").exists()
                       and not (run_dir / "steps.jsonl").read_bytes().endswith(b"\n")
                       and (run_dir / "steps.jsonl").stat().st_size > 0})
        # a report of the crashed run works and shows exactly the finished steps
        if (run_dir / "config.json").exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                partial, final = load_run(run_dir)
            assert len(partial.steps) == finished.count(b"\n")
    cached_before = count_entries(cache)
    rc, out, err = run_child(spec(run_dir, cache))
    assert rc == 0, err
    log = (run_dir / "steps.jsonl").read_bytes()
    assert log.startswith(states[-1]["finished"]), "a finished step was rewritten or lost"
    assert step_numbers(run_dir) == list(range(STEPS)), "each step once, in order"
    assert canonical(run_dir) == ref, "the resumed run differs from the unbroken one"
    assert temporaries(run_dir) == [], "temporary files left in the run directory"
    # only what the killed runs had not cached was asked again
    assert invocation_calls(run_dir) == ref_entries - cached_before
    assert count_entries(cache) == ref_entries
    return states


# (kill point, n, what the run directory must look like right after the kill)
KILL_POINTS = [
    ("replace:config.json", 1, "killed creating the run: config.json not yet in place"),
    ("gen", 1, "nothing finished: killed at the first model answer"),
    ("opt", 6, "step 0 finished; killed inside step 1's optimizer batch"),
    ("gen", 60, "killed during trials or validation of a later step"),
    ("log_write", 3, "half of step 2's line written, then killed"),
    ("log_fsync", 2, "step 1's line on disk; its checkpoint and Markdown not yet"),
    ("replace:checkpoint.json", 3, "killed inside the checkpoint's atomic rename"),
    ("replace:step_004.md", 1, "killed inside the rename of E_4's Markdown file"),
    ("cache_replace", 30, "killed inside the rename of a cache entry"),
    ("replace:dev.jsonl", 1, "every step finished; killed writing evaluation predictions"),
    ("replace:final.json", 1, "everything computed; killed writing final.json"),
]


@pytest.mark.parametrize("point,n,what", KILL_POINTS, ids=[f"{p}-{n}" for p, n, _ in KILL_POINTS])
def test_sigkill_at_a_point_then_resume_gives_the_unbroken_run(point, n, what, tmp_path, reference):
    (state,) = crash_then_resume(tmp_path, reference, [(point, n)])
    lines = state["finished"].count(b"\n")
    if point == "replace:config.json":
        assert lines == 0 and not state["has_config"] and state["tmp"]
    elif (point, n) == ("gen", 1):
        assert lines == 0 and state["entries"] == 0
    elif point == "gen":
        assert 0 < lines < STEPS
    elif point == "opt":
        assert lines == 1
    elif point == "log_write":
        assert lines == 2 and state["torn"], "the kill should leave a torn last line"
    elif point == "log_fsync":
        assert lines == 2
    elif point == "replace:checkpoint.json":
        assert lines == 2 and any(p.name.startswith(".checkpoint.json.") for p in state["tmp"])
    elif point == "replace:step_004.md":
        assert lines == 4 and state["tmp"]
    elif point == "cache_replace":
        assert state["cache_tmp"] and state["entries"] == n - 1
    else:
        assert lines == STEPS and state["tmp"]


def test_killed_again_while_resuming(tmp_path, reference):
    """Three kills in a row, each in a different place, then a clean finish."""
    states = crash_then_resume(tmp_path, reference,
                               [("log_write", 2), ("opt", 3), ("log_fsync", 2)])
    assert [s["finished"].count(b"\n") for s in states] == [1, 2, 4]
    assert states[0]["finished"] == states[1]["finished"][: len(states[0]["finished"])]


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_from_outside_at_a_random_moment(attempt, tmp_path, reference):
    """The parent kills the child when its cache has reached a random size:
    a moment the child does not choose (inside a model call, a write, ...)."""
    _, ref, ref_entries = reference
    rng = random.Random(f"outside-{attempt}")
    for tries in range(4):        # on a starved CPU the child may finish before the parent looks
        threshold = rng.randint(1, ref_entries - 1)
        run_dir, cache = tmp_path / f"run{tries}", tmp_path / f"cache{tries}"
        proc = spawn(spec(run_dir, cache, slow=0.004))
        killed = kill_when(proc, lambda: count_entries(cache) >= threshold)
        proc.communicate()
        if killed:
            break
    assert killed, "the run always finished before the parent could kill it"
    finished = complete_lines(run_dir / "steps.jsonl")
    cached = count_entries(cache)
    rc, _, err = run_child(spec(run_dir, cache))
    assert rc == 0, err
    assert (run_dir / "steps.jsonl").read_bytes().startswith(finished)
    assert step_numbers(run_dir) == list(range(STEPS))
    assert canonical(run_dir) == ref
    assert invocation_calls(run_dir) == ref_entries - cached
    assert temporaries(run_dir) == []


def test_logs_truncated_at_random_offsets_resume_the_same(tmp_path, reference):
    """The log, checkpoint and experience.md cut at random byte offsets (what
    a torn write leaves, seen from outside), including one cut inside a
    multi-byte character; each resumes in-process to the unbroken run."""
    base, ref, _ = reference
    log = (base / "run" / "steps.jsonl").read_bytes()
    lines_end = [i + 1 for i, b in enumerate(log) if b == ord("\n")]
    rng = random.Random(7)
    multibyte = log.index("一".encode()) + 1             # inside the 3-byte character
    offsets = sorted({rng.randrange(len(log)) for _ in range(5)} | {multibyte, lines_end[1], 0})
    config = SEOConfig.preset("smoke", generator="scripted:gen", optimizer="scripted:opt",
                              answer_mode="rank", **CONFIG)
    cache = CallCache(base / "cache")                      # warm: resuming asks no model
    for k, offset in enumerate(offsets):
        run_dir = tmp_path / f"cut-{offset}"
        shutil.copytree(base / "run", run_dir)
        (run_dir / "final.json").unlink()
        with open(run_dir / "steps.jsonl", "r+b") as f:
            f.truncate(offset)
        for name in ("checkpoint.json", "experience.md"):
            p = run_dir / name
            p.write_bytes(p.read_bytes()[: rng.randrange(p.stat().st_size)])
        finished = sum(1 for e in lines_end if e <= offset)
        torn = offset not in lines_end and offset != 0
        # a report during the crash reads only the finished steps
        partial, _ = load_run(run_dir)
        assert len(partial.steps) == finished
        gen, opt = Stepper("gen", cache), Stepper("opt", cache)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_experiment(config, run_dir, progress=False, figure=False, generator=gen,
                           optimizer=opt)
        messages = " ".join(str(w.message) for w in caught)
        if torn:
            assert "unfinished last line" in messages, "a cut line is reported, not silent"
        assert gen.answered == opt.answered == 0, "every answer came from the cache"
        assert step_numbers(run_dir) == list(range(STEPS))
        assert canonical(run_dir) == ref, f"offset {offset}"
        assert temporaries(run_dir) == []


# -- the real embedded model ----------------------------------------------------------

@pytest.mark.slow
def test_embedded_model_killed_mid_run_resumes_to_the_unbroken_run(tmp_path):
    """SmolLM2 (smoke preset, TREC, label ranking) killed with SIGKILL while it
    computes -- at a random one of the answers it has to compute, inside the
    rename that stores it -- then resumed in a new process: the same steps,
    experience and scores as a run in one go.

    To keep this affordable on a CPU the killed run starts from a copy of the
    unbroken run's cache with a random half of the label-ranking answers
    removed (the optimizer's sampled rules, the slow part, stay): those it
    computes for real, in other batches than the unbroken run did.  The kill
    is placed by the child itself, so it lands where it should however busy
    the machine is."""
    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="rank", seed=5)
    ref_dir, ref_cache = tmp_path / "ref", tmp_path / "ref-cache"
    llm = make_llm("embedded", cache=ref_cache)
    run_experiment(cfg, ref_dir, progress=False, figure=False, generator=llm, optimizer=llm)
    ref_lp: list = []
    ref = canonical(ref_dir, logprobs=ref_lp)
    total = count_entries(ref_cache)

    rng = random.Random(5)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    shutil.copytree(ref_cache, cache)
    scoring = [p for p in sorted(cache.glob("??/*.json"))
               if json.loads(p.read_text())["payload"]["kind"] == "score"]
    removed = rng.sample(scoring, len(scoring) // 2)
    for p in removed:
        p.unlink()
    start = count_entries(cache)
    k = rng.randint(2, len(removed) - 1)
    child = {"run_dir": str(run_dir), "cache": str(cache), "model": "embedded",
             "preset": "smoke", "config": {"task": "trec", "answer_mode": "rank", "seed": 5}}
    rc, _, err = run_child({**child, "kill": {"at": "cache_replace", "n": k}}, timeout=3600)
    assert rc == KILLED, err[-3000:]
    finished = complete_lines(run_dir / "steps.jsonl")
    assert count_entries(cache) == start + k - 1, "killed storing its k-th computed answer"

    rc, _, err = run_child(child, timeout=3600)
    assert rc == 0, err[-3000:]
    assert (run_dir / "steps.jsonl").read_bytes().startswith(finished)
    assert step_numbers(run_dir) == list(range(cfg.steps))
    lp: list = []
    assert canonical(run_dir, logprobs=lp) == ref
    # label log-probabilities computed in other batches may differ in the last digits
    assert len(lp) == len(ref_lp)
    assert max(abs(a - b) for a, b in zip(lp, ref_lp)) < 1e-3
    assert invocation_calls(run_dir) == total - (start + k - 1)
    assert count_entries(cache) == total
    assert temporaries(run_dir) == []
    check_cache(cache)
