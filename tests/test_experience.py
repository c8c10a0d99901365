"""Experience: rendering, and parsing untrusted optimizer replies."""
from __future__ import annotations

import pytest

from seo_lite.method.experience import MAX_REPLY_CHARS, MAX_RULE_CHARS, Experience
from seo_lite.method.prompts import EXPERIENCE_HEADER, generator_messages, optimizer_messages


def test_render_and_markdown_round_trip():
    e = Experience(("Answer with one word.", "  Check the  question type. "))
    assert e.render() == "1. Answer with one word.\n2. Check the question type."
    assert Experience.from_markdown(e.to_markdown("E_3")) == e
    assert not Experience() and str(Experience()) == "(no experience)"
    with pytest.raises(TypeError):
        Experience("a string is not a list of rules")


@pytest.mark.parametrize("reply,rules", [
    ("1. Be brief.\n2. Name the entity.", ["Be brief.", "Name the entity."]),
    ("Here is the revised experience:\n\n1) Be brief.\n2) Name the entity.\n\nHope it helps!",
     ["Be brief.", "Name the entity."]),
    ("- Be brief.\n* Name the entity.\n• Check dates.", ["Be brief.", "Name the entity.", "Check dates."]),
    ("Rule 1: Be brief.\nRule 2: Name the entity.", ["Be brief.", "Name the entity."]),
    ("1. **Brevity**: answer in one word.\n2. Look for\n   the entity type.",
     ["Brevity: answer in one word.", "Look for the entity type."]),
    ("1. Be brief.\n2. be brief.\n3. Other.", ["Be brief.", "Other."]),
])
def test_parse_numbered_and_bulleted_rules(reply, rules):
    res = Experience.parse(reply, max_rules=5)
    assert res.ok and list(res.experience) == rules


@pytest.mark.parametrize("reply,error", [
    ("", "empty reply"), (None, "empty reply"), ("   \n ", "empty reply"),
    ("I think the model should answer better.", "no numbered or bulleted rules found"),
    ("1.\n2. !!\n3. 42", "no numbered or bulleted rules found"),
])
def test_unparseable_replies_are_errors_not_exceptions(reply, error):
    res = Experience.parse(reply, max_rules=3)
    assert not res.ok and res.error == error and res.experience is None


def test_rules_beyond_the_cap_are_cut_and_reported():
    reply = "\n".join(f"{i}. rule {i}" for i in range(1, 9))
    res = Experience.parse(reply, max_rules=3)
    assert list(res.experience) == ["rule 1", "rule 2", "rule 3"]
    assert res.cut == tuple(f"rule {i}" for i in range(4, 9))
    assert "kept the first 3 of 8 rules" in res.notes


def test_huge_reply_is_bounded():
    reply = "1. " + "very long rule " * 200 + "\n" + "\n".join(f"{i}. r{i} x" for i in range(2, 5000))
    assert len(reply) > MAX_REPLY_CHARS
    res = Experience.parse(reply, max_rules=4)
    assert res.ok and len(res.experience) == 4
    assert len(res.experience.rules[0]) <= MAX_RULE_CHARS + 3
    assert any(f"read the first {MAX_REPLY_CHARS}" in n for n in res.notes)


def test_max_rules_must_be_positive():
    with pytest.raises(ValueError, match="max_rules"):
        Experience.parse("1. a rule", max_rules=0)


def test_generator_prompt_with_and_without_experience():
    e = Experience(("Be brief.",))
    with_e = generator_messages("Classify.", "Text here", e)[-1]["content"]
    without = generator_messages("Classify.", "Text here", None)[-1]["content"]
    assert EXPERIENCE_HEADER in with_e and "1. Be brief." in with_e
    assert EXPERIENCE_HEADER not in without and without == "Classify.\n\nText here"
    assert generator_messages("Classify.", "Text here", Experience())[-1]["content"] == without


def test_optimizer_prompt_shows_both_trials_and_delta():
    msgs = optimizer_messages(instruction="Classify.", input_text="x", gold="human",
                              experience=Experience(("Be brief.",)), with_text="location",
                              with_score=0.0, without_text="human", without_score=1.0,
                              effect=-1.0, max_rules=4)
    user = msgs[-1]["content"]
    assert "Correct answer: human" in user and "1. Be brief." in user
    assert "the current rules hurt (effect -1.00)" in user and "at most 4" in user
    assert "answered: location (wrong)" in user and "answered: human (right)" in user
    assert "score" not in user.lower(), "numbers labelled 'score' get copied into rules"
