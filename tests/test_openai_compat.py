"""The openai backend against a real HTTP server on 127.0.0.1.

Every test goes through the ``openai`` SDK and a socket: scripted answers,
injected faults (429, 500, cut and dropped connections, a hung request), the
call cache, per-sample seeds, bounded concurrency, key hygiene, and the
embedded model served behind the protocol.  No wall-clock assertions: overlap
is measured by the server (requests in flight at once).
"""
from __future__ import annotations

import threading
import time

import pytest

from seo_lite.llm import CallCache, GenParams, LLMError, Request, LoglikelihoodRequest, make_llm
from seo_lite.llm.openai_compat import SEED_MASK, OpenAICompatLLM, public_url
from tests.support.openai_server import serve

SECRET = "sk-test-SECRET123"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No developer key or base URL leaks into the tests; 127.0.0.1 never goes
    through a proxy."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ADMIN_KEY", "OPENAI_ORG_ID",
                "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def echo(messages, params):
    return f"echo: {messages[-1]['content']}"


def backend(server, **options) -> OpenAICompatLLM:
    options.setdefault("cache", None)
    return make_llm("openai:test-model", base_url=server.base_url, **options)


# -- generation ------------------------------------------------------------------

def test_texts_token_counts_and_order_under_concurrency():
    def responder(messages, params):
        i = int(messages[-1]["content"].split()[-1])
        time.sleep(0.02 * (6 - i))              # later requests finish first
        return {"text": f"answer {i}", "prompt_tokens": 10 + i, "completion_tokens": i + 1,
                "finish_reason": "length" if i == 5 else "stop"}

    reqs = [Request([{"role": "system", "content": "be brief"},
                     {"role": "user", "content": f"question {i}"}],
                    GenParams(max_new_tokens=7, stop=("\n",) if i % 2 else ()))
            for i in range(6)]
    with serve(responder) as s:
        llm = backend(s, concurrency=4)
        out = llm.generate(reqs, progress="asking")
        bodies = {b["messages"][-1]["content"]: b for b in s.bodies}
        assert s.count == 6
    assert [c.text for c in out] == [f"answer {i}" for i in range(6)]
    assert [c.prompt_tokens for c in out] == [10 + i for i in range(6)]
    assert [c.completion_tokens for c in out] == [i + 1 for i in range(6)]
    assert [c.finish_reason for c in out] == ["stop"] * 5 + ["length"]
    assert all(not c.cached and c.latency_s > 0 for c in out)
    b0, b1 = bodies["question 0"], bodies["question 1"]
    assert b0["model"] == "test-model" and b0["n"] == 1
    assert b0["messages"][0] == {"role": "system", "content": "be brief"}
    assert (b0["temperature"], b0["top_p"], b0["max_tokens"], b0["seed"]) == (0.0, 1.0, 7, 0)
    assert "stop" not in b0 and b1["stop"] == ["\n"]
    total = llm.usage.total()
    assert (total.calls, total.prompt_tokens, total.completion_tokens) == (6, 75, 21)


def test_missing_usage_counts_as_zero_and_loglikelihood_is_refused():
    with serve(lambda m, p: {"text": "hi", "prompt_tokens": 0, "completion_tokens": 0}) as s:
        c = backend(s).generate(Request("x"))
        assert (c.text, c.prompt_tokens, c.completion_tokens) == ("hi", 0, 0)
        with pytest.raises(LLMError, match="cannot compute log-likelihoods"):
            backend(s).loglikelihood(LoglikelihoodRequest("x", ("a", "b")))


# -- faults and retries ----------------------------------------------------------

def test_429_and_500_are_retried_through():
    with serve(echo, faults={1: "429", 2: "500"}) as s:
        c = backend(s, max_retries=3).generate(Request("hello"))
        assert c.text == "echo: hello"
        assert s.count == 3
        assert [r["fault"] for r in s.requests] == ["429", "500", None]
        # the SDK numbers its attempts; all three carry the same request
        assert [r["headers"].get("x-stainless-retry-count") for r in s.requests] == ["0", "1", "2"]
        assert len({str(r["body"]) for r in s.requests}) == 1


def test_503_cut_and_dropped_connections_are_retried_through():
    with serve(echo, faults={1: "cut", 2: "drop", 3: "503"}) as s:
        c = backend(s, max_retries=3).generate(Request("again"))
        assert c.text == "echo: again"
        assert s.count == 4
        assert [r["fault"] for r in s.requests] == ["cut", "drop", "503", None]


