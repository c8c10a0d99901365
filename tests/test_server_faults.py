"""SEO runs whose generator and optimizer are ``openai:<model>`` on a server
that misbehaves.

The server is the real chat-completions server of ``tests/support`` on
127.0.0.1, answering with a scripted responder (both models, told apart by
their system prompt) and injecting faults by request number.  Through the
``openai`` SDK and a socket:

* transient faults -- 429, 500, 503, a hung request (client timeout), a cut
  body, a dropped connection, a 200 whose JSON body is damaged -- are retried
  with backoff and the run ends exactly as a run on a healthy server;
* a persistent fault stops the run with one clear line naming the server
  (``seo-lite`` exits with status 2, no traceback), and once the server is
  healthy the same command resumes: the finished steps stay byte for byte,
  and no answer the first attempt received is requested again (the server
  counts every request it gets).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from seo_lite import SEOConfig
from seo_lite.lab.experiment import run_experiment
from seo_lite.llm import LLMError
from tests.support.openai_server import serve
from tests.support.responders import body_key, seo_responder
from tests.support.runs_check import (REPO, canonical, check_cache, child_env, complete_lines,
                                      invocation_calls, step_numbers, temporaries)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def config(server, *, steps=2, seed=4, **options) -> SEOConfig:
    opts = {"base_url": server.base_url, "max_retries": 4, "timeout": 30.0, "concurrency": 4,
            **options}
    return SEOConfig.preset("smoke", task="trec", answer_mode="generate", steps=steps, seed=seed,
                            generator="openai:gen-model", optimizer="openai:opt-model",
                            generator_options=opts, optimizer_options=opts)


def run(cfg, out, cache, monkeypatch):
    monkeypatch.setenv("SEO_LITE_CACHE", str(cache))
    return run_experiment(cfg, out, progress=False, figure=False)


def answered(server) -> set[str]:
    """Bodies the server answered without a fault."""
    return {body_key(r["body"]) for r in server.requests if r["fault"] is None}


TRANSIENT = {2: "429", 5: "500", 9: "503", 14: "cut", 20: "drop", 27: "malformed",
             33: "timeout", 41: "malformed", 47: "429", 53: "500", 60: "cut"}


def test_transient_faults_are_retried_and_the_run_ends_as_on_a_healthy_server(tmp_path, monkeypatch):
    with serve(seo_responder, hang_s=8.0) as s:
        cfg = config(s, timeout=2.0)
        run(cfg, tmp_path / "healthy", tmp_path / "cache-healthy", monkeypatch)
        healthy_requests = s.count
        assert healthy_requests > 60, "the plan below needs this many requests"
        s.reset_stats()
        # request numbers keep counting: put the plan after the healthy run's numbers
        s.set_faults(lambda n, body: TRANSIENT.get(n - healthy_requests))
        run(cfg, tmp_path / "faulty", tmp_path / "cache-faulty", monkeypatch)
        faults = [r["fault"] for r in s.requests if r["fault"]]
    assert sorted(faults) == sorted(TRANSIENT.values()), "every planned fault was injected"
    assert set(faults) >= {"429", "500", "503", "timeout", "cut", "drop", "malformed"}
    # the same run, answer for answer; each fault cost one extra request
    assert canonical(tmp_path / "faulty") == canonical(tmp_path / "healthy")
    assert invocation_calls(tmp_path / "faulty") == healthy_requests
    assert check_cache(tmp_path / "cache-faulty" / "calls") == healthy_requests


def _cli(out, cache, server, *extra):
    opts = []
    for role in ("generator", "optimizer"):
        opts += [f"--{role}-option", f"base_url={server.base_url}",
                 f"--{role}-option", "max_retries=1", f"--{role}-option", "concurrency=2"]
    cmd = [sys.executable, "-m", "seo_lite.cli", "run", "--task", "trec", "--answer-mode",
           "generate", "--preset", "smoke", "--steps", "3", "--seed", "8",
           "--generator", "openai:gen-model", "--optimizer", "openai:opt-model", *opts,
           "--out", str(out), "--quiet", "--no-figure", *extra]
    return subprocess.run(cmd, cwd=REPO, env=child_env(SEO_LITE_CACHE=str(cache)),
                          capture_output=True, text=True, timeout=600)


def test_persistent_fault_stops_the_cli_cleanly_and_the_run_resumes(tmp_path):
    with serve(seo_responder) as s:
        ref = _cli(tmp_path / "ref", tmp_path / "ref-cache", s)
        assert ref.returncode == 0, ref.stderr
        s.reset_stats()
        log = tmp_path / "run" / "steps.jsonl"

        def after_first_step(n, body):        # the server breaks once step 0 is on disk
            return "persistent-500" if log.exists() and log.read_bytes().count(b"\n") >= 1 else None

        s.set_faults(after_first_step)
        broken = _cli(tmp_path / "run", tmp_path / "cache", s)
        assert broken.returncode == 2, broken.stdout + broken.stderr
        err = broken.stderr.strip()
        assert "Traceback" not in broken.stderr
        assert err.splitlines()[-1].startswith("seo-lite: error: OpenAI-compatible server "
                                               f"{s.base_url}")
        assert "HTTP 500" in err and "running again resumes" in err
        finished = complete_lines(log)
        assert finished.count(b"\n") == 1
        first = answered(s)
        n_faulted = sum(r["fault"] is not None for r in s.requests)
        assert n_faulted >= 2, "max_retries=1: each failing request was tried twice"

        s.set_faults(None)                   # the server is healthy again
        s.reset_stats()
        again = _cli(tmp_path / "run", tmp_path / "cache", s)
        assert again.returncode == 0, again.stderr
        second = [body_key(r["body"]) for r in s.requests]
    assert log.read_bytes().startswith(finished), "finished steps stay as they were"
    assert step_numbers(tmp_path / "run") == [0, 1, 2]
    assert not first & set(second), "an answer already received was requested again"
    assert len(second) == len(set(second)), "each missing answer asked once"
    assert canonical(tmp_path / "run") == canonical(tmp_path / "ref")
    assert temporaries(tmp_path / "run") == [] and check_cache(tmp_path / "cache" / "calls") > 0


def _always(kind):
    return lambda n, body: kind


@pytest.mark.parametrize("kind,needle", [
    ("persistent-500", "HTTP 500"),
    ("429", "HTTP 429"),
    ("timeout", "timeout"),
    ("drop", "connection failed"),
    ("malformed", "malformed response"),
])
def test_each_persistent_fault_is_a_clear_error_and_resumes(kind, needle, tmp_path, monkeypatch):
    with serve(seo_responder, hang_s=5.0) as s:
        cfg = config(s, steps=1, max_retries=1, timeout=1.0, concurrency=2)
        healthy = {"n": 0}

        def plan(n, body):                   # the first 6 requests work, then the fault stays
            healthy["n"] += 1
            return None if healthy["n"] <= 6 else kind

        s.set_faults(plan)
        with pytest.raises(LLMError) as e:
            run(cfg, tmp_path / "run", tmp_path / "cache", monkeypatch)
        msg = str(e.value)
        assert s.base_url in msg and needle in msg, msg
        assert e.value.__cause__ is None, "no chained traceback from the SDK"
        first = answered(s)
        assert len(first) >= 6
        s.set_faults(None)
        s.reset_stats()
        result = run(cfg, tmp_path / "run", tmp_path / "cache", monkeypatch)
        second = [body_key(r["body"]) for r in s.requests]
    assert not first & set(second), "cached answers were requested again"
    assert len(result.run.steps) == 1 and (tmp_path / "run" / "final.json").is_file()
