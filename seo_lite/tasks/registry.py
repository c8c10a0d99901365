"""Task names -> Task objects: ``get_task("trec", answer_mode="rank")``.

A name maps to a *factory*, any callable that takes keyword options and
returns a :class:`~seo_lite.tasks.base.Task`: the built-ins below,
``flores:<src>-<tgt>``, ``translation`` / ``classification`` (your own JSONL
file, no code) and what :func:`register_task` adds (see data/README.md).
Unknown names, options and language codes raise :class:`TaskError` listing
what is valid, before any data is read or any model is called.
"""
from __future__ import annotations

import inspect
from typing import Callable

from .base import Task, TaskError
from .classification import AGNews, LabelledTexts, SST2, TREC
from .multihop_qa import HotpotQAClosedBook, HotpotQADistractor, TwoWikiMultihopQA
from .translation import (FLORES_TO_SHORT, LANGUAGES, WMT23_DIRECTIONS, ParallelTranslation,
                          Translation)

TaskFactory = Callable[..., Task]
FLORES_PREFIX = "flores:"


def _translation(src: str, tgt: str, dataset: str) -> TaskFactory:
    def make(**options) -> Task:
        return Translation(src, tgt, dataset=dataset, **options)
    make.__signature__ = _options_signature(Translation)
    return make


def _options_signature(cls) -> inspect.Signature:
    """The keyword options a task class takes, for error messages."""
    names = []
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind == p.KEYWORD_ONLY and p.name not in ("dataset",) and p.name not in names:
                    names.append(p.name)
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
                              for n in names])


_BUILTIN: dict[str, TaskFactory] = {
    "hotpotqa": HotpotQADistractor,
    "hotpotqa_closedbook": HotpotQAClosedBook,
    "2wikimultihopqa": TwoWikiMultihopQA,
    "sst2": SST2,
    "trec": TREC,
    "ag_news": AGNews,
    **{f"wmt23:{pair}": _translation(*pair.split("-"), "wmt23") for pair in WMT23_DIRECTIONS},
}
# tasks read from the user's own file: they need options (data_file, columns, labels)
_FROM_FILE: dict[str, TaskFactory] = {
    "translation": ParallelTranslation,
    "classification": LabelledTexts,
}
_USER: dict[str, TaskFactory] = {}


def register_task(name: str, factory: TaskFactory, *, overwrite: bool = False) -> None:
    """Make ``get_task(name, **options)`` call ``factory(**options)``."""
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise TaskError(f"a task name is a non-empty string without surrounding spaces, got {name!r}")
    if not callable(factory):
        raise TaskError(f"the factory for {name!r} must be callable (a Task subclass or a function)")
    if name.startswith(FLORES_PREFIX) or name in _BUILTIN or name in _FROM_FILE:
        raise TaskError(f"{name!r} is a built-in task name; choose another")
    if name in _USER and not overwrite:
        raise TaskError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    _USER[name] = factory


def list_tasks(*, flores: str = "en") -> list[str]:
    """Every task name ``get_task`` knows: built-ins, the WMT23 directions,
    FLORES pairs, then user tasks.  FLORES takes any two of its columns; the
    list shows the pairs out of English (``flores="en"``) or none (``flores="none"``)."""
    if flores not in ("en", "none"):
        raise TaskError(f"flores must be 'en' or 'none', got {flores!r}")
    names = list(_BUILTIN)
    if flores == "en":
        names += [f"flores:en-{c}" for c in LANGUAGES if c != "en"]
    return names + list(_USER)


def _flores_factory(name: str) -> TaskFactory:
    pair = name[len(FLORES_PREFIX):]
    # split at the hyphen that leaves two known codes ("en-zh-Hant" -> en, zh-Hant)
    cuts = [i for i, ch in enumerate(pair) if ch == "-"]
    errors = []
    for i in cuts:
        src, tgt = pair[:i], pair[i + 1:]
        try:
            Translation(src, tgt, dataset="flores")        # validates both codes
        except TaskError as e:
            errors.append(str(e))
            continue
        return _translation(src, tgt, "flores")
    if not cuts:
        raise TaskError(f"{name!r}: write FLORES tasks as flores:<src>-<tgt>, e.g. flores:en-de; "
                        f"language codes: {', '.join(sorted(LANGUAGES) + sorted(FLORES_TO_SHORT))}")
    raise TaskError(f"{name!r}: {errors[-1]}")


def get_task(name: str, **options) -> Task:
    """A new Task for ``name``; ``options`` go to its constructor
    (``answer_mode``, ``instruction``, ``max_new_tokens``, ``stop_repeats`` and the family's own)."""
    if isinstance(name, Task):
        if options:
            raise TaskError("options apply when building a task from its name, not to a Task object")
        return name
    if not isinstance(name, str):
        raise TaskError(f"a task name is a string, got {type(name).__name__}")
    key = name.strip()
    factory = (_USER.get(key) or _BUILTIN.get(key) or _BUILTIN.get(key.lower())
               or _FROM_FILE.get(key.lower()))
    if factory is None and key.lower().startswith(FLORES_PREFIX):
        factory = _flores_factory(FLORES_PREFIX + key[len(FLORES_PREFIX):])
    if factory is None and key.lower().startswith("wmt23:"):
        raise TaskError(f"unknown task {name!r}: the WMT23 directions are "
                        f"{', '.join('wmt23:' + p for p in WMT23_DIRECTIONS)}")
    if factory is None:
        raise TaskError(f"unknown task {name!r}; valid names: {', '.join(list_tasks(flores='none'))}, "
                        "flores:<src>-<tgt> (e.g. flores:en-de), or your own file through "
                        "'translation' or 'classification' (see data/README.md)")
    try:
        task = factory(**options)
    except TypeError as e:
        valid = _valid_options(factory)
        raise TaskError(f"bad option for task {key!r} ({e}); valid options: "
                        f"{', '.join(valid) or '(none)'}") from None
    if not isinstance(task, Task):
        raise TaskError(f"the factory for {key!r} returned {type(task).__name__}, not a Task")
    return task


def _valid_options(factory: TaskFactory) -> list[str]:
    try:
        sig = (_options_signature(factory) if inspect.isclass(factory)
               else inspect.signature(factory))
    except (TypeError, ValueError):
        return []
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


__all__ = ["get_task", "list_tasks", "register_task", "TaskFactory"]
