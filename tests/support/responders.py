"""Scripted answers for the test chat server (``openai_server.serve``).

``seo_responder`` plays both SEO models behind one server, telling them apart
by the system prompt: as the generator it names a TREC label, as the
optimizer it writes a numbered list of rules (and sometimes no list, which
SEO records as a failed candidate).  Answers depend only on the request
(SHA-256 of the prompt and the seed the client sent), so a run through the
server is reproducible and a resumed run can be compared with an unbroken one.
"""
from __future__ import annotations

import hashlib

from seo_lite.method.prompts import OPTIMIZER_SYSTEM

LABELS = ("abbreviation", "entity", "description", "human", "location", "number")
RULES = ("Who-questions ask for a human.", "Where-questions ask for a location.",
         "How many asks for a number.", "Definitions are descriptions.",
         "Things and animals are entities.", "Expansions of short forms are abbreviations.")


def _h(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def seo_responder(messages: list, params: dict) -> str:
    prompt = messages[-1]["content"]
    x = _h(prompt, params.get("seed"))
    if messages[0]["content"] == OPTIMIZER_SYSTEM:
        if x % 5 == 0:
            return "Sorry, I have no rules to suggest."
        return "\n".join(f"{j + 1}. {RULES[(x >> (4 * j)) % len(RULES)]}" for j in range(1 + x % 3))
    return f"The answer type is {LABELS[x % len(LABELS)]}."


def body_key(body: dict) -> str:
    """A request body as a comparable string (what the model is asked)."""
    import json

    return json.dumps({k: body.get(k) for k in ("model", "messages", "temperature", "top_p",
                                                 "max_tokens", "stop", "seed")}, sort_keys=True)
