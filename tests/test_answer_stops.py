"""Generation stops where the task's parser can read no more (``GenParams.answer_end``).

* each family's rule is exact: once it gives an offset, the parsed answer of
  the text cut there is that of the whole reply, and later text never moves
  the offset (checked on every prefix of tricky replies);
* the rule is part of the cache key (old entries are not reused);
* with the real embedded model, on the shipped samples of every family, the
  replies with the stop parse to the answers of the replies without it, and
  are their cut, in fewer tokens; the OpenAI-compatible backend cuts the
  text a server returns in the same place;
* the vectorized sampler draws what the per-row multinomial draws;
* the loop stop (``GenParams.stop_repeats``, a task option) cuts a reply that
  repeats one stretch N times after its first copy, wherever the loop is
  noticed, and touches no reply without such a loop.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from seo_lite.llm import GenParams, Request, make_llm
from seo_lite.llm.decode import _Sampler
from seo_lite.llm.stopping import cut_reply, repeat_end, reply_end
from seo_lite.machinery.data import load_examples
from seo_lite.tasks import get_task
from tests.support.openai_server import serve

TRANSLATIONS = [
    "Here is the translation:\n\nBonjour le monde.\n\nIn French, the translation is:\n\n\"Bonjour\"",
    "French:\nBonjour\nle monde.\nNote: a literal rendering.\nMore text",
    "```\nBonjour le monde.\n```\n\nExplanation follows.",
    "Translation:\nHere is the translation:\n\nBonjour.\n\nAnother paragraph.",
    "Sure! Here's the French translation:\r\n\r\n« Bonjour »\r\n\r\nI hope this helps.",
    "Note: this is hard.\nBonjour.\n\nNotes: none.",
    "Bonjour le monde, le monde, le monde",
    "   \n\nBonjour\n   \nle monde",
]
SHORT_ANSWERS = [
    "Answer: Paris\nExplanation: it is the capital.",
    "Let me think.\nAnswer:\n**Paris**\nMore.",
    "Paris\n\nAnswer: London\nAnswer: Rome",
    "The answer is Paris.\nAnswer: Rome\n",
    "Final answer: Yes, both are.\nSo yes.",
    "The capital of France is Paris. It is big.",
]
LABELS = [
    ("sst2", "Positive.\nThe review is negative."),
    ("sst2", "The sentiment is pos, I think"),
    ("sst2", "negatively positive, then negative"),
    ("ag_news", "World news. Sports."),
    ("ag_news", "This is about world affairs, not sports"),
    ("ag_news", "Sci/Tech: a new chip"),
    ("trec", "The question asks for a number (numeric)."),
]


def _generate_task(name):
    task = get_task(name)
    return get_task(name, answer_mode="generate") if task.answer_mode == "rank" else task


def _check_exact(task, reply: str) -> bool:
    """On every prefix of ``reply``: once the rule fires, the offset stays and the
    text cut there parses to the whole reply's answer.  True if it fired."""
    p = task.gen_params
    fired = None
    for i in range(len(reply) + 1):
        end = reply_end(reply[:i], p)
        if fired is not None:
            assert end == fired, (reply, i, end, fired)
        elif end is not None:
            fired = end
            assert task.parse_answer(reply[:end]) == task.parse_answer(reply), (reply, i, end)
    cut, was_cut = cut_reply(reply, p)
    assert task.parse_answer(cut) == task.parse_answer(reply)
    assert reply.startswith(cut) and (was_cut or fired is None)
    return fired is not None


def test_translation_rule_is_exact():
    task = get_task("flores:en-fr")
    assert task.gen_params.answer_end == ("translation", "French", "fr")
    fired = [_check_exact(task, r) for r in TRANSLATIONS]
    assert fired == [True] * 6 + [False, True]
    # the preamble's blank line does not end it; the first paragraph's does
    text = TRANSLATIONS[0]
    assert text[:reply_end(text, task.gen_params)].strip().endswith("Bonjour le monde.")


def test_short_answer_rule_is_exact():
    task = get_task("hotpotqa_closedbook")
    fired = [_check_exact(task, r) for r in SHORT_ANSWERS]
    # a plain first line could still be overruled by a later "Answer:" line
    assert fired == [True, True, True, True, True, False]
    assert task.parse_answer(cut_reply(SHORT_ANSWERS[2], task.gen_params)[0]) == "London"


