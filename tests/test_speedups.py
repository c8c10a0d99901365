"""Every speed-up keeps results identical (the benchmarks in bench/ measure the speed).

* batched generation = one prompt at a time (greedy and seeded sampling,
  rows leaving the batch when done),
  also when a batch shares an experience prefix computed once;
* prefix-shared batched label log-likelihoods, suffixes in length chunks =
  one full forward per label, and the shared prefix is counted as computed once;
* stopping the optimizer when its list is over = the same parsed experience
  as generating to the end;
* reusing calls across a run (cache, de-duplication) = no reuse at all: the
  same decisions, step by step, with the real embedded model.
"""
from __future__ import annotations

import pytest
import torch

from seo_lite import Experience, SEOConfig
from seo_lite.machinery.data import load_examples
from seo_lite.llm import GenParams, Request, make_llm
from seo_lite.llm.stopping import cut_reply, list_end


def cut_at_list_end(text, max_rules):
    return cut_reply(text, GenParams(stop_list_after=max_rules))
from seo_lite.machinery.training import train
from seo_lite.tasks import get_task


def test_batched_generation_equals_sequential_on_real_prompts(embedded):
    task = get_task("hotpotqa_closedbook")
    reqs = [Request(task.messages(ex), GenParams(max_new_tokens=20)) for ex in load_examples(task)[:10]]
    reqs += [Request("Name a color.", GenParams(temperature=0.9, max_new_tokens=10), sample_index=i)
             for i in range(4)]
    old = embedded.batch_size
    try:
        embedded.batch_size = 16
        batched = [c.text for c in embedded.generate(reqs)]
        embedded.batch_size = 1
        single = [c.text for c in embedded.generate(reqs)]
    finally:
        embedded.batch_size = old
    assert batched == single


def test_rows_leaving_the_batch_early_change_nothing(embedded):
    """Finished rows leave the batch (``HFLLM._generate_batch``): a batch
    mixing short and long replies, greedy and sampled rows, a stop string and
    a list stop gives, row for row, the text, token count and finish reason of
    one prompt at a time."""
    rules = ("Write at most 3 short rules for classifying questions by answer type "
             "(person, place, number). Reply with a numbered list of rules only.")
    questions = ["What is 2+2?", "Write a short poem about the sea.", "Name a primary color.",
                 "List three fruits, one per line."]
    reqs = [Request(q, GenParams(max_new_tokens=20)) for q in questions]
    reqs += [Request(q, GenParams(max_new_tokens=20, stop=("\n",))) for q in questions]
    reqs += [Request(q, GenParams(temperature=0.9, top_p=0.9, max_new_tokens=20), sample_index=i)
             for i, q in enumerate(questions)]
    reqs += [Request(rules, GenParams(temperature=0.8 * (i > 0), top_p=0.95, max_new_tokens=40,
                                      stop_list_after=2), sample_index=i, prefix="1.")
             for i in range(3)]
    old = embedded.batch_size
    try:
        embedded.batch_size = 8
        batched = embedded.generate(reqs)
        embedded.batch_size = 1
        single = embedded.generate(reqs)
    finally:
        embedded.batch_size = old
    fields = lambda c: (c.text, c.completion_tokens, c.finish_reason)
    assert [fields(c) for c in batched] == [fields(c) for c in single]
    # the batches really had rows finishing at different steps
    assert {"stop", "length"} <= {c.finish_reason for c in batched[:4]}
    assert len({c.completion_tokens for c in batched}) >= 4


