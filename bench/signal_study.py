"""Does the default run show SEO working?  Seeds, intervals, and what the optimizer wrote.

    .venv/bin/python bench/signal_study.py                          # the quick start, seeds 0 1 2
    .venv/bin/python bench/signal_study.py --tasks sst2 ag_news trec --seeds 0 1 2
    .venv/bin/python bench/signal_study.py --report-only --runs runs/signal

For each (task, seed) it runs the quick-start configuration into
``<runs>/<task>-s<seed>`` (a finished run is only read; a broken one resumes)
and prints, from the run directories alone:

1. the quick-start table: test accuracy without -> with the learned
   experience, the paired gain with its 95% bootstrap interval, the dev gain,
   updates accepted, wall time of the run;
2. what the optimizer wrote, over every candidate of every step: the share of
   replies that (a) parse into rules, (b) name something of the task (a
   label, a word of the example it was shown, an answer format) and (c) echo
   the prompt's own bookkeeping (scores, delta, "E_t", "the current rules"),
   and (d) beat E_t on D_t;
3. the predicted-label distribution on test without and with the learned
   experience (what an unreadable experience changes).

Nothing here is tuned on test: the defaults are the quick start's.

``--prompt v1`` runs the optimizer prompt that shipped before issue 11 (the
trials shown as "(score 0.00)" and "delta = +1.00"), kept here verbatim so
the two can be compared under the same code: everything else is identical.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from _common import REPO  # noqa: F401  (puts the checkout first on sys.path)

ECHO = re.compile(r"\b(score[sd]?|delta|δ|e_t|e_\{?t|effect|current rules?|the model'?s answer|"
                  r"with the current rules|without any rules|0\.00|1\.00)\b", re.I)
FORMAT = re.compile(r"\b(one word|single word|reply|answer with|label|lowercase|only the)\b", re.I)
STOP = set("the a an of to in on and or is are be for with that this it as by at from not no "
           "you your if must should will can do does any all each one its their them they".split())


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]{2,}", text.lower()) if w not in STOP}


def reply_stats(run_dir: Path, labels: list[str], inputs: dict[str, str]) -> Counter:
    """Counts over every candidate of every step of one run; ``inputs`` maps
    example ids to their text (a rule that quotes a content word of the
    example the optimizer was shown names a cue of the input)."""
    c: Counter = Counter()
    for line in (run_dir / "steps.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        step = json.loads(line)
        current = step.get("current_scores")
        v_cur = sum(current) / len(current) if current else None
        for cand in step["candidates"]:
            c["replies"] += 1
            rules = cand.get("experience")
            if not rules:
                continue
            c["parsed"] += 1
            text = " ".join(rules)
            named = any(re.search(rf"\b{re.escape(lb)}\b", text, re.I) for lb in labels)
            named = named or bool(FORMAT.search(text))
            named = named or bool(_words(text) & _words(inputs.get(cand["example_id"], "")))
            c["names_task"] += named
            c["echoes_prompt"] += bool(ECHO.search(text))
            if cand.get("duplicate_of") is None and cand.get("val_score") is not None \
                    and v_cur is not None:
                c["validated"] += 1
                c["beats_E_t"] += cand["val_score"] > v_cur
    return c


def label_distribution(run_dir: Path) -> tuple[Counter, Counter]:
    without, with_ = Counter(), Counter()
    for line in (run_dir / "eval" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        with_[row["with"]["answer"]] += 1
        without[row["without"]["answer"]] += 1
    return without, with_


# -- the optimizer prompt before issue 11, for comparison -------------------------------------
V1_SYSTEM = ("You improve the rules that a language model follows when it solves a task. "
             "Good rules are short, general and about the task, never about one example.")
V1_USER = """Task: {instruction}

Example:
{input}
Correct answer: {gold}

Current rules:
{experience}