def test_a_hung_request_times_out_and_is_retried():
    with serve(echo, faults={1: "timeout"}, hang_s=5.0) as s:
        c = backend(s, timeout=0.5, max_retries=2).generate(Request("slow"))
        assert c.text == "echo: slow"
        assert s.count == 2


def test_timeouts_exhausted_raise_a_clear_error():
    with serve(echo, faults="timeout", hang_s=5.0) as s:
        with pytest.raises(LLMError) as e:
            backend(s, timeout=0.3, max_retries=1).generate(Request("slow"))
        assert s.base_url in str(e.value) and "timeout" in str(e.value)
        assert s.count == 2


def test_persistent_500_raises_naming_the_server_after_all_attempts():
    with serve(echo, faults={1: "persistent-500"}) as s:
        llm = backend(s, max_retries=2)
        with pytest.raises(LLMError) as e:
            llm.generate(Request("doomed"))
        msg = str(e.value)
        assert s.base_url in msg and "HTTP 500" in msg and "3 attempt" in msg
        assert s.count == 3                      # max_retries=2: 1 try + 2 retries
        s.set_faults(None)                       # the server recovers; so does the model
        assert llm.generate(Request("doomed")).text == "echo: doomed"


def test_damaged_json_body_is_retried_like_a_cut_connection():
    # the SDK does not retry a 200 whose JSON does not parse; the backend does
    with serve(echo, faults={1: "malformed", 2: "malformed"}) as s:
        assert backend(s, max_retries=2).generate(Request("x")).text == "echo: x"
        assert s.count == 3


def test_damaged_json_body_that_persists_is_a_clear_error():
    with serve(echo, faults="malformed") as s:
        with pytest.raises(LLMError, match="malformed") as e:
            backend(s, max_retries=1).generate(Request("x"))
        assert s.base_url in str(e.value) and "2 attempt(s)" in str(e.value)
        assert s.count == 2


def test_a_page_that_is_not_json_is_an_error_not_a_retry():
    with serve(echo, faults={1: "html"}) as s:
        with pytest.raises(LLMError, match="not a JSON chat completion") as e:
            backend(s).generate(Request("x"))
        assert s.base_url in str(e.value) and "Welcome to nginx" in str(e.value)
        assert s.count == 1


def test_wrong_key_is_a_401_not_retried_and_never_echoed():
    with serve(echo, api_key="the-right-key") as s:
        with pytest.raises(LLMError) as e:
            backend(s, api_key=SECRET).generate(Request("x"))
        msg = str(e.value)
        assert "401" in msg and s.base_url in msg and "OPENAI_API_KEY" in msg
        assert "SECRET123" not in msg           # the server echoed it; we do not
        assert e.value.__cause__ is None and e.value.__suppress_context__
        assert s.count == 1


def test_unreachable_server_is_a_clear_error():
    with serve(echo) as s:
        url = s.base_url
    with pytest.raises(LLMError, match="connection failed") as e:
        make_llm("openai:m", base_url=url, cache=None, max_retries=0).generate(Request("x"))
    assert url in str(e.value)


# -- cache and sampling ----------------------------------------------------------

def test_same_request_twice_is_a_cache_hit(tmp_path):
    with serve(echo) as s:
        llm = backend(s, cache=tmp_path)
        first = llm.generate(Request("cache me"))
        second = llm.generate(Request("cache me"))
        assert s.count == 1
    assert not first.cached and second.cached and second.text == first.text
    u = llm.usage.total()
    assert (u.calls, u.cache_hits) == (1, 1)


def test_sample_indices_get_distinct_seeds_and_cache_entries(tmp_path):
    k = 4
    params = GenParams(temperature=0.8, top_p=0.9, seed=7)
    reqs = [Request("tell a story", params, i) for i in range(k)]
    with serve(lambda m, p: f"story with seed {p['seed']}") as s:
        llm = backend(s, cache=tmp_path)
        out = llm.generate(reqs)
        seeds = [b["seed"] for b in s.bodies]
        assert s.count == k
        assert sorted(seeds) == sorted(r.sampling_seed() & SEED_MASK for r in reqs)
        assert len(set(seeds)) == k and all(0 <= x < 2 ** 31 for x in seeds)
        assert {b["temperature"] for b in s.bodies} == {0.8}
        assert len({c.text for c in out}) == k
        again = llm.generate(reqs)
        assert s.count == k
    assert all(c.cached for c in again) and [c.text for c in again] == [c.text for c in out]
    assert len(CallCache(tmp_path)) == k


