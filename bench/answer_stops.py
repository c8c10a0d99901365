"""Issue 22, target 1: generate-mode calls stop where the task's answer ends.

The same requests (the shipped samples, the task's own generation limits)
are answered by the embedded model twice, greedy and with no call cache:
with ``GenParams.answer_end`` alone and with neither stop rule (what a run
sent before issue 22).  Per family: new tokens per call before and after, their
ratio (target >= 3 for translation and QA), and the parsed answers that
changed (target: none), each listed with the two replies.  Translation runs a
third time as a run sends it now, with the loop stop too (translation's
default ``stop_repeats=4``): its ratio, and the parsed answers it changed among replies that
ended before the limit (target: none; it may change only looping ones).
Token counts are deterministic, so this bench is valid on a busy machine.

    .venv/bin/python bench/answer_stops.py                 # ~15 minutes on 2 quiet cores
    .venv/bin/python bench/answer_stops.py --examples 8    # a quick look
"""
from __future__ import annotations

import argparse
import dataclasses

from _common import Result, report

FAMILIES = {"translation": ["flores:en-fr", "wmt23:de-en"],
            "QA": ["hotpotqa_closedbook", "2wikimultihopqa"],
            "classification (generate)": ["sst2", "trec", "ag_news"]}
TARGET = {"translation": ">= 3.0", "QA": ">= 3.0", "classification (generate)": None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=30, help="examples per task")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from seo_lite.llm import Request, make_llm
    from seo_lite.machinery.data import load_examples
    from seo_lite.tasks import get_task

    llm = make_llm("embedded", cache=None).load()
    results = []
    for family, names in FAMILIES.items():
        old_tokens = new_tokens = calls = changed = within_limit = loop_tokens = loop_changed = 0
        examples_changed = []
        for name in names:
            task = get_task(name)
            if task.answer_mode == "rank":
                task = get_task(name, answer_mode="generate")
            reqs = task.requests(load_examples(task)[: args.examples])
            new = llm.generate([Request(r.messages, dataclasses.replace(r.params, stop_repeats=0))
                                for r in reqs])
            old = llm.generate([Request(r.messages, dataclasses.replace(r.params, answer_end=(),
                                                                        stop_repeats=0)) for r in reqs])
            loop = llm.generate(reqs) if family == "translation" else new
            for n, o, lp in zip(new, old, loop):
                loop_tokens += lp.completion_tokens
                loop_changed += (o.finish_reason == "stop"
                                 and task.parse_answer(lp.text) != task.parse_answer(o.text))
                calls += 1
                new_tokens += n.completion_tokens
                old_tokens += o.completion_tokens
                within_limit += o.finish_reason == "stop"
                if task.parse_answer(n.text) != task.parse_answer(o.text):
                    changed += 1
                    examples_changed.append(f"{name}: {o.text[:80]!r} -> {n.text[:80]!r}")
        ratio = old_tokens / max(new_tokens, 1)
        results.append(Result(f"{family}: new tokens per call, before / after", ratio,
                              TARGET[family], details={
                                  "tasks": ", ".join(names), "calls": calls,
                                  "tokens per call before": round(old_tokens / calls, 1),
                                  "tokens per call after": round(new_tokens / calls, 1),
                                  "old replies that ended before the limit": within_limit}))
        results.append(Result(f"{family}: parsed answers changed by the stop", changed, "<= 0", "",
                              details={f"changed {i}": x for i, x in enumerate(examples_changed[:5])}))
        if family == "translation":
            results.append(Result(f"{family} + loop stop (stop_repeats=4): tokens before / after",
                                  old_tokens / max(loop_tokens, 1), ">= 3.0",
                                  details={"tokens per call after": round(loop_tokens / calls, 1)}))
            results.append(Result(f"{family} + loop stop: parsed answers changed where the old reply "
                                  "ended before the limit", loop_changed, "<= 0", ""))
    return report(results, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
