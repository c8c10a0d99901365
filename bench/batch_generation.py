"""Target 1: batched generation vs one prompt at a time (embedded model).

Same prompts, same greedy outputs; the ratio is tokens per second batched over
tokens per second one at a time.  Prompts are real generator prompts (TREC in
generate mode and HotpotQA closed-book), so lengths vary as they do in a run.
Batched, every prompt of a task shares its instruction, which runs once per
batch (prefix sharing); one at a time, every prompt runs in full.

The shared 2-core host's speed drifts by up to 1.6x within minutes (one at a
time: 9.9 to 16.1 tok/s in three runs in a row), so one pair of timings can
land anywhere from 4.7x to 6.8x.  The two modes run ``--repeats`` times,
alternating, so each pair sees the same host; the result is the median ratio
of the pairs, and every pair is printed.
"""
from __future__ import annotations

import argparse
import statistics

from _common import Result, Timer, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3, help="alternating pairs of timings")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from seo_lite.machinery.data import load_examples
    from seo_lite.llm import GenParams, Request, make_llm
    from seo_lite.tasks import get_task

    reqs = []
    for name in ("trec", "hotpotqa_closedbook"):
        task = get_task(name)
        for ex in load_examples(task)[: args.prompts // 2]:
            reqs.append(Request(task.messages(ex), GenParams(max_new_tokens=args.max_new_tokens)))
    llm = make_llm("embedded", cache=None, batch_size=args.batch_size).load()
    llm.generate(reqs[:2])                                   # warm-up

    pairs = []
    for _ in range(args.repeats):
        llm.batch_size = args.batch_size
        with Timer() as batched:
            out_b = llm.generate(reqs)
        llm.batch_size = 1
        with Timer() as single:
            out_s = llm.generate(reqs)
        pairs.append((batched.seconds, single.seconds))
    tok_b = sum(c.completion_tokens for c in out_b)
    tok_s = sum(c.completion_tokens for c in out_s)
    same = [a.text for a in out_b] == [b.text for b in out_s]
    ratios = [(tok_b / b) / (tok_s / s) for b, s in pairs]
    ratio = statistics.median(ratios)
    r = Result("batched vs one-at-a-time generation, tokens/s (median of pairs)", ratio if same else 0.0,
               ">= 5.0", details={
                   "batch size": args.batch_size, "prompts": len(reqs), "tokens per pass": tok_b,
                   **{f"pair {i + 1}": f"batched {tok_b / b:.1f} tok/s, one at a time {tok_s / s:.1f} tok/s, "
                                       f"{x:.2f}x" for i, ((b, s), x) in enumerate(zip(pairs, ratios))},
                   "prompt tokens computed / requested, batched":
                       f"{sum(c.prompt_tokens_computed for c in out_b) / sum(c.prompt_tokens for c in out_b):.2f}",
                   "identical outputs": same})
    return report([r], args.json)


if __name__ == "__main__":
    raise SystemExit(main())
