"""Label ranking over an OpenAI-compatible completions server, against a real socket.

The server (``tests/support/vllm_server.py``) answers ``/v1/completions`` in
vLLM's shape with the embedded model's true log-probs, so ranking over HTTP
must give what ranking in-process gives: the same labels, the same numbers
(to 1e-4), the same SEO decisions.
"""
from __future__ import annotations

import pytest

from seo_lite.llm import CallCache, LLMError, LoglikelihoodRequest, make_llm
from seo_lite.llm.base import ContextWindowError
from seo_lite.llm.embedded import embedded_gguf_path
from seo_lite.llm.hf_loading import convert_gguf
from seo_lite.machinery.data import load_examples
from seo_lite.tasks import get_task
from seo_lite.tasks.base import Example
from tests.support.openai_server import serve
from tests.support.vllm_server import serve_vllm


@pytest.fixture(autouse=True)
def _local_only(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def tokenizer_dir() -> str:
    """The embedded model's own tokenizer, from its converted checkpoint (offline)."""
    return str(convert_gguf(embedded_gguf_path(), progress=False)[0])


def over_http(server, tokenizer_dir, **options):
    options.setdefault("cache", None)
    return make_llm("openai:served-model", base_url=server.base_url, tokenizer=tokenizer_dir,
                    **options)


@pytest.mark.slow
def test_100_sst2_reviews_rank_the_same_over_http_as_in_process(embedded, tokenizer_dir):
    task = get_task("sst2", answer_mode="rank")
    examples = load_examples(task, limit=100)
    reqs = task.requests(examples)
    local = embedded.loglikelihood(reqs)
    with serve_vllm(embedded) as s:
        remote = over_http(s, tokenizer_dir, concurrency=4).loglikelihood(reqs)
        bodies = s.bodies
    assert [r.best for r in remote] == [r.best for r in local]
    worst = max(abs(a - b) for r, l in zip(remote, local) for a, b in zip(r.logprobs, l.logprobs))
    assert worst < 1e-4, worst
    assert [r.token_counts for r in remote] == [l.token_counts for l in local]
    assert [r.prompt_tokens for r in remote] == [l.prompt_tokens for l in local]
    # one probe, then one request per review carrying both labels as token ids
    assert len(bodies) == 1 + len(examples)
    for b in bodies[1:]:
        assert (b["echo"], b["logprobs"], b["max_tokens"], b["temperature"]) == (True, 1, 1, 0)
        assert len(b["prompt"]) == 2 and all(isinstance(t, int) for t in b["prompt"][0])
        ctx = len(b["prompt"][0]) - 1                        # both labels are one token
        assert b["prompt"][0][:ctx] == b["prompt"][1][:ctx]


def test_ranking_goes_through_the_call_cache(embedded, tokenizer_dir, tmp_path):
    req = LoglikelihoodRequest([{"role": "user", "content": "Review: a joy. Sentiment?"}],
                               ("negative", "positive", "very positive"))
    with serve_vllm(embedded) as s:
        llm = over_http(s, tokenizer_dir, cache=CallCache(tmp_path))
        first = llm.loglikelihood(req)
        n = s.count
        again = llm.loglikelihood(req)
    assert not first.cached and again.cached and s.count == n
    assert again.logprobs == first.logprobs and first.token_counts[2] > 1
    assert abs(first.logprobs[2] - embedded.loglikelihood(req).logprobs[2]) < 1e-4


@pytest.mark.parametrize("kind", ["no prompt log-probs", "chat only"])
def test_a_server_without_prompt_logprobs_is_refused_in_one_line(embedded, tokenizer_dir, kind):
    req = LoglikelihoodRequest([{"role": "user", "content": "Is this good?"}], ("no", "yes"))
    ctx = (serve_vllm(embedded, echo_support=False) if kind == "no prompt log-probs"
           else serve(embedded))
    with ctx as s:
        with pytest.raises(LLMError) as e:
            over_http(s, tokenizer_dir).loglikelihood(req)
        # the probe and nothing after it (a 404 for an unknown route is not counted)
        assert s.count == (1 if kind == "no prompt log-probs" else 0)
    msg = str(e.value)
    assert "\n" not in msg and "cannot rank labels" in msg and "echo=true" in msg
    assert ("log-probs for a prompt of" in msg) if kind == "no prompt log-probs" else ("404" in msg)


def test_ranking_without_a_tokenizer_says_which_option_to_set(embedded):
    with serve_vllm(embedded) as s:
        llm = make_llm("openai:served-model", base_url=s.base_url, cache=None)
        with pytest.raises(LLMError, match="tokenizer=<Hub id or local folder>"):
            get_task("sst2", answer_mode="rank").predict(llm, [Example("a", "fine", ("positive",))])
        assert s.count == 0
    with pytest.raises(LLMError, match="could not load tokenizer"):
        make_llm("openai:m", base_url="http://127.0.0.1:9/v1", tokenizer="/no/such/folder",
                 cache=None).tokenizer


def test_an_over_long_review_is_refused_before_sending(embedded, tokenizer_dir):
    task = get_task("sst2", answer_mode="rank")
    long = Example("sst2_long", "a film of rare beauty " * 200, ("positive",))
    short = Example("sst2_short", "a film of rare beauty", ("positive",))
    with serve_vllm(embedded, max_model_len=512) as s:
        with pytest.raises(ContextWindowError) as e:      # our check: nothing is sent
            task.predict(over_http(s, tokenizer_dir, context_window=512), [short, long])
        assert s.count == 0
        msg = str(e.value)
        assert "'sst2_long'" in msg and "window is 512" in msg and "max_input_chars=" in msg
        assert "\n" not in msg
        with pytest.raises(LLMError) as e:                # no context_window: the server's 400
            task.predict(over_http(s, tokenizer_dir), [long])
    msg = str(e.value)
    assert "HTTP 400" in msg and "longer than the model's context window" in msg
    assert "max_input_chars" in msg and "\n" not in msg


@pytest.mark.slow
def test_smoke_run_through_the_server_makes_the_in_process_decisions(embedded, tokenizer_dir,
                                                                     tmp_path):
    """The generator over HTTP, the optimizer in-process (one cache, so its
    sampled rules are the same whenever its prompts are): every trial, score
    and decision of the run must be the in-process run's."""
    from seo_lite.machinery.training import train
    from seo_lite.method.config import SEOConfig

    config = SEOConfig.preset("smoke", task="sst2", answer_mode="rank", seed=1)
    optimizer = make_llm("embedded", cache=CallCache(tmp_path))
    local = train(config, generator=embedded, optimizer=optimizer, progress=False)
    with serve_vllm(embedded) as s:
        remote = train(config, generator=over_http(s, tokenizer_dir, concurrency=2),
                       optimizer=optimizer, progress=False)
        assert s.count > 1
    for a, b in zip(local.steps, remote.steps, strict=True):
        assert a.decision.accepted == b.decision.accepted
        assert a.decision.chosen == b.decision.chosen
        assert a.experience_after.rules == b.experience_after.rules
        assert [t["effect"] for t in a.trials] == [t["effect"] for t in b.trials]
        assert a.current_scores == b.current_scores
        assert [c.val_scores for c in a.candidates] == [c.val_scores for c in b.candidates]
        assert [c.raw for c in a.candidates] == [c.raw for c in b.candidates]
