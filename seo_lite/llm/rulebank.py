"""The rule-bank optimizer: random search over sensible rules, as an SEO baseline.

Question it answers: *is the LLM optimizer better than editing E_t at random
with generic, sensible rules?*  It is an :class:`~seo_lite.llm.base.LLM`
backend (spec ``"rulebank"``) used only as M_opt, so SEO's trials,
stochastic validation, selection and run directory apply unchanged and the
generator's call budget is the same as with an LLM optimizer.

For each optimizer request it reads the task instruction (which gives the
task family; ``family=`` overrides the guess), E_t and ``max_rules`` out of the
optimizer prompt (its only input), makes **one edit** to E_t chosen at random
among those that apply (:func:`edit_rules`: *add* a bank rule, *replace* a
rule by one, *drop* a rule), and replies with the result as a numbered list.

Determinism.  The random stream is seeded by the request the way sampled
text is (``Request.sampling_seed()``: generation seed, sample index,
messages, prefix), so k sample indices give k independent edits and a
resumed or cached run replays exactly.  A greedy request (temperature 0) has
no sample index in its cache key, so its edit depends on the messages only.

The bank.  :data:`RULE_BANK` below, written once from general
prompt-engineering advice for each family, before any run and never tuned on
dev or test data.  Its hash is part of :meth:`RuleBankLLM.identity`, so
editing the bank can never replay old cached edits.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import time
from typing import Any

from .base import LLM, Completion, LLMError, Request

BANK_VERSION = 1

# family -> generic rules (no example, label distribution or score went into them)
RULE_BANK: dict[str, tuple[str, ...]] = {
    "classification": (
        "Read the whole text before choosing a label.",
        "Answer with exactly one label from the list in the instruction.",
        "Choose the label that describes the main point of the text, not a side detail.",
        "Consider every label in the list, not only the first one.",
        "If two labels seem possible, pick the one the text supports most directly.",
        "Pay attention to negations such as 'not', 'never' and 'hardly'.",
        "Look for the key words or phrases that signal each label.",
        "Judge the text by what it says, not by outside knowledge or opinion.",
        "Give only the label, with no explanation.",
        "Decide from the overall meaning of the text rather than single words.",
    ),
    "multihop_qa": (
        "Answer with a short phrase, not a full sentence.",
        "Work out which facts the question connects, then combine them into one answer.",
        "Give exactly the kind of answer asked for: a person, a place, a date, a number or yes/no.",
        "If the question asks which of two options, answer with one of the two options.",
        "For a yes/no question, answer only yes or no.",
        "When paragraphs are given, use only the ones relevant to the question.",
        "Do not repeat the question in the answer.",
        "Write names in full, the way they are usually written.",
        "Do not add an explanation after the answer.",
        "Check that the answer fits every part of the question.",
    ),
    "translation": (
        "Translate the meaning faithfully; do not add or drop information.",
        "Output only the translation, with no notes or explanations.",
        "Keep names, numbers and dates exactly as in the source.",
        "Use the natural word order and idioms of the target language.",
        "Translate every sentence of the source; do not summarise.",
        "Keep the tone and register of the source text.",
        "Keep the punctuation and sentence boundaries of the source where natural.",
        "Do not leave words untranslated unless they are names.",
        "Use the same term for the same word throughout the text.",
        "Do not answer questions in the source; translate them.",
    ),
    "generic": (
        "Follow the instruction exactly.",
        "Keep the answer short and in the requested format.",
        "Do not add explanations.",
        "Read the input carefully before answering.",
        "Check the answer against the instruction before giving it.",
    ),
}
FAMILY_ALIASES = {"qa": "multihop_qa", "multihop": "multihop_qa", "classify": "classification"}


def bank_hash() -> str:
    blob = json.dumps({k: list(v) for k, v in sorted(RULE_BANK.items())}, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def guess_family(instruction: str) -> str:
    """The task family from an instruction (the built-in tasks' wording)."""
    first = instruction.strip().lower()
    if first.startswith("classify"):
        return "classification"
    if first.startswith("translate"):
        return "translation"
    if first.startswith("answer the question"):
        return "multihop_qa"
    return "generic"


# -- reading the optimizer prompt ----------------------------------------------------------------
def _between(template: str, field: str) -> tuple[str, str]:
    """The literal text around ``{field}`` in a template, up to the neighbouring fields."""
    before, _, after = template.partition("{" + field + "}")
    return before.rsplit("}", 1)[-1], after.split("{", 1)[0]


def read_optimizer_prompt(messages) -> dict[str, Any]:
    """Instruction, E_t (list of rules) and max_rules out of an optimizer prompt
    built by :func:`seo_lite.method.prompts.optimizer_messages`."""
    from ..method.experience import parse_rules
    from ..method.prompts import OPTIMIZER_USER

    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    out: dict[str, Any] = {}
    for field in ("instruction", "experience", "max_rules"):
        pre, post = _between(OPTIMIZER_USER, field)
        pattern = (re.escape(pre) if pre else "^") + r"(.*?)" + (re.escape(post) if post else "$")
        m = re.search(pattern, user, re.DOTALL)
        if not m:
            raise LLMError("the rule-bank optimizer could not read the optimizer prompt "
                           f"(no {field!r} where seo_lite.method.prompts.OPTIMIZER_USER puts it)")
        out[field] = m.group(1)
    rules, _ = parse_rules(out["experience"])
    return {"instruction": out["instruction"].strip(), "rules": rules,
            "max_rules": int(out["max_rules"])}


def edit_rules(rules: list[str], bank: tuple[str, ...], max_rules: int,
               rng: random.Random) -> tuple[list[str], str]:
    """One random edit of ``rules`` with rules from ``bank``, among those that apply:
    *add* a rule not yet in ``rules`` (below ``max_rules``), *replace* one by such
    a rule, *drop* one (only from two or more: an empty reply is not a
    candidate).  Returns (rules, what was done)."""
    have = {r.casefold() for r in rules}
    fresh = [r for r in bank if r.casefold() not in have]
    edits = []
    if fresh and len(rules) < max_rules:
        edits.append("add")
    if fresh and rules:
        edits.append("replace")
    if len(rules) >= 2:
        edits.append("drop")
    if not edits:
        return list(rules), "none"
    edit = rng.choice(edits)
    out = list(rules[:max_rules])
    if edit == "add":
        out.insert(rng.randint(0, len(out)), rng.choice(fresh))
    elif edit == "replace":
        out[rng.randrange(len(out))] = rng.choice(fresh)
    else:
        del out[rng.randrange(len(out))]
    return out, edit


class RuleBankLLM(LLM):
    """M_opt that edits E_t with rules from :data:`RULE_BANK` (see the module docstring).

    ``family``: the bank to draw from (``classification``, ``multihop_qa`` or
    ``qa``, ``translation``, ``generic``); by default read from the task
    instruction in the prompt."""

    backend = "rulebank"

    def __init__(self, family: str | None = None, cache="default"):
        super().__init__(cache)
        if family is not None:
            family = FAMILY_ALIASES.get(family, family)
            if family not in RULE_BANK:
                raise LLMError(f"unknown rule-bank family {family!r}; valid: "
                               f"{', '.join(sorted(RULE_BANK))} (or qa)")
        self.family = family

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": "rulebank", "bank": bank_hash(),
                "version": BANK_VERSION, "family": self.family or "from-instruction"}

    def propose(self, request: Request) -> tuple[str, dict]:
        """The reply to one optimizer request and a note of what was edited."""
        info = read_optimizer_prompt(request.messages)
        family = self.family or guess_family(info["instruction"])
        if request.params.greedy:
            blob = json.dumps(list(request.messages), sort_keys=True).encode()
            seed = int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")
        else:
            seed = request.sampling_seed()
        rng = random.Random(f"rulebank:{seed}")
        rules, edit = edit_rules(info["rules"], RULE_BANK[family], info["max_rules"], rng)
        text = "\n".join(f"{i}. {r}" for i, r in enumerate(rules, 1))
        return text, {"family": family, "edit": edit}

    def _generate(self, requests: list[Request]) -> list[Completion]:
        out = []
        for r in requests:
            t0 = time.perf_counter()
            text, _ = self.propose(r)
            out.append(Completion(text, prompt_tokens=0, completion_tokens=0,
                                  latency_s=time.perf_counter() - t0, finish_reason="stop"))
        return out


__all__ = ["RuleBankLLM", "RULE_BANK", "bank_hash", "edit_rules", "guess_family",
           "read_optimizer_prompt"]
