"""The context window, enforced before any compute (the real embedded model, 8,192 tokens).

An input longer than the window used to be accepted silently (a classification
file with ~18k-token rows ran for minutes on one step).  Now the model refuses
the call before its first forward pass with one line that names the example,
its length and the window, and gives the task option that cuts inputs.
"""
from __future__ import annotations

import pytest

from seo_lite.llm import GenParams, Request, make_llm
from seo_lite.llm.base import ContextWindowError
from seo_lite.machinery.build import make_task
from seo_lite.method.config import SEOConfig
from seo_lite.tasks import get_task
from seo_lite.tasks.base import Example, TaskError

# ~9,000 tokens: past SmolLM2's 8,192-token window
LONG = Example("review_long", "an astonishing, patient and humane film " * 1300, ("positive",))
SHORT = Example("review_short", "an astonishing film", ("positive",))


def test_fits_counts_the_prompt_and_what_follows_it():
    llm = make_llm("rulebank", cache=None)
    assert llm.fits(10 ** 6)                           # unknown window: nothing to refuse
    llm.context_window = 8192
    assert llm.fits(8000) and llm.fits(8000, reserve=192)
    assert not llm.fits(8000, reserve=193) and not llm.fits(8193)


def test_the_hf_window_comes_from_the_model_config(embedded):
    assert embedded.context_window == embedded.model.config.max_position_embeddings == 8192
    assert embedded.fits(8191, 1) and not embedded.fits(8191, 2)


@pytest.mark.parametrize("mode", ["rank", "generate"])
def test_an_over_long_example_is_one_line_before_any_compute(embedded, mode):
    task = get_task("sst2", answer_mode=mode)
    before = embedded.usage.total()
    with pytest.raises(ContextWindowError) as e:
        task.predict(embedded, [SHORT, LONG])
    msg = str(e.value)
    assert "\n" not in msg
    assert "'review_long'" in msg and "window is 8,192" in msg
    assert e.value.tokens > 8192 and f"{e.value.tokens:,} tokens" in msg
    assert "max_input_chars=" in msg and "--task-option" in msg
    assert e.value.reserve == (1 if mode == "rank" else task.gen_params.max_new_tokens)
    # nothing ran: not even the short example that came first
    after = embedded.usage.total()
    assert (after.calls, after.prompt_tokens) == (before.calls, before.prompt_tokens)


def test_the_suggested_max_input_chars_makes_the_example_fit(embedded):
    task = get_task("sst2", answer_mode="rank")
    with pytest.raises(ContextWindowError) as e:
        task.predict(embedded, [LONG])
    keep = int(str(e.value).split("max_input_chars=")[1].split(" ")[0])
    cut = get_task("sst2", answer_mode="rank", max_input_chars=keep)
    assert len(cut.fitted(LONG).input) <= keep < len(LONG.input)
    assert LONG.input.startswith(cut.fitted(LONG).input)            # cut from the end
    embedded.check_window(cut.requests([LONG]))                      # fits now: no error
    assert cut.fitted(SHORT) is SHORT                                # short inputs untouched


def test_the_truncation_option_is_off_by_default_and_recorded_in_the_config():
    assert get_task("sst2").max_input_chars is None
    config = SEOConfig.preset("smoke", task="sst2", task_options={"max_input_chars": 2000})
    assert make_task(config).max_input_chars == 2000
    assert config.to_dict()["task_options"] == {"max_input_chars": 2000}
    assert make_task(config).describe()["max_input_chars"] == 2000
    for bad in (0, -5, 2.5, "100", True):
        with pytest.raises(TaskError, match="max_input_chars"):
            get_task("sst2", max_input_chars=bad)


def test_the_optimizer_prompt_is_checked_too(embedded):
    req = Request([{"role": "user", "content": "rules " * 9000}], GenParams(max_new_tokens=8))
    with pytest.raises(ContextWindowError, match="the optimizer.s prompt is .* context window"):
        embedded.generate([req], role="optimizer")


def test_a_smaller_window_can_be_set_as_an_option():
    from seo_lite.llm import make_llm

    fresh = make_llm("embedded", cache=None)
    assert fresh.context_window == 8192 and not fresh.loaded    # read from the config alone
    llm = make_llm("embedded", cache=None, context_window=64)
    assert llm.context_window == 64 and not llm.loaded
    with pytest.raises(ContextWindowError, match="window is 64"):
        get_task("sst2", answer_mode="rank").predict(llm, [Example("x", "word " * 80, ("positive",))])
