"""The dry run (seo_lite.machinery.dryrun): counts what a run sends, before any model loads.

Decision logic against a scripted run (real SEO code, answers chosen by the
test, a real call cache): the dry run's model calls are what the run makes,
or an upper bound where candidates can repeat.  The dry run is the loop
itself: a change to the loop's code changes the estimate with it.  Token
counting against the real embedded model: prompt tokens equal its own usage
records when every prompt is known.  And the dry run itself never builds a model.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seo_lite import SEOConfig
from seo_lite.method.config import ConfigError
from seo_lite.machinery.dryrun import CHARS_PER_TOKEN, estimate_cost, parse_rates, token_counter
from seo_lite.lab.experiment import run_experiment
from seo_lite.llm.cache import CallCache
from tests.support.scripted import ScriptedLLM
from tests.test_seo_logic import GOOD, YesTask, splits

REPO = Path(__file__).resolve().parents[1]


def _scripted(tmp_path, distinct=True, cached=True):
    cache = CallCache(tmp_path / "calls") if cached else None
    gen = ScriptedLLM(lambda r: "yes" if GOOD in r.messages[-1]["content"] else "no",
                      name="gen", cache=cache)

    def reply(r):                     # a new rule per request: no duplicate candidates
        ex = r.messages[-1]["content"].split("Example:\n")[1].split("\n")[0]
        return f"1. {GOOD}\n2. about {ex} (sample {r.sample_index})" if distinct else f"1. {GOOD}"
    return gen, ScriptedLLM(reply, name="opt", cache=cache)


def _actual(final, part, role):
    return final["usage"][part].get(role, {}).get("calls", 0)


def _config(**kw):
    base = dict(task="yes", steps=1, batch_size=2, num_candidates=2, val_size=6, max_rules=3,
                train_size=20, dev_size=4, test_size=4, bootstrap=0)
    return SEOConfig(**{**base, **kw})


def _compare(tmp_path, config, distinct=True, cached=True):
    gen, opt = _scripted(tmp_path, distinct, cached)
    est = estimate_cost(config, task=YesTask(), splits=splits())
    final = run_experiment(config, tmp_path / "run", task=YesTask(), splits=splits(),
                           generator=gen, optimizer=opt, progress=False, figure=False).final
    phase = {p.name: p for p in est.phases}
    in_steps = sum(p.calls for p in est.phases if p.per_step is not None and p.role == "generator")
    in_eval = sum(p.calls for p in est.phases if p.per_step is None)
    return est, phase, final, in_steps, in_eval


def test_one_step_counts_are_exact(tmp_path):
    """T=1, every candidate new and the first accepted: nothing is left to chance."""
    config = _config()
    est, phase, final, in_steps, in_eval = _compare(tmp_path, config)
    n, k, d = config.batch_size, config.num_candidates, config.val_size
    assert phase["trials"].requests == 2 * n and phase["trials"].calls == n   # E_0 empty: with = without
    assert phase["optimizer"].calls == n * k
    assert phase["validation"].requests == (n * k + 1) * d
    assert final["accepted"] == 1
    assert _actual(final, "steps", "generator") == in_steps
    assert _actual(final, "steps", "optimizer") == phase["optimizer"].calls
    # dev and test with and without E_T; the curve's E_0 (= no E) and E_T are cache hits
    assert phase["dev curve"].requests == 2 * config.dev_size
    assert _actual(final, "evaluation", "generator") == in_eval == 2 * (config.dev_size + config.test_size)


def test_without_the_call_cache_only_identical_requests_in_one_call_are_shared(tmp_path,
                                                                                 monkeypatch):
    """SEO_LITE_CACHE=off: the dry run counts what a run without a cache makes, exactly
    (T=1, every candidate new: the curve's E_0 and E_T are computed again, not looked up)."""
    config = _config()
    cached = estimate_cost(config, task=YesTask(), splits=splits())
    monkeypatch.setenv("SEO_LITE_CACHE", "off")
    est, phase, final, in_steps, in_eval = _compare(tmp_path, config, cached=False)
    assert est.total("calls") > cached.total("calls")
    assert any("call cache is off" in a for a in est.assumptions)
    assert _actual(final, "steps", "generator") == in_steps
    assert _actual(final, "steps", "optimizer") == phase["optimizer"].calls
    assert _actual(final, "evaluation", "generator") == in_eval


@pytest.mark.parametrize("kw", [dict(steps=3), dict(steps=3, validation="fixed"),
                                dict(steps=2, validation="none", comparison_trials=False),
                                dict(steps=2, opt_temperature=0.0, initial_experience=("be brief",))])
def test_calls_are_an_upper_bound_on_longer_runs(tmp_path, kw):
    config = _config(**kw)
    est, phase, final, in_steps, in_eval = _compare(tmp_path, config, distinct=False)
    n, k, T = config.batch_size, config.num_candidates, config.steps
    assert phase["trials"].per_step == n * (2 if config.comparison_trials else 1)
    if config.validation == "none":
        assert "validation" not in phase
    greedy = config.opt_temperature == 0
    assert phase["optimizer"].calls == (n if greedy else n * k) * T      # greedy: k identical requests
    assert _actual(final, "steps", "optimizer") == phase["optimizer"].calls
    assert 0 < _actual(final, "steps", "generator") <= in_steps
    assert 0 < _actual(final, "evaluation", "generator") <= in_eval
    assert est.total("requests") >= est.total("calls")


def test_the_estimate_follows_a_change_to_the_loop(tmp_path, monkeypatch):
    """Trials that also ask with a third prompt (a loop change made in seo.py only):
    the estimate grows by those requests and still equals the changed run's calls."""
    from seo_lite.method import seo
    from seo_lite.method.experience import Experience

    config = _config()
    before = estimate_cost(config, task=YesTask(), splits=splits())
    original = seo.run_trials

    def run_trials(task, generator, batch, experience, **kw):
        task.predict(generator, batch, Experience(("Think twice.",)), progress=kw.get("progress"))
        return original(task, generator, batch, experience, **kw)
    monkeypatch.setattr(seo, "run_trials", run_trials)
    est, phase, final, in_steps, in_eval = _compare(tmp_path, config)
    n = config.batch_size
    assert phase["trials"].requests == {p.name: p for p in before.phases}["trials"].requests + n
    assert est.total("calls") == before.total("calls") + n
    assert _actual(final, "steps", "generator") == in_steps
    assert _actual(final, "evaluation", "generator") == in_eval


def test_tokens_and_the_two_estimates(tmp_path):
    config = _config(steps=2, task_options={})
    task = YesTask()
    est = estimate_cost(config, task=task, splits=splits(), price_per_mtok="1.5,6",
                        tokens_per_second="1000,25")
    gen_new = task.gen_params.max_new_tokens
    opt = next(p for p in est.phases if p.role == "optimizer")
    assert opt.new_tokens == opt.calls * config.opt_max_new_tokens
    for p in est.phases:
        if p.role == "generator":
            assert p.new_tokens == p.calls * gen_new and p.label_tokens == 0
    assert opt.estimated and any("rule bank" in a for a in est.assumptions)
    assert est.cost_usd == pytest.approx(est.prompt_tokens * 1.5e-6 + est.total("new_tokens") * 6e-6)
    assert est.seconds == pytest.approx(est.total("new_tokens") / 25 + est.prompt_tokens / 1000)
    text = str(est)
    assert "API cost: about $" in text and "wall time: about" in text and "estimate" in text
    only_gen = estimate_cost(config, task=task, splits=splits(), tokens_per_second=25)
    assert only_gen.seconds == pytest.approx(est.total("new_tokens") / 25)
    assert "prompt processing not counted" in str(only_gen)


@pytest.mark.parametrize("value", ["1", "a,b", "1,2,3", "-1,2"])
def test_bad_price_is_a_clear_error(value):
    with pytest.raises(ConfigError, match="price_per_mtok"):
        parse_rates(value, "price_per_mtok")
    with pytest.raises(ConfigError, match="tokens_per_second"):
        parse_rates("0", "tokens_per_second", optional_first=True)


def test_a_hub_model_not_in_the_local_cache_is_an_estimate_in_characters():
    c = token_counter("hf:meta-llama/Llama-2-7b-chat-hf", {"load_in_4bit": True})
    assert not c.exact and "characters / 4" in c.basis and "not in the local" in c.basis
    assert c.count_tokens("x" * (10 * CHARS_PER_TOKEN)) == 10
    api = token_counter("openai:gpt-4o-mini")
    assert not api.exact and "estimate" in api.basis
    assert token_counter("rulebank").prompt([{"role": "user", "content": "hi"}]) == 0


def _no_model_may_load(monkeypatch):
    import seo_lite.machinery.build
    import seo_lite.llm
    import seo_lite.llm.hf as hf

    def refuse(*a, **k):
        raise AssertionError("the dry run built or loaded a model")
    monkeypatch.setattr(seo_lite.llm, "make_llm", refuse)
    monkeypatch.setattr(seo_lite.machinery.build, "make_models", refuse)
    monkeypatch.setattr(hf, "load_model", refuse)
    monkeypatch.setattr(hf.HFLLM, "load", refuse)


def test_cli_dry_run_prints_the_estimate_and_loads_no_model(tmp_path, monkeypatch, capsys):
    from seo_lite.cli import main

    _no_model_may_load(monkeypatch)
    out = tmp_path / "run"
    rc = main(["run", "--preset", "smoke", "--answer-mode", "auto", "--dry-run", "--out", str(out),
               "--price-per-mtok", "0.15,0.6", "--tokens-per-second", "2000,20"])
    text = capsys.readouterr().out
    assert rc == 0 and not out.exists()
    assert "Dry run (no model loaded)" in text and "SmolLM2-135M-Instruct's tokenizer" in text
    for word in ("trials", "optimizer", "validation", "evaluate dev", "evaluate test",
                 "dev curve", "API cost", "wall time"):
        assert word in text
    rc = main(["run", "--preset", "smoke", "--dry-run", "--price-per-mtok", "cheap"])
    assert rc == 2 and "price_per_mtok takes two numbers" in capsys.readouterr().err


def test_prompt_tokens_equal_the_embedded_models_own_count(tmp_path):
    """With every prompt known (T=0, E_0 given), calls and prompt tokens are exact:
    the real model's usage says the same, contextual calibration included."""
    from seo_lite.llm import make_llm

    config = SEOConfig.preset("smoke", task="trec", answer_mode="rank", calibration="contextual",
                              steps=0, dev_size=3, test_size=3, bootstrap=0,
                              initial_experience=("Questions asking 'how many' want a number.",))
    est = estimate_cost(config)
    assert not any(p.estimated for p in est.phases) and "tokenizer" in est.counters["generator"]
    gen = make_llm("embedded", cache=tmp_path / "calls")
    final = run_experiment(config, tmp_path / "run", generator=gen, optimizer=gen,
                           progress=False, figure=False).final
    used = final["usage"]["evaluation"]["generator"]
    assert used["calls"] == est.total("calls")
    assert used["prompt_tokens"] == est.total("prompt_tokens")


@pytest.mark.slow
def test_run_seo_notebook_dry_run_stops_before_any_model(tmp_path):
    """DRY_RUN=True with a model that cannot be built: the notebook still finishes."""
    import papermill as pm

    out = tmp_path / "run"
    pm.execute_notebook(str(REPO / "notebooks" / "run_seo.ipynb"), str(tmp_path / "dry.ipynb"),
                        parameters={"PRESET": "smoke", "DRY_RUN": True, "OUT_DIR": str(out),
                                    "GENERATOR": str("hf:" + str(tmp_path / "no_such_model")),
                                    "PRICE_PER_MTOK": "1,2"},
                        kernel_name="python3", cwd=str(tmp_path), progress_bar=False, log_output=False)
    cells = json.loads((tmp_path / "dry.ipynb").read_text())["cells"]
    text = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                   for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Dry run (no model loaded)" in text and "API cost" in text and "not found" in text
    assert "DRY_RUN: stopped before any model loads" in text
    assert not out.exists()


def test_the_dry_run_names_the_examples_that_would_not_fit_the_window():
    """The run refuses a prompt past the generator's window (llm.base.check_window); the
    dry run says beforehand which examples that will be.  The window comes from the option
    here, from the model's config for local models."""
    config = SEOConfig(task="sst2", answer_mode="rank", steps=1, batch_size=2, num_candidates=1,
                       val_size=2, train_size=8, dev_size=2, test_size=4, bootstrap=0,
                       generator="hf:/nonexistent/model", optimizer="rulebank")
    base = estimate_cost(config)
    assert not any("context window" in a for a in base.assumptions)     # window unknown
    lengths = sorted(p.prompt_tokens // max(p.calls, 1) for p in base.phases if p.calls)
    window = lengths[len(lengths) // 2]                                # some fit, some do not
    tight = config.replace(generator_options={"context_window": window})
    note = next(a for a in estimate_cost(tight).assumptions if "context window" in a)
    n = int(note.split(" example")[0])
    assert 0 < n <= config.train_size + config.dev_size + config.test_size
    assert f"window of {window} tokens" in note and "max_input_chars" in note


def test_the_embedded_models_window_is_read_from_its_file():
    assert token_counter("embedded").context_window == 8192             # SmolLM2's config
    assert token_counter("openai:m", {"context_window": 4096}).context_window == 4096
    assert token_counter("openai:m").context_window is None
