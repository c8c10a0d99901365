"""The LLM layer with the real embedded model: generation, log-likelihoods, cache, 4-bit, errors."""
from __future__ import annotations

import json
import os
import multiprocessing as mp
from pathlib import Path

import pytest

from seo_lite.llm import (CacheError, CallCache, GenParams, LLMError, Request, LoglikelihoodRequest,
                          make_llm)
from seo_lite.llm.embedded import EmbeddedLLM

PROMPTS = ["What is the capital of France?", "Name a primary color.", "What is 2 + 2?",
           "Who wrote Hamlet?", "Give one word for a large body of salt water."]


def _req(q, **p):
    return Request([{"role": "user", "content": q}], GenParams(**{"max_new_tokens": 16, **p}))


def test_embedded_generates_for_a_batch(embedded):
    out = embedded.generate([_req(q) for q in PROMPTS])
    assert len(out) == len(PROMPTS)
    for c in out:
        assert c.text.strip(), "every prompt gets a non-empty answer"
        assert 0 < c.completion_tokens <= 16 and c.prompt_tokens > 5
        assert c.finish_reason in ("stop", "length") and not c.cached
    assert "paris" in out[0].text.lower()
    assert "4" in out[2].text or "four" in out[2].text.lower()


def test_batched_generation_matches_one_at_a_time(embedded):
    reqs = [_req(q, max_new_tokens=12) for q in PROMPTS]
    batched = [c.text for c in embedded.generate(reqs)]
    single = [embedded.generate(r).text for r in reqs]
    assert batched == single


def test_label_loglikelihoods_with_shared_prompt_pass(embedded):
    r = LoglikelihoodRequest([{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                     ["Paris", "Banana", "The city of Lyon"])
    shared = embedded.loglikelihood(r)
    full = embedded.loglikelihood_unshared(r)
    assert shared.token_counts == full.token_counts and shared.token_counts[2] > 1
    assert shared.best == full.best == 0, "the model prefers the right answer"
    for a, b in zip(shared.logprobs, full.logprobs):
        assert a < 0 and abs(a - b) < 1e-3


def test_same_request_twice_is_a_cache_hit(tmp_path, monkeypatch):
    llm = EmbeddedLLM(cache=tmp_path / "c")
    r = _req("Name a fruit.")
    first = llm.generate(r)
    assert not first.cached and llm.usage.total().calls == 1

    def no_model(*a, **k):
        raise AssertionError("the model was called on a cache hit")

    monkeypatch.setattr(llm, "_generate", no_model)
    again = llm.generate(r)
    assert again.cached and again.text == first.text
    assert llm.usage.total().calls == 1 and llm.usage.total().cache_hits == 1
    # a second process-level object on the same folder sees the entry too
    other = EmbeddedLLM(cache=tmp_path / "c")
    monkeypatch.setattr(other, "_generate", no_model)
    assert other.generate(r).text == first.text


def test_sample_indices_give_independent_cached_samples(tmp_path):
    llm = EmbeddedLLM(cache=tmp_path / "c")
    k = 4
    reqs = [Request([{"role": "user", "content": "Invent a name for a cat."}],
                    GenParams(temperature=1.0, max_new_tokens=12), sample_index=i) for i in range(k)]
    texts = [c.text for c in llm.generate(reqs)]
    assert llm.usage.total().calls == k, "k sample indices are k model calls, not cache hits"
    assert len(set(texts)) >= 2, texts
    assert len(CallCache(tmp_path / "c")) == k
    again = llm.generate(list(reversed(reqs)))
    assert [c.text for c in reversed(again)] == texts and all(c.cached for c in again)
    # a fresh model without cache samples the same texts (seeded per request, any batch order)
    fresh = EmbeddedLLM(cache=None)
    assert [c.text for c in fresh.generate(reqs[::-1])][::-1] == texts


def test_greedy_ignores_sample_index_in_the_key(tmp_path):
    llm = EmbeddedLLM(cache=tmp_path / "c")
    reqs = [Request("Say hello.", GenParams(max_new_tokens=6), sample_index=i) for i in range(3)]
    out = llm.generate(reqs)
    assert llm.usage.total().calls == 1, "greedy answers do not depend on the sample index"
    assert len({c.text for c in out}) == 1


def test_4bit_bitsandbytes_load_generates():
    pytest.importorskip("bitsandbytes")
    llm = make_llm("embedded", load_in_4bit=True, cache=None)
    ident = llm.identity()
    assert ident["quantization"] == "4bit-nf4"
    assert type(llm.model.model.layers[0].mlp.down_proj).__name__ == "Linear4bit"
    text = llm.generate(_req("What is the capital of France?", max_new_tokens=10)).text
    assert text.strip()
    # the 4-bit model is a different model for the cache
    assert ident != make_llm("embedded", cache=None).identity()


def test_identity_and_key_hold_no_path_or_secret(embedded):
    ident = embedded.identity()
    assert ident["model"] == "SmolLM2-135M-Instruct" and len(ident["gguf_sha256"]) == 64
    assert ident["device"] == "cpu" and ident["dtype"] == "float32"


@pytest.mark.parametrize("native", [True, False])
def test_cpu_dtype_auto_is_bfloat16_only_where_the_cpu_has_it(monkeypatch, native):
    import torch
    from seo_lite.llm.hf_loading import _resolve_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert _resolve_dtype(None, False) == torch.float32          # the documented numbers' dtype
    assert _resolve_dtype("auto", False) == (torch.bfloat16 if native else torch.float32)
    ident = make_llm("embedded", dtype="auto", cache=None).identity()
    assert ident["dtype"] == ("bfloat16" if native else "float32")   # so the cache keys differ


@pytest.mark.parametrize("spec,needle", [
    ("gpt-4", "valid forms"), ("hf:", "valid forms"), ("", "valid forms"),
    ("llama:7b", "valid forms"),
])
def test_unknown_spec_lists_valid_forms(spec, needle):
    with pytest.raises(LLMError, match=needle) as e:
        make_llm(spec)
    assert "embedded" in str(e.value) and "openai:<model>" in str(e.value)


def test_unknown_option_lists_valid_options():
    with pytest.raises(LLMError, match="valid options") as e:
        make_llm("embedded", load_in_3bit=True)
    assert "load_in_4bit" in str(e.value)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(LLMError, match="model file not found"):
        make_llm(f"hf:{tmp_path}/no-such-model.gguf", cache=None)
    with pytest.raises(LLMError, match="no config.json"):
        make_llm(f"hf:{tmp_path}", cache=None)


def test_unreadable_cache_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CacheError, match="cannot use cache folder") as e:
        CallCache(blocker / "cache")
    assert "SEO_LITE_CACHE" in str(e.value)


def test_corrupt_cache_entry_is_recomputed_and_counted(tmp_path):
    llm = EmbeddedLLM(cache=tmp_path / "c")
    r = _req("Name a planet.", max_new_tokens=8)
    text = llm.generate(r).text
    (entry,) = list((tmp_path / "c").glob("??/*.json"))
    entry.write_text('{"payload": {"trunc')
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = llm.generate(r)
    assert not again.cached and again.text == text
    assert llm.usage.total().cache_errors == 1 and llm.usage.total().calls == 2
    assert json.loads(entry.read_text())["value"]["text"] == text, "the entry was repaired"


def _writer(root, start, n, out):
    cache = CallCache(root)
    for i in range(start, start + n):
        payload = {"kind": "generate", "i": i}
        cache.put(CallCache.key_of(payload), payload, {"text": f"answer {i}"})
    out.put(start)


def test_two_processes_share_one_cache_without_corruption(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s, 300, q)) for s in (0, 150)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = CallCache(tmp_path)
    assert len(cache) == 450
    for i in range(450):
        payload = {"kind": "generate", "i": i}
        value, err = cache.get(CallCache.key_of(payload), payload)
        assert err is None and value == {"text": f"answer {i}"}
    assert not list(Path(tmp_path).rglob("*.tmp")), "no temporary file left behind"


