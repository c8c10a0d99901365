"""Where a reply can end early: the optimizer's list (``GenParams.stop_list_after``),
a task's answer (``GenParams.answer_end``) and a loop (``GenParams.stop_repeats``).

Tokens generated after the point where a parser can read no more are paid for
and thrown away.  The first two rules find that point as text arrives, and both
are *exact*: once a rule gives an offset, no continuation of the text changes
what the parser reads, so cutting there changes no parsed answer.  Local
backends check every row of a batch as its tokens arrive and end the row
there; remote ones cut the returned text (:func:`cut_reply`).  A task that
changes a family's parser must give its own rule (or ``answer_end=()``).
The loop rule (:func:`repeat_end`, off unless asked for) is not exact: it cuts
a reply that repeats itself, so it changes what is parsed from looping replies.

The optimizer's list.

The optimizer is asked for "a numbered list of at most ``max_rules`` rules";
the parser (:func:`seo_lite.method.experience.parse_rules`) reads the list items and
keeps the first ``max_rules`` distinct ones, so generation can end as soon
as the list is over:

* ``max_items`` distinct items are complete (a line that is not an indented
  continuation follows the last one; items the parser drops, too short or
  without a letter, and repeats do not count): the parsed experience cannot
  change any more, later items could only be cut or dropped; or
* after the list began, a complete line that is neither an item, a blank
  line nor an indented continuation (prose after the list).

The text is cut at the start of the line that ended the list.
"""
from __future__ import annotations

import re
from typing import Callable

from .base import LLMError

_LIST_ITEM = re.compile(
    r"^\s{0,3}(?:\(?\d{1,3}[.):\]]|[-*\u2022\u2023\u25cf+]|rule\s*\d{1,3}\s*[:.)-]?)\s+(?P<text>\S.*)$",
    re.IGNORECASE)
_LIST_CONTINUATION = re.compile(r"^\s{2,}\S")


def list_end(text: str, max_items: int) -> int | None:
    """Where the list in ``text`` is over (an offset to cut at), or None while
    it may go on."""
    if max_items < 1:
        return None
    seen: set[str] = set()
    current: list[str] | None = None
    started = False
    pos = 0
    lines = text.split("\n")
    for n, line in enumerate(lines):
        complete = n < len(lines) - 1
        if not complete and not line[:1].strip():
            return None                   # may still be a continuation or anything
        if current is not None and not (complete and _LIST_CONTINUATION.match(line)):
            key = _item_key(current)      # the item before this line is complete
            if key is not None:
                seen.add(key)
            current = None
            if len(seen) >= max_items:    # the experience is decided
                return pos
        if not complete:
            return None
        m = _LIST_ITEM.match(line)
        if m:
            current, started = [m.group("text")], True
        elif current is not None:
            current.append(line.strip())  # a continuation
        elif line.strip() and started:
            return pos                    # prose after the list
        pos += len(line) + 1
    return None


def _item_key(parts: list[str]) -> str | None:
    """An item's text as the parser compares it; None for an item it drops
    (shorter than 3 characters or without a letter)."""
    key = re.sub(r"[*_`]", "", " ".join(" ".join(parts).split())).strip().casefold()
    return key if len(key) >= 3 and re.search(r"[^\W\d_]", key) else None


# -- a task's answer ------------------------------------------------------------------------
#: name -> ``end(text, *args) -> offset | None``.  Each task family registers its
#: rule beside its parser (``@answer_end_rule("translation")``); a request names it
#: with its arguments in ``GenParams.answer_end`` (``("translation", "French", "fr")``),
#: which is part of the cache key.
ANSWER_ENDS: dict[str, Callable[..., int | None]] = {}


def answer_end_rule(name: str):
    """Register ``end(text, *args)``: the offset after which the parser of a task
    reads nothing whatever follows, or None while more text may still count."""
    def register(fn):
        ANSWER_ENDS[name] = fn
        return fn
    return register


# -- a degenerate loop -----------------------------------------------------------------------
_MAX_PERIOD = 80
_LETTER = re.compile(r"[^\W\d_]")


def _loop_at(text: str, end: int, times: int) -> int | None:
    """The shortest block (2-80 characters, with a letter) that
    ``text[:end]`` ends with ``times`` times in a row: where its first copy ends."""
    for p in range(2, min(_MAX_PERIOD, end // times) + 1):
        block = text[end - p:end]
        if text[end - p * times:end] == block * times and _LETTER.search(block):
            return end - p * (times - 1)
    return None


def repeat_end(text: str, times: int, *, scan: bool = True) -> int | None:
    """Where a loop in ``text`` is cut (``GenParams.stop_repeats``): after the
    first copy of the block whose ``times``-th copy ends earliest, or None.
    ``scan=False`` looks only at the end of ``text`` (the check made as tokens
    arrive); the cut itself always comes from the full scan, so a reply
    stopped there and one generated to the end are cut at the same offset."""
    ends = range(2 * times, len(text) + 1) if scan else [len(text)]
    return next((cut for e in ends if (cut := _loop_at(text, e, times)) is not None), None)


def reply_end(text: str, params, *, scan: bool = True) -> int | None:
    """Where ``text`` can be cut under ``params`` (its list is over, or its
    answer is, or it loops), or None while the reply must go on."""
    ends = []
    if params.stop_repeats:
        ends.append(repeat_end(text, params.stop_repeats, scan=scan))
    if params.stop_list_after:
        ends.append(list_end(text, params.stop_list_after))
    if params.answer_end:
        name, *args = params.answer_end
        if name not in ANSWER_ENDS:
            raise LLMError(f"no answer-end rule named {name!r} (known: "
                           f"{', '.join(sorted(ANSWER_ENDS)) or 'none'}); the task modules "
                           "register theirs when seo_lite.tasks is imported")
        ends.append(ANSWER_ENDS[name](text, *args))
    ends = [e for e in ends if e is not None]
    return min(ends) if ends else None


def cut_reply(text: str, params) -> tuple[str, bool]:
    """A finished reply up to where it could have ended (and whether it was
    cut): a stopped reply and one generated to the end give the same text."""
    end = reply_end(text + "\n", params) if reads_text(params) else None
    return (text, False) if end is None else (text[:end].rstrip(), True)


def reads_text(params) -> bool:
    """Does a rule above read the text as it arrives?"""
    return bool(params.stop_list_after or params.answer_end or params.stop_repeats)