def test_prefix_shared_scoring_equals_full_forward_per_label(embedded):
    task = get_task("ag_news", answer_mode="rank")
    examples = load_examples(task)[:6]
    reqs = []
    for exp in (None, Experience(("Sports news mentions teams and games.",)),
                Experience(("Business news mentions companies.", "World news mentions countries."))):
        reqs += task.requests(examples, exp)
    fast = embedded.loglikelihood(reqs)
    with torch.inference_mode():
        slow = [embedded.loglikelihood_unshared(r) for r in reqs]
    for f, s in zip(fast, slow):
        assert f.best == s.best and f.token_counts == s.token_counts
        assert max(abs(a - b) for a, b in zip(f.logprobs, s.logprobs)) < 1e-4
    # the articles' lengths differ enough that the suffixes ran in several length chunks
    from seo_lite.llm.decode import _common_prefix_all, _length_chunks
    prompts = [embedded._loglikelihood_inputs(r)[0] for r in reqs[:len(examples)]]
    suffixes = [len(x) - _common_prefix_all(prompts) for x in prompts]
    assert len(_length_chunks(suffixes)) > 1, suffixes


def test_prefix_shared_generation_equals_one_at_a_time(embedded):
    """Two experiences over three examples each: every batch shares an
    instruction + experience prefix that runs once; the texts are those of
    one prompt at a time, and fewer prompt tokens are computed than requested."""
    task = get_task("trec")
    by_length = sorted(load_examples(task)[:60], key=lambda ex: len(ex.input))
    examples = [by_length[0], by_length[1], by_length[-1]]     # the prompt pass runs in chunks
    reqs = [Request(task.messages(ex, exp), GenParams(max_new_tokens=12))
            for exp in (Experience(("Questions starting with 'Who' ask for a human.",)),
                        Experience(("Numbers answer 'how many' questions.",
                                    "Places answer 'where' questions.")))
            for ex in examples]
    old = embedded.batch_size
    try:
        embedded.batch_size = 1
        single = embedded.generate(reqs)
        # 3: one experience per batch; 6: both in one batch, each prefix run once
        for size in (3, 6):
            embedded.batch_size = size
            batched = embedded.generate(reqs)
            assert [c.text for c in batched] == [c.text for c in single], size
            assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in single]
            requested = sum(c.prompt_tokens for c in batched)
            computed = sum(c.prompt_tokens_computed for c in batched)
            assert computed < 0.6 * requested, (size, computed, requested)
    finally:
        embedded.batch_size = old
    assert sum(c.prompt_tokens_computed for c in single) == requested


def test_prompts_run_in_chunks_of_similar_length():
    """The prompt pass groups rows whose padded length wastes little, so a batch
    of short and long prompts does not pad every short one to the longest."""
    from seo_lite.llm.decode import _length_chunks

    chunks = _length_chunks([10, 40, 11, 41, 10, 39])
    assert sorted(sorted(c) for c in chunks) == [[0, 2, 4], [1, 3, 5]]
    assert _length_chunks([7, 7, 7]) == [[0, 1, 2]]
    assert sorted(i for c in _length_chunks(list(range(1, 33))) for i in c) == list(range(32))
    for c in _length_chunks([5, 9, 13, 30, 31, 60]):
        lengths = [[5, 9, 13, 30, 31, 60][i] for i in c]
        assert len(c) * max(lengths) <= 1.3 * sum(lengths) or len(c) == 1


def test_shared_loglikelihood_counts_each_prefix_once(embedded):
    task = get_task("trec", answer_mode="rank")
    examples = load_examples(task)[:5]
    exps = [Experience(("Questions starting with 'Who' ask for a human.",)),
            Experience(("Numbers answer 'how many' questions.", "Places answer 'where' questions."))]
    reqs = [r for e in exps for r in task.requests(examples, e)]
    out = embedded.loglikelihood(reqs)
    requested = sum(x.prompt_tokens for x in out)
    computed = sum(x.prompt_tokens_computed for x in out)
    assert computed < 0.5 * requested, (computed, requested)
    with torch.inference_mode():
        slow = [embedded.loglikelihood_unshared(r) for r in reqs]
    assert [f.best for f in out] == [s.best for s in slow]
    assert max(abs(a - b) for f, s in zip(out, slow) for a, b in zip(f.logprobs, s.logprobs)) < 1e-4