def test_fully_cached_call_never_loads_the_model(tmp_path):
    r = _req("Name a river.", max_new_tokens=8)
    EmbeddedLLM(cache=tmp_path / "c").generate(r)
    warm = EmbeddedLLM(cache=tmp_path / "c")
    assert warm.generate(r).cached
    assert not warm.loaded, "a warm re-run needs no weights"


def test_a_killed_writers_temporary_file_is_swept_when_the_key_is_written(tmp_path):
    import subprocess
    import sys

    cache = CallCache(tmp_path / "c")
    key = CallCache.key_of({"kind": "generate", "x": 1})
    dest = cache.path(key)
    dest.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    from seo_lite.llm.cache import HOST

    orphan = dest.parent / f".{dest.name}.{HOST}.{dead}.abc123.tmp"          # its writer is gone
    busy = dest.parent / f".{dest.name}.{HOST}.{os.getppid()}.def456.tmp"    # its writer still runs
    orphan.write_text('{"payload": {"kind"')
    busy.write_text('{"payl')
    cache.put(key, {"kind": "generate", "x": 1}, {"text": "a"})
    assert not orphan.exists() and busy.exists()
    assert cache.get(key, {"kind": "generate", "x": 1}) == ({"text": "a"}, None)


def test_progress_off_a_terminal_is_occasional_plain_lines(monkeypatch):
    import io

    from seo_lite.llm.progress import LineProgress, progress_style, reported, reporter

    monkeypatch.delenv("SEO_LITE_PROGRESS", raising=False)
    assert progress_style(io.StringIO()) == "lines"           # a redirected stream
    out = io.StringIO()
    bar = LineProgress(100, "D_t", stream=out)
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 11 and "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[-1].startswith("D_t: 100/100 (100%)")
    monkeypatch.setenv("SEO_LITE_PROGRESS", "off")
    assert reporter(2, "x") is None
    assert list(reported(iter([(0, "a"), (1, "b")]), 2, "x", "generate")) == [(0, "a"), (1, "b")]
