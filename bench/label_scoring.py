"""Target 2: label log-likelihoods with shared prompt passes vs one full forward per label.

The shared path (what every run uses) sorts prompts so a batch shares its
instruction-and-experience prefix, runs that prefix once, runs the batch's
suffixes together, and only the extra tokens of multi-token labels after
that.  The reference runs prompt + label from scratch for every label.
Log-likelihoods must agree (max |difference| <= 1e-4, same chosen label everywhere).
"""
from __future__ import annotations

import argparse

from _common import Result, Timer, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import torch

    from seo_lite import Experience
    from seo_lite.machinery.data import load_examples
    from seo_lite.llm import make_llm
    from seo_lite.tasks import get_task

    task = get_task("trec", answer_mode="rank")
    examples = load_examples(task)[: args.examples]
    rules = Experience(("Questions starting with 'Who' ask for a human.",
                        "Questions with 'Where' ask for a location."))
    reqs = task.requests(examples, rules) + task.requests(examples, None)
    llm = make_llm("embedded", cache=None).load()
    llm.loglikelihood(reqs[:2])                                      # warm-up
    with Timer() as shared:
        fast = llm.loglikelihood(reqs)
    with Timer() as full, torch.inference_mode():
        slow = [llm.loglikelihood_unshared(r) for r in reqs]
    diff = max(abs(a - b) for f, s in zip(fast, slow) for a, b in zip(f.logprobs, s.logprobs))
    same_label = all(f.best == s.best for f, s in zip(fast, slow))
    ok = diff <= 1e-4 and same_label
    r = Result("label log-likelihoods, shared prompt vs full per label", full.seconds / shared.seconds if ok else 0.0,
               ">= 3.0", details={"requests": len(reqs), "labels": len(task.labels),
                                  "shared": f"{shared.seconds:.1f} s", "per label": f"{full.seconds:.1f} s",
                                  "max |logprob difference|": f"{diff:.2e}", "same label chosen": same_label})
    return report([r], args.json)


if __name__ == "__main__":
    raise SystemExit(main())