LISTS = [
    ("1. Be brief.\n2. Name the type.\n3. Check the verb.\n\nThese rules help.", 5),
    ("1. Be brief.\n2. Name the type.\n3. Check the verb.\n4. Look at wh-words.", 2),
    ("1. Be brief.\n\n2. Name the type.\n   It is one word.\n3. Check the verb.", 3),
    ("1. Be brief.\n1. Be brief.\n2. Name the type.\n3. Check the verb.", 2),
    ("1. Be brief.\n2. 42\n3. Name the type.\n4. Check the verb.", 2),
    ("Here are rules:\n- **Short**: be brief.\n- Name the type.\nDone.", 4),
]


@pytest.mark.parametrize("text,max_rules", LISTS)
def test_cutting_at_the_end_of_the_list_keeps_the_parsed_experience(text, max_rules):
    cut, was_cut = cut_at_list_end(text, max_rules)
    assert Experience.parse(cut, max_rules).experience == Experience.parse(text, max_rules).experience
    # as text arrives (then ends), the list is seen to be over where the cut is made
    ends = [list_end(text[:i], max_rules) for i in range(len(text) + 1)] + [list_end(text + "\n", max_rules)]
    first = next((e for e in ends if e is not None), None)
    assert (first is not None) == was_cut and (first is None or text[:first].rstrip() == cut)


def test_optimizer_stops_at_the_end_of_its_list_with_the_same_rules(embedded):
    """Real model, sampled like the optimizer: with stop_list_after the reply is
    at most as long, and wherever the full reply's list was over before its
    token budget, the parsed rules are the same."""
    prompt = ("Write at most 3 short rules for classifying questions by answer type "
              "(person, place, number). Reply with a numbered list of rules only.")
    make = lambda stop, i: Request(prompt, GenParams(temperature=0.8, top_p=0.95, max_new_tokens=90,
                                                     seed=3, stop_list_after=stop),
                                   sample_index=i, prefix="1.")
    new = embedded.generate([make(3, i) for i in range(4)])
    old = embedded.generate([make(0, i) for i in range(4)])
    compared = 0
    for n, o in zip(new, old):
        assert n.completion_tokens <= o.completion_tokens
        assert o.text.startswith(n.text)
        if cut_at_list_end(o.text, 3)[1] or o.finish_reason == "stop":
            compared += 1
            assert Experience.parse(n.text, 3).experience == Experience.parse(o.text, 3).experience
    assert compared >= 1


@pytest.mark.slow
def test_call_reuse_keeps_every_decision(tmp_path):
    cfg = SEOConfig.preset("smoke", task="trec", answer_mode="rank", steps=3, seed=11)
    reused = make_llm("embedded", cache=tmp_path / "cache")
    plain = make_llm("embedded", cache=None)
    a = train(cfg, generator=reused, optimizer=reused, progress=False)
    b = train(cfg, generator=plain, optimizer=plain, progress=False)
    strip = lambda s: {k: v for k, v in s.to_dict().items() if k not in ("seconds", "usage")}
    # Texts, scores, validation sets and decisions are identical. Recorded label
    # log-probabilities may differ in the last printed digit: a reused call leaves
    # the batch, and a different batch (padding) moves the float by ~1e-5.
    assert _same([strip(s) for s in a.steps], [strip(s) for s in b.steps])
    assert reused.usage.total().cache_hits > 0, "the run reused answers across calls"
    assert reused.usage.total().calls < plain.usage.total().calls


def _same(x, y, path="steps") -> bool:
    """Deep equality; floats under ``label_logprobs`` may differ by 2e-3 (rounding)."""
    if isinstance(x, dict) and isinstance(y, dict):
        assert x.keys() == y.keys(), path
        return all(_same(x[k], y[k], f"{path}.{k}") for k in x)
    if isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y), path
        return all(_same(p, q, f"{path}[{i}]") for i, (p, q) in enumerate(zip(x, y)))
    if "label_logprobs" in path and isinstance(x, float) and isinstance(y, float):
        assert abs(x - y) < 2e-3, (path, x, y)
        return True
    assert x == y, (path, x, y)
    return True