Model's answer with the current rules: {with_text} (score {with_score:.2f})
{comparison}
Write improved rules, at most {max_rules}, so that the model gives the correct answer \
("{gold}") for examples like this one. Keep rules that help, fix or drop rules that hurt. \
Reply with a numbered list of rules only."""
V1_COMPARISON = """Model's answer without any rules: {without_text} (score {without_score:.2f})
Effect of the current rules on this example: delta = {effect:+.2f} ({verdict}).
"""


def optimizer_messages_v1(*, instruction, input_text, gold, experience, with_text, with_score,
                          max_rules, without_text=None, without_score=None, effect=None):
    comparison = ""
    if without_text is not None:
        verdict = ("the experience helped" if effect > 0 else
                   "the experience hurt" if effect < 0 else "no difference")
        comparison = V1_COMPARISON.format(without_text=without_text or "(empty answer)",
                                          without_score=without_score, effect=effect,
                                          verdict=verdict)
    user = V1_USER.format(instruction=instruction.strip(), input=input_text.strip(), gold=gold,
                          experience=experience.render() if experience else "(none yet)",
                          with_text=with_text or "(empty answer)", with_score=with_score,
                          comparison=comparison, max_rules=max_rules)
    return [{"role": "system", "content": V1_SYSTEM}, {"role": "user", "content": user}]


def use_prompt(version: str) -> None:
    import seo_lite.method.seo as seo

    if version == "v1":
        seo.optimizer_messages = optimizer_messages_v1
    elif version != "current":
        raise SystemExit(f"unknown prompt {version!r}: current or v1")


def run_one(task: str, seed: int, out: Path, preset: str, overrides: dict) -> None:
    """Run (or resume) one seed; a finished run is only read.  Its wall time is
    in final.json (``invocation.seconds``)."""
    from seo_lite import SEOConfig, run_experiment

    if (out / "final.json").exists():
        return
    config = SEOConfig.preset(preset, task=task, seed=seed, **overrides)
    run_experiment(config, out, progress=sys.stderr.isatty(), figure=False)


def _fmt(e: dict, sign: str = "") -> str:
    return f"{e['mean']:{sign}.2f} [{e['low']:{sign}.2f}, {e['high']:{sign}.2f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["sst2"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--preset", default="classroom")
    ap.add_argument("--runs", default="runs/signal")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="SEOConfig overrides, JSON values (e.g. calibration=\"batch\")")
    ap.add_argument("--prompt", default="current", help="optimizer prompt: current or v1 (before issue 11)")
    ap.add_argument("--report-only", action="store_true", help="read the run directories, run nothing")
    args = ap.parse_args(argv)
    overrides = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        try:
            overrides[k] = json.loads(v)
        except ValueError:
            overrides[k] = v
    root = Path(args.runs)
    use_prompt(args.prompt)
    if not args.report_only:
        for task in args.tasks:
            for seed in args.seeds:
                run_one(task, seed, root / f"{task}-s{seed}", args.preset, overrides)

    print(f"\n1. Quick-start table ({args.preset}; {overrides or 'defaults'}); 95% paired bootstrap intervals")
    print(f"{'task':<9}{'seed':>4}  {'test without -> with':<22}{'test gain':<24}{'dev gain':<24}"
          f"{'accepted':<10}{'seconds':>8}")
    above = 0
    n_runs = 0
    for task in args.tasks:
        for seed in args.seeds:
            d = root / f"{task}-s{seed}"
            if not (d / "final.json").exists():
                print(f"{task:<9}{seed:>4}  (no final.json)")
                continue
            final = json.loads((d / "final.json").read_text())
            te, dv = final["comparisons"]["test"], final["comparisons"]["dev"]
            gain = te["paired"]["diff"]
            n_runs += 1
            above += gain["low"] > 0
            secs = final.get("invocation", {}).get("seconds")
            print(f"{task:<9}{seed:>4}  {te['without']['score']['mean']:.2f} -> "
                  f"{te['with']['score']['mean']:.2f}          {_fmt(gain, '+'):<24}"
                  f"{_fmt(dv['paired']['diff'], '+'):<24}{final['accepted']} of {final['steps']:<5}"
                  f"{secs if secs is not None else '':>8}")
    print(f"runs whose test-gain interval lies above zero: {above} of {n_runs}")

    print("\n2. What the optimizer wrote (all candidates, all steps)")
    print(f"{'task':<9}{'seed':>4}  {'replies':>7} {'parsed':>7} {'names task':>11} "
          f"{'echoes prompt':>14} {'beats E_t':>10}")
    from seo_lite.machinery.data import load_examples

    for task in args.tasks:
        inputs = {ex.id: ex.input for ex in load_examples(task)}
        tot: Counter = Counter()
        for seed in args.seeds:
            d = root / f"{task}-s{seed}"
            if not (d / "steps.jsonl").exists():
                continue
            labels = json.loads((d / "final.json").read_text())["task"].get("labels") or [] \
                if (d / "final.json").exists() else []
            c = reply_stats(d, labels, inputs)
            tot += c
            _print_stats(task, str(seed), c)
        _print_stats(task, "all", tot)

    print("\n3. Predicted labels on test (without E -> with E)")
    for task in args.tasks:
        for seed in args.seeds:
            d = root / f"{task}-s{seed}"
            if (d / "eval" / "test.jsonl").exists():
                wo, w = label_distribution(d)
                print(f"{task:<9}{seed:>4}  {dict(wo.most_common())}  ->  {dict(w.most_common())}")
    return 0


def _print_stats(task: str, seed: str, c: Counter) -> None:
    n, p, v = c["replies"], c["parsed"], c["validated"]
    pct = lambda a, b: f"{100 * a / b:5.0f}%" if b else "    -"
    print(f"{task:<9}{seed:>4}  {n:>7} {pct(p, n):>7} {pct(c['names_task'], p):>11} "
          f"{pct(c['echoes_prompt'], p):>14} {pct(c['beats_E_t'], v):>10}")


if __name__ == "__main__":
    sys.exit(main())