def test_label_rule_is_exact():
    for name, reply in LABELS:
        task = _generate_task(name)
        assert task.gen_params.answer_end[0] == "label"
        assert _check_exact(task, reply), reply
    sst2 = _generate_task("sst2")
    assert reply_end("Positive", sst2.gen_params) is None       # "Positively"? not yet known
    assert reply_end("Positive.", sst2.gen_params) == 8
    news = get_task("classification", data_file="ag_news_test_300.jsonl",
                    labels=["world", "sports", "business", "technology"],
                    synonyms={"sports": ["world news"]})
    # "world" is complete, but "world news" (another label) may still be written
    assert reply_end("world new", news.gen_params) is None
    assert news.parse_answer("world news") == "sports"
    assert _check_exact(news, "world news, sports")


def test_the_rule_is_in_the_cache_key_and_every_field_is():
    task = get_task("flores:en-fr")
    msgs = task.messages(load_examples(task)[0])
    new = Request(msgs, task.gen_params).key_payload()
    old = Request(msgs, dataclasses.replace(task.gen_params, answer_end=())).key_payload()
    assert new["params"]["answer_end"] == ["translation", "French", "fr"]
    assert "answer_end" not in old["params"] and new != old
    every = GenParams(temperature=0.5, top_p=0.9, max_new_tokens=9, stop=("x",), seed=3,
                      stop_list_after=2, answer_end=("label", "a", "b"), stop_repeats=4)
    payload = Request("hi", every).key_payload()["params"]
    assert set(payload) == {f.name for f in dataclasses.fields(GenParams)}
    with pytest.raises(ValueError, match="answer_end"):
        GenParams(answer_end=("label", 3))


FAMILIES = [("flores:en-fr", 3, 80), ("wmt23:de-en", 2, 64), ("hotpotqa_closedbook", 4, None),
            ("2wikimultihopqa", 3, None), ("sst2", 4, None), ("ag_news", 4, None)]


def test_stopped_replies_parse_as_full_replies_on_every_family(embedded):
    """Real model, shipped samples: a reply with the stop is the cut of the
    reply without it, in at most as many tokens, and parses to the same answer."""
    reqs, tasks = [], []
    for name, n, max_new in FAMILIES:
        task = _generate_task(name)
        params = task.gen_params if max_new is None else dataclasses.replace(
            task.gen_params, max_new_tokens=max_new)
        for ex in load_examples(task)[:n]:
            reqs.append(Request(task.messages(ex), params))
            tasks.append(task)
    new = embedded.generate(reqs)
    old = embedded.generate([dataclasses.replace(r, params=dataclasses.replace(r.params, answer_end=()))
                             for r in reqs])
    for task, r, n, o in zip(tasks, reqs, new, old):
        assert n.completion_tokens <= o.completion_tokens
        assert n.text == cut_reply(o.text, r.params)[0].strip()
        assert task.parse_answer(n.text) == task.parse_answer(o.text), (task.name, o.text)
    saved = [o.completion_tokens - n.completion_tokens for n, o in zip(new, old)]
    assert sum(saved[:5]) > 0, "some translation ended before its token limit"


def test_openai_backend_cuts_where_the_local_one_stops(embedded):
    """The embedded model behind the real protocol generates to the end (the
    server knows no answer_end); the client cuts the text where the local
    backend stopped."""
    task = get_task("flores:en-fr", max_new_tokens=48)
    reqs = task.requests(load_examples(task)[:2])
    local = embedded.generate(reqs)
    with serve(embedded) as s:
        remote = make_llm("openai:smollm2", base_url=s.base_url, cache=None).generate(reqs)
        assert all("answer_end" not in b for b in s.bodies)
    assert [c.text for c in remote] == [c.text for c in local]


def test_openai_backend_cuts_a_scripted_reply_after_its_answer():
    task = get_task("flores:en-fr")
    req = task.requests(load_examples(task)[:1])[0]

    def scripted(messages, params):
        return "Here is the translation:\n\nBonjour.\n\nIn French, the translation is: Salut"
    with serve(scripted) as s:
        out = make_llm("openai:m", base_url=s.base_url, cache=None).generate(req)
    assert out.text == "Here is the translation:\n\nBonjour." and out.finish_reason == "stop"
    assert task.parse_answer(out.text) == "Bonjour."


def _multinomial_per_row(logits, r, g):
    """The sampler as it was, one row at a time (the reference)."""
    probs = torch.softmax(logits.float() / r.params.temperature, dim=-1)
    if r.params.top_p < 1.0:
        sp, idx = torch.sort(probs, descending=True)
        keep = torch.cumsum(sp, 0) - sp < r.params.top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter(0, idx[keep], sp[keep])
    return int(torch.multinomial(probs, 1, generator=g))


