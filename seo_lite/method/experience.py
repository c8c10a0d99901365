"""The experience E: a short numbered list of natural-language rules.

SEO optimizes E instead of weights.  E renders into the generator's prompt as
a numbered list, and comes back from the optimizer as free text, which is
untrusted: :meth:`Experience.parse` reads numbered or bulleted rules out of a
reply, cuts the list at ``max_rules`` (the paper caps the number of rules:
without a cap the optimizer piles up redundant rules until the prompt breaks)
and says what it cut; a reply with no list is a :class:`ParseResult` with an
error, never an exception and never a guess.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_RULE_CHARS = 300          # a single rule longer than this is cut
MAX_REPLY_CHARS = 20_000      # only this much of a reply is read

_ITEM = re.compile(
    r"^\s{0,3}(?:\(?\d{1,3}[.):\]]|[-*\u2022\u2023\u25cf+]|rule\s*\d{1,3}\s*[:.)-]?)\s+(?P<text>\S.*)$",
    re.IGNORECASE)
_CONTINUATION = re.compile(r"^\s{2,}\S")


@dataclass(frozen=True)
class Experience:
    """An ordered tuple of rules; ``Experience()`` is the empty experience."""

    rules: tuple[str, ...] = ()

    def __post_init__(self):
        if isinstance(self.rules, str):
            raise TypeError("Experience takes a list of rules; use Experience.parse(text) for text")
        cleaned = tuple(_clean(r) for r in self.rules)
        object.__setattr__(self, "rules", tuple(r for r in cleaned if r))

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self):
        return iter(self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def render(self) -> str:
        """The numbered list the generator sees."""
        return "\n".join(f"{i}. {r}" for i, r in enumerate(self.rules, 1))

    def to_markdown(self, title: str = "Experience") -> str:
        body = self.render() if self.rules else "_(empty: no rules)_"
        return f"# {title}\n\n{body}\n"

    @classmethod
    def from_markdown(cls, text: str) -> "Experience":
        return cls(parse_rules(text)[0])

    def to_list(self) -> list[str]:
        return list(self.rules)

    @classmethod
    def parse(cls, text: str | None, max_rules: int) -> "ParseResult":
        """Read rules out of an optimizer reply (untrusted text)."""
        if max_rules < 1:
            raise ValueError(f"max_rules must be >= 1, got {max_rules}")
        if text is None or not text.strip():
            return ParseResult(None, error="empty reply")
        notes = []
        if len(text) > MAX_REPLY_CHARS:
            notes.append(f"reply of {len(text)} characters; read the first {MAX_REPLY_CHARS}")
            text = text[:MAX_REPLY_CHARS]
        rules, long_cut = parse_rules(text)
        notes += [f"rule {i + 1} cut to {MAX_RULE_CHARS} characters" for i in long_cut]
        seen, unique = set(), []
        for r in rules:
            k = r.casefold()
            if k in seen:
                notes.append(f"dropped repeated rule: {r!r}")
                continue
            seen.add(k)
            unique.append(r)
        if not unique:
            return ParseResult(None, error="no numbered or bulleted rules found", notes=tuple(notes))
        cut = tuple(unique[max_rules:])
        if cut:
            notes.append(f"kept the first {max_rules} of {len(unique)} rules")
        return ParseResult(cls(tuple(unique[:max_rules])), cut=cut, notes=tuple(notes))

    def __str__(self) -> str:
        return self.render() if self.rules else "(no experience)"


@dataclass(frozen=True)
class ParseResult:
    """What came out of an optimizer reply."""

    experience: Experience | None
    cut: tuple[str, ...] = ()          # rules beyond max_rules
    error: str | None = None           # why no experience could be read
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.experience is not None


def _clean(rule: str) -> str:
    r = re.sub(r"\s+", " ", str(rule)).strip()
    r = re.sub(r"^\*\*(.+?)\*\*:?\s*", r"\1: ", r).strip()   # "**Bold**: text"
    return r.strip(" *_`").strip()


def parse_rules(text: str) -> tuple[list[str], list[int]]:
    """List items of ``text`` in order (numbered ``1.``/``1)``, bullets, ``Rule 1:``),
    with indented continuation lines joined; also the indices cut for length."""
    items: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m:
            if current is not None:
                items.append(" ".join(current))
            current = [m.group("text")]
        elif current is not None and _CONTINUATION.match(line):
            current.append(line.strip())
        elif current is not None:
            items.append(" ".join(current))
            current = None
    if current is not None:
        items.append(" ".join(current))
    out, cut = [], []
    for r in items:
        r = _clean(r)
        if len(r) < 3 or not re.search(r"[^\W\d_]", r):
            continue
        if len(r) > MAX_RULE_CHARS:
            cut.append(len(out))
            r = r[:MAX_RULE_CHARS].rstrip() + "..."
        out.append(r)
    return out, cut
