"""SEO end to end with the real embedded model (smoke preset) and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seo_lite import SEOConfig
from seo_lite.lab.experiment import run_experiment
from seo_lite.llm import make_llm
from seo_lite.machinery.runs import load_run
from seo_lite.machinery.training import train

pytestmark = pytest.mark.slow

CFG = SEOConfig.preset("smoke", task="trec", answer_mode="rank", seed=3)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("calls")


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("runs") / "smoke"
    llm = make_llm("embedded", cache=cache_dir)
    result = run_experiment(CFG, out, progress=False, generator=llm, optimizer=llm)
    return out, result, llm


def test_smoke_run_writes_a_complete_run_directory(smoke_run):
    out, result, llm = smoke_run
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for f in ("config.json", "splits.json", "steps.jsonl", "checkpoint.json", "experience.md",
              "final.json", "experience/step_000.md", "experience/step_001.md",
              "experience/step_002.md", "eval/dev.jsonl", "eval/test.jsonl", "figures/summary.png"):
        assert f in names, f"{f} missing from the run directory"
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".tmp"))]
    steps = [json.loads(x) for x in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [0, 1]
    for s in steps:
        assert len(s["trials"]) == CFG.batch_size
        assert len(s["candidates"]) == CFG.batch_size * CFG.num_candidates
        assert len(s["validation_ids"]) == CFG.val_size
        assert not set(s["validation_ids"]) & set(s["batch_ids"])
        opt = s["usage"]["optimizer"]
        assert opt["calls"] + opt["cache_hits"] == 4
        # tokens the parser kept (the rules, in the model's tokenizer) are a part of those generated
        valid = [c for c in s["candidates"] if c["experience"]]
        if opt["calls"] and valid:
            assert 0 < opt["completion_tokens_kept"] <= opt["completion_tokens"]
            assert opt["completion_tokens_kept"] >= min(
                llm.count_tokens("\n".join(f"{i}. {r}" for i, r in enumerate(c["experience"], 1)))
                for c in valid)
        for c in s["candidates"]:
            assert c["raw"].startswith("1."), "the optimizer reply is pre-filled with '1.'"
            assert (c["experience"] is None) == (c["failure"] is not None)
    final = json.loads((out / "final.json").read_text())
    for split, n in (("dev", CFG.dev_size), ("test", CFG.test_size)):
        comp = final["comparisons"][split]
        assert comp["with"]["score"]["n"] == n
        assert comp["with"]["score"]["low"] <= comp["with"]["score"]["mean"] <= comp["with"]["score"]["high"]
    assert final["models"]["generator"]["model"] == "SmolLM2-135M-Instruct"
    assert len(final["curve"]) == CFG.steps + 1
    cfg = json.loads((out / "config.json").read_text())
    assert SEOConfig.from_dict(cfg) == CFG
    run, fin = load_run(out)
    assert run.experience == result.run.experience and fin == final


def test_resume_after_stop_gives_the_same_result(smoke_run, tmp_path, cache_dir):
    out, result, llm = smoke_run

    class Stop(Exception):
        pass

    def stop_after_first(rec):
        raise Stop

    with pytest.raises(Stop):
        train(CFG, run_dir=tmp_path / "r", generator=llm, optimizer=llm, progress=False,
              on_step=stop_after_first)
    partial, _ = load_run(tmp_path / "r")
    assert len(partial.steps) == 1
    before = llm.usage.total().calls
    resumed = run_experiment(CFG, tmp_path / "r", progress=False, generator=llm, optimizer=llm)
    assert llm.usage.total().calls == before, "with a warm cache the resume makes no model call"
    assert resumed.run.experience == result.run.experience
    strip = lambda s: {k: v for k, v in s.to_dict().items() if k not in ("seconds", "usage")}
    assert [strip(s) for s in resumed.run.steps] == [strip(s) for s in result.run.steps]
    assert resumed.final["comparisons"] == result.final["comparisons"]


def _fresh_call_cache(root):
    """A new cache folder that shares the converted model checkpoints with the
    session's cache (only the answers start empty)."""
    root.mkdir(parents=True, exist_ok=True)
    models = Path(os.environ["SEO_LITE_CACHE"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    if not (root / "models").exists():
        (root / "models").symlink_to(models, target_is_directory=True)
    return str(root)


def _cli(*args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "seo_lite.cli", *args], capture_output=True,
                          text=True, env=env, timeout=900)


def test_cli_run_prints_before_after_with_cis(smoke_run, tmp_path, cache_dir):
    out = tmp_path / "cli-run"
    p = _cli("run", "--task", "trec", "--answer-mode", "score", "--preset", "smoke", "--seed", "3",
             "--out", str(out), "--quiet",
             env_extra={"SEO_LITE_CACHE": _fresh_call_cache(cache_dir.parent / "cli")})
    assert p.returncode == 0, p.stderr
    assert "without E" in p.stdout and "with E" in p.stdout and "difference (paired)" in p.stdout
    assert "figure:" in p.stdout and (out / "figures" / "summary.png").is_file()
    rep = _cli("report", str(out), "--no-figure")
    assert rep.returncode == 0 and "Learned experience" in rep.stdout
    ev = _cli("eval", "--task", "trec", "--answer-mode", "score", "--run", str(out), "--size", "5",
              env_extra={"SEO_LITE_CACHE": _fresh_call_cache(cache_dir.parent / "cli")})
    assert ev.returncode == 0, ev.stderr
    assert "with E:" in ev.stdout and "difference:" in ev.stdout


@pytest.mark.parametrize("args,needle", [
    (["run", "--task", "no-such-task", "--preset", "smoke"], "unknown task"),
    (["run", "--task", "trec", "--preset", "smoke", "--generator", "gpt9"], "valid forms"),
    (["run", "--task", "trec", "--preset", "smoke", "--max-rules", "0"], "max_rules"),
    (["run", "--task", "trec", "--preset", "smoke", "--set", "nonsense=1"], "unknown config key"),
    (["run", "--task", "hotpotqa", "--preset", "smoke", "--answer-mode", "score"], "score"),
])
def test_cli_errors_are_one_clear_line(args, needle, tmp_path):
    p = _cli(*args, "--out", str(tmp_path / "x"))
    assert p.returncode == 2, p.stdout + p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr


def test_cli_refuses_a_run_dir_from_another_config(smoke_run, tmp_path):
    out, _, _ = smoke_run
    p = _cli("run", "--task", "trec", "--answer-mode", "score", "--preset", "smoke", "--seed", "4",
             "--out", str(out), "--quiet")
    assert p.returncode == 2 and "different config" in p.stderr and "seed" in p.stderr