def test_vectorized_sampler_draws_what_per_row_multinomial_draws():
    """Mixed temperatures and top_p, narrow and wide nuclei (wider than the
    partial sort's TOP_K), rows leaving: the same tokens as per-row sampling
    with per-row generators."""
    gen = torch.Generator().manual_seed(0)
    reqs = [Request(f"q{i}", GenParams(temperature=t, top_p=p)) for i, (t, p) in enumerate(
        [(0.8, 0.95), (1.0, 1.0), (0.3, 0.5), (0.0, 1.0), (1.5, 0.999), (0.9, 0.9)])]
    sampler = _Sampler(reqs)
    refs = {b: torch.Generator().manual_seed(r.sampling_seed()) for b, r in enumerate(reqs)}
    active, drawn, wide = list(range(len(reqs))), 0, 0
    for step in range(60):
        if step == 30:
            active = [0, 2, 4]                     # rows left the batch
        logits = torch.randn(len(active), 4000, generator=gen) * (1 + step % 6)
        got = sampler(logits, active)
        assert set(got) == {j for j, b in enumerate(active) if b != 3}
        for j, token in got.items():
            r = reqs[active[j]]
            assert token == _multinomial_per_row(logits[j], r, refs[active[j]])
            drawn += 1
            sp = torch.sort(torch.softmax(logits[j] / r.params.temperature, -1), descending=True)[0]
            wide += int(((sp.cumsum(0) - sp) < r.params.top_p).sum()) > _Sampler.TOP_K
    assert drawn > 200 and wide > 10


LOOPS = ["English: The right of the Council of the Council of the Council of the Council of the Coun",
         "USA Gymnastics, USA Gymnastics, Missbrach, Missbrach, Missbrach, Missbrach, Missbrach, Miss",
         "Étudiante, le cours de la rue de la rue de la rue de la rue de la rue de la r"]
NOT_LOOPS = ["le défaut de l'amour est déjà réel, le défaut de l'amour est déjà réel, le défaut",
             "It costs 1000000000 dollars!!!!!!!!!! ........ ---------",
             "ha ha ha", "Bonjour le monde, le monde, le monde"]


def test_the_loop_stop_cuts_after_the_first_copy_wherever_it_is_noticed():
    p = GenParams(stop_repeats=4)
    first = {0: "English: The right of the Council", 1: "USA Gymnastics, USA Gymnastics, Missbrach",
             2: "Étudiante, le cours de la rue"}
    for n, text in enumerate(LOOPS):
        assert cut_reply(text, p) == (first[n], True)
        # the backend checks only the end as tokens arrive, then cuts with the full scan:
        # stopped at any point after the loop shows, the reply is cut where the full one is
        noticed = [i for i in range(len(text) + 1) if reply_end(text[:i], p, scan=False) is not None]
        assert noticed and all(cut_reply(text[:i], p) == (first[n], True) for i in noticed)
        assert all(reply_end(text[:i], p) is None for i in range(noticed[0]))
    for text in NOT_LOOPS:
        assert repeat_end(text, 4) is None and cut_reply(text, p) == (text, False)
    assert repeat_end("le monde, le monde, le monde, ", 3) == len("le monde, ")
    assert "stop_repeats" not in Request("hi", GenParams()).key_payload()["params"]
    for bad in (1, -1):
        with pytest.raises(ValueError, match="stop_repeats"):
            GenParams(stop_repeats=bad)


def test_the_loop_stop_on_the_real_model_changes_only_looping_replies(embedded):
    """flores:en-fr's first replies from the embedded model loop to the token
    limit: with the translation default ``stop_repeats=4`` they end soon after
    the loop shows, as the cut of the full reply; replies that end on their own
    are unchanged, and ``stop_repeats=0`` turns the rule off."""
    task = get_task("flores:en-fr", max_new_tokens=96, stop_repeats=0)
    looped = get_task("flores:en-fr", max_new_tokens=96)
    assert (looped.gen_params.stop_repeats, task.gen_params.stop_repeats) == (4, 0)
    assert looped.gen_params.answer_end == task.gen_params.answer_end
    examples = load_examples(task)[:4]
    old = embedded.generate(task.requests(examples))
    reqs = looped.requests(examples)
    new = embedded.generate(reqs)
    for r, n, o in zip(reqs, new, old):
        assert n.text == cut_reply(o.text, r.params)[0].strip()
        assert n.completion_tokens <= o.completion_tokens
        if o.finish_reason == "stop" and repeat_end(o.text, 4) is None:
            assert n.text == o.text
    assert sum(o.completion_tokens - n.completion_tokens for n, o in zip(new, old)) > 40
    with pytest.raises(Exception, match="stop_repeats"):
        get_task("flores:en-fr", stop_repeats=1)
