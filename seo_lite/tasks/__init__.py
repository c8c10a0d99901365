"""Task families of SEO: multi-hop QA, machine translation, text classification.

A :class:`Task` is instruction + input formatting + answer parsing + metric;
:func:`get_task` builds one by name, :func:`list_tasks` lists the names and
:func:`register_task` adds your own.  Data comes through :mod:`seo_lite.machinery.data`.
"""
from .base import ANSWER_MODES, Example, Prediction, Task, TaskError
from .classification import AGNews, Classification, SST2, TREC
from .multihop_qa import HotpotQAClosedBook, HotpotQADistractor, MultiHopQA, TwoWikiMultihopQA
from .registry import get_task, list_tasks, register_task
from .translation import Translation

__all__ = ["Task", "Example", "Prediction", "TaskError", "ANSWER_MODES",
           "get_task", "list_tasks", "register_task",
           "MultiHopQA", "HotpotQADistractor", "HotpotQAClosedBook", "TwoWikiMultihopQA",
           "Translation", "Classification", "SST2", "TREC", "AGNews"]