# -- concurrency -----------------------------------------------------------------

def _slow(messages, params):
    time.sleep(0.2)
    return "done"


@pytest.mark.parametrize("concurrency", [1, 8])
def test_requests_overlap_only_up_to_concurrency(concurrency):
    with serve(_slow) as s:
        out = backend(s, concurrency=concurrency).generate(
            [Request(f"job {i}") for i in range(8)])
        assert [c.text for c in out] == ["done"] * 8
        assert s.count == 8
        if concurrency == 1:
            assert s.max_in_flight == 1
        else:
            assert s.max_in_flight > 1


# -- secrets and configuration ---------------------------------------------------

def test_api_key_never_in_identity_repr_or_cache(tmp_path):
    with serve(echo, api_key=SECRET) as s:
        llm = backend(s, api_key=SECRET, cache=tmp_path)
        assert llm.generate(Request("secret?")).text == "echo: secret?"
        assert all("authorization" not in {k.lower() for k in r["headers"]} for r in s.requests)
    for text in (str(llm.identity()), repr(llm), str(llm), repr(vars(llm)), llm.name):
        assert "SECRET123" not in text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files, "the answer should have been cached"
    for p in files:
        assert b"SECRET123" not in p.read_bytes(), p


def test_identity_hides_userinfo_and_query():
    assert public_url("https://user:pw@example.com:8443/v1/?token=abc#x") == "https://example.com:8443/v1"
    llm = OpenAICompatLLM("m", base_url="http://bob:hunter2@127.0.0.1:9/v1?key=zzz", cache=None)
    assert llm.identity() == {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
    assert "hunter2" not in repr(llm) and "zzz" not in repr(llm)


def test_no_key_and_no_base_url_is_a_clear_error():
    with pytest.raises(LLMError, match="OPENAI_API_KEY") as e:
        make_llm("openai:x", cache=None)
    assert "base_url" in str(e.value)


def test_local_server_needs_no_key_and_base_url_comes_from_env(monkeypatch):
    with serve(echo) as s:
        monkeypatch.setenv("OPENAI_BASE_URL", s.base_url)
        llm = make_llm("openai:test-model", cache=None)
        assert llm.identity()["base_url"] == s.base_url
        assert llm.generate(Request("hi")).text == "echo: hi"


def test_bad_options_are_refused():
    with pytest.raises(LLMError, match="concurrency"):
        OpenAICompatLLM("m", base_url="http://127.0.0.1:9/v1", concurrency=0, cache=None)
    with pytest.raises(LLMError, match="max_retries"):
        OpenAICompatLLM("m", base_url="http://127.0.0.1:9/v1", max_retries=-1, cache=None)
    with pytest.raises(LLMError, match="unknown option"):
        make_llm("openai:m", base_url="http://127.0.0.1:9/v1", retries=3)


# -- the test server itself ------------------------------------------------------

def test_server_lists_models_and_shuts_down_cleanly():
    import openai

    before = set(threading.enumerate())
    with serve(echo, model="served-model", faults={1: "timeout"}, hang_s=30.0) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list()] == ["served-model"]
        outcome: list = []

        def ask():
            try:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
                outcome.append("answered")
            except openai.APIConnectionError:
                outcome.append("cut off")

        hung = threading.Thread(target=ask)
        hung.start()
        while s.in_flight == 0:                 # the server is now holding a request
            time.sleep(0.01)
    hung.join(timeout=10)
    client.close()
    assert not hung.is_alive() and outcome == ["cut off"]    # shutdown did not wait 30 s
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


# -- the real embedded model behind the protocol ---------------------------------

@pytest.mark.slow
def test_embedded_model_served_over_http(embedded):
    with serve(embedded) as s:
        llm = make_llm("openai:smollm2", base_url=s.base_url, cache=None)
        out = llm.generate([Request("Name a colour.", GenParams(max_new_tokens=16)),
                            Request("Say hello.", GenParams(max_new_tokens=16))])
        assert s.count == 2
    for c in out:
        assert c.text.strip()
        assert 0 < c.completion_tokens <= 16 and c.prompt_tokens > 0
