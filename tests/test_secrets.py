"""An API key goes to the model server and nowhere else.

With the key set both ways a user can set it -- ``OPENAI_API_KEY`` in the
environment and ``api_key=`` as a model option -- SEO runs through the openai
backend against the local chat server (which demands that key), and then
every byte that the run left behind is searched for it: each file under the
run directory and the cache folder, the captured stdout and stderr of the
command line, Python's captured output and log records (the ``openai`` and
``httpx`` loggers at DEBUG), the config's repr and JSON, and the error
messages of runs that fail (a server that rejects the key and echoes it back,
a server that keeps failing).  If ``notebooks/run_seo.ipynb`` exists, it is
executed with papermill against the same server and the executed notebook is
searched too.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from seo_lite import SEOConfig
from seo_lite.lab.experiment import run_experiment
from seo_lite.llm import LLMError
from tests.support.openai_server import serve
from tests.support.responders import seo_responder
from tests.support.runs_check import REPO, child_env

SECRET = "sk-test-SEOLITE-SECRET-123"
NEEDLES = (SECRET.encode(), b"SEOLITE-SECRET")          # the key, and a telling piece of it


def leaks(*places) -> list[str]:
    """Where the key appears: files under the folders given, or the texts given."""
    found = []
    for place in places:
        if isinstance(place, Path):
            files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
            found += [str(p) for p in files if any(n in p.read_bytes() for n in NEEDLES)]
        else:
            data = place.encode() if isinstance(place, str) else place
            if any(n in data for n in NEEDLES):
                i = data.find(b"SEOLITE-SECRET")
                found.append(repr(data[max(0, i - 80): i + 40]))
    return found


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for var in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _cli(server, out, cache, *extra, key_option=True):
    opts = []
    for role in ("generator", "optimizer"):
        opts += [f"--{role}-option", f"base_url={server.base_url}",
                 f"--{role}-option", "max_retries=1"]
        if key_option:
            opts += [f"--{role}-option", f"api_key={SECRET}"]
    cmd = [sys.executable, "-m", "seo_lite.cli", "run", "--task", "trec", "--answer-mode",
           "generate", "--preset", "smoke", "--steps", "1", "--generator", "openai:gen-model",
           "--optimizer", "openai:opt-model", *opts, "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=REPO, env=child_env(SEO_LITE_CACHE=str(cache),
                                                       OPENAI_API_KEY=SECRET),
                          capture_output=True, timeout=600)


def test_cli_run_with_a_key_leaves_no_trace_of_it(tmp_path):
    with serve(seo_responder, api_key=SECRET) as s:
        ok = _cli(s, tmp_path / "run", tmp_path / "cache")           # progress bars on
        assert ok.returncode == 0, ok.stderr.decode()[-3000:]
        report = subprocess.run([sys.executable, "-m", "seo_lite.cli", "report",
                                 str(tmp_path / "run")], cwd=REPO, capture_output=True,
                                env=child_env(SEO_LITE_CACHE=str(tmp_path / "cache")), timeout=300)
        assert report.returncode == 0, report.stderr.decode()
        # resuming with the key from the environment only is the same run, not another config
        env_only = _cli(s, tmp_path / "run", tmp_path / "cache", key_option=False)
        assert env_only.returncode == 0, env_only.stderr.decode()[-3000:]
        # failures: the same config on a run with a different seed (config diff message)
        diff = _cli(s, tmp_path / "run", tmp_path / "cache", "--seed", "9")
        assert diff.returncode == 2 and b"different config" in diff.stderr
        # a server that keeps failing
        s.set_faults("persistent-500")
        failing = _cli(s, tmp_path / "run-fail", tmp_path / "cache", "--seed", "9")
        assert failing.returncode == 2 and b"HTTP 500" in failing.stderr
        assert s.count > 0 and all(r["fault"] for r in s.requests[-2:])
    # a server that rejects the key and echoes it back (a careless server)
    with serve(seo_responder, api_key="another-key") as s:
        rejected = _cli(s, tmp_path / "run-401", tmp_path / "cache-401")
        assert rejected.returncode == 2 and b"401" in rejected.stderr
    outputs = [p.stdout for p in (ok, report, env_only, diff, failing, rejected)] + \
              [p.stderr for p in (ok, report, env_only, diff, failing, rejected)]
    assert b"SEO steps" in ok.stderr, "progress output was captured and searched"
    assert leaks(tmp_path / "run", tmp_path / "run-fail", tmp_path / "run-401",
                 tmp_path / "cache", tmp_path / "cache-401", *outputs) == []
    assert (tmp_path / "cache" / "calls").is_dir() and any((tmp_path / "cache" / "calls").rglob("*.json"))
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["generator_options"] == {"base_url": cfg["generator_options"]["base_url"],
                                        "max_retries": 1}, "the key option is left out"


def test_python_run_with_a_key_leaves_no_trace_of_it(tmp_path, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)                  # the SDK's and httpx's debug logs too
    monkeypatch.setenv("SEO_LITE_CACHE", str(tmp_path / "cache"))
    with serve(seo_responder, api_key=SECRET) as s:
        opts = {"base_url": s.base_url, "api_key": SECRET, "max_retries": 1}
        cfg = SEOConfig.preset("smoke", task="trec", answer_mode="generate", steps=1,
                               generator="openai:gen-model", optimizer="openai:opt-model",
                               generator_options=opts, optimizer_options=opts)
        result = run_experiment(cfg, tmp_path / "run", progress=True)
        print(result, cfg, result.run.summary())
        texts = [repr(cfg), str(cfg), json.dumps(cfg.to_dict()), str(result),
                 repr(result.run.config)]
        s.set_faults("persistent-500")
        with pytest.raises(LLMError) as e:
            run_experiment(cfg.replace(seed=1), tmp_path / "run-fail", progress=False)
        texts.append(str(e.value))
    with serve(seo_responder, api_key="another-key") as s:
        opts = {"base_url": s.base_url, "api_key": SECRET, "max_retries": 0}
        bad = cfg.replace(generator_options=opts, optimizer_options=opts)
        with pytest.raises(LLMError, match="401") as e:
            run_experiment(bad, tmp_path / "run-401", progress=False)
        texts.append(str(e.value))
    assert "<redacted>" in repr(cfg), "repr says a key is set without showing it"
    captured = capsys.readouterr()
    logs = "\n".join(f"{r.name}: {r.getMessage()} {r.args!r}" for r in caplog.records)
    assert caplog.records, "debug logs were captured and searched"
    assert leaks(tmp_path / "run", tmp_path / "run-fail", tmp_path / "run-401",
                 tmp_path / "cache", captured.out, captured.err, logs, *texts) == []


NOTEBOOK = REPO / "notebooks" / "run_seo.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(not NOTEBOOK.is_file(), reason="notebooks/run_seo.ipynb not written yet")
def test_run_notebook_through_papermill_leaves_no_trace_of_the_key(tmp_path, monkeypatch):
    """The parameterized run notebook, executed by papermill with both models
    on the local server; the key is in the kernel's environment only (papermill
    writes parameters into the executed notebook, so keys never go there)."""
    papermill = pytest.importorskip("papermill")
    out_nb, run_dir = tmp_path / "executed.ipynb", tmp_path / "run"
    monkeypatch.setenv("SEO_LITE_CACHE", str(tmp_path / "cache"))     # the kernel inherits it
    with serve(seo_responder, api_key=SECRET) as s:
        params = {"GENERATOR": "openai:gen-model", "GENERATOR_OPTIONS": {"base_url": s.base_url},
                  "OPTIMIZER": "openai:opt-model", "OPTIMIZER_OPTIONS": {"base_url": s.base_url},
                  "ANSWER_MODE": "generate", "PRESET": "smoke", "STEPS": 1,
                  "OUT_DIR": str(run_dir)}
        papermill.execute_notebook(str(NOTEBOOK), str(out_nb), parameters=params,
                                   cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
        assert s.count > 0 and all(r["fault"] is None for r in s.requests)
    assert (run_dir / "final.json").is_file()
    assert s.base_url.encode() in out_nb.read_bytes(), "the executed notebook was searched"
    assert leaks(out_nb, run_dir, tmp_path / "cache") == []
