"""``seo-lite``: the command line, calling the same functions as the notebooks.

The commands (run, eval, report, tasks, figures) are listed in README.md.
Errors a user can fix (bad option, unknown task, missing data, a run folder
from another config, a model that cannot load) print one clear line and exit
with status 2; an interrupted run keeps every finished step and resumes when
the same command runs again.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .method.config import ConfigError, SEOConfig
from .machinery.params import add_cost_flags, add_run_flags, pairs, setup_from_args
from .tasks.base import ANSWER_MODE_CHOICES


def cmd_run(args) -> int:
    from .lab.experiment import run_experiment

    config = setup_from_args(args).config
    if args.dry_run or args.price_per_mtok or args.tokens_per_second:
        from .machinery.dryrun import estimate_cost

        print(estimate_cost(config, price_per_mtok=args.price_per_mtok,
                            tokens_per_second=args.tokens_per_second))
        if args.dry_run:
            return 0
        print(flush=True)
    out = Path(args.out or f"runs/{config.task.replace(':', '_')}-{args.preset}")
    started = []

    def announce(run_dir, finished: int) -> None:    # the run directory is open: the run has begun
        started.append(run_dir)
        how = f"resuming after step {finished}" if finished else "run the same command again to resume"
        print(f"run directory: {out} ({how})", flush=True)

    try:
        result = run_experiment(config, out, progress=not args.quiet, figure=not args.no_figure,
                                on_start=announce)
    except KeyboardInterrupt:
        if started:
            print(f"\ninterrupted: finished steps are saved in {out}; run the same command to resume",
                  file=sys.stderr)
        else:
            print("\ninterrupted before the run began", file=sys.stderr)
        return 130
    print()
    print(result)
    if result.figure:
        print(f"\nfigure: {result.figure}")
    print(f"results: {out / 'final.json'}")
    return 0


def cmd_eval(args) -> int:
    from .machinery.build import make_task
    from .machinery.data import load_splits
    from .method.experience import Experience
    from .llm import make_llm
    from .machinery.runs import load_run
    from .method.evaluation import compare

    experience = Experience()
    if args.run:
        experience = load_run(args.run)[0].experience
    elif args.experience:
        experience = Experience.from_markdown(Path(args.experience).read_text(encoding="utf-8"))
    task = make_task(SEOConfig(task=args.task, answer_mode=args.answer_mode,
                               generator=args.generator))
    sizes = {"train": 0, "dev": 0, "test": 0}
    sizes[args.split] = args.size
    splits = load_splits(task, seed=args.seed, source=args.data_source, **sizes)
    generator = make_llm(args.generator, **pairs(args.generator_option, "--generator-option"))
    comp = compare(task, generator, getattr(splits, args.split), experience, split=args.split,
                   seed=args.seed, progress=f"evaluate {args.split}")
    print(f"{task.name} {args.split} (n={len(getattr(splits, args.split))}), generator {generator.name}")
    print("experience:\n" + (experience.render() or "  (none)"))
    print(f"without E: {comp.paired.b}\nwith E:    {comp.paired.a}\n"
          f"difference: {comp.paired.diff} (paired bootstrap, 95%)")
    for k, v in comp.with_experience.metrics.items():
        print(f"  {k}: {comp.without_experience.metrics[k]:.3f} -> {v:.3f}")
    return 0


def cmd_report(args) -> int:
    from .lab.experiment import report
    from .lab.plots import run_summary

    print(report(args.run_dir))
    if not args.no_figure:
        print(f"\nfigure: {run_summary(args.run_dir)}")
    return 0


def cmd_tasks(args) -> int:
    from .tasks import get_task, list_tasks

    for name in list_tasks():
        t = get_task(name)
        print(f"{name:<28}{t.family:<16}{t.answer_mode:<10}{', '.join(t.metric_names)}")
    print("\nflores:<src>-<tgt> takes any pair of FLORES-200 codes in the data file (e.g. flores:en-de).")
    print("Your own JSONL file, no code (options: --task-option KEY=VALUE, or task_options):\n"
          "  translation     data_file, source_column, target_column, source_lang, target_lang\n"
          "  classification  data_file, labels (and text_column, label_column)\n"
          "e.g. seo-lite run --task classification --task-option data_file=my.jsonl "
          "--task-option 'labels=[\"yes\", \"no\"]'")
    return 0


def cmd_figures(args) -> int:
    from .lab import figures

    for path in figures.build_all(runs_root=args.runs, out=args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="seo-lite", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train an experience with SEO, then evaluate it",
                       description="Train an experience with SEO, then compare it with no "
                       "experience on dev and test. Every SEOConfig field is a flag; a flag left "
                       "out takes the preset's value.")
    add_run_flags(r)
    add_cost_flags(r)
    r.add_argument("--out", help="run directory; run again to resume (default runs/<task>-<preset>)")
    r.add_argument("--no-figure", action="store_true", help="skip the summary figure")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(fn=cmd_run)

    e = sub.add_parser("eval", help="score a generator with an experience (or none)")
    e.add_argument("--task", required=True)
    e.add_argument("--generator", default="embedded")
    e.add_argument("--generator-option", action="append", metavar="KEY=VALUE")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--run", help="use the experience learned in this run directory")
    g.add_argument("--experience", help="a Markdown file with a numbered list of rules")
    e.add_argument("--split", choices=("train", "dev", "test"), default="test")
    e.add_argument("--size", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--answer-mode", choices=ANSWER_MODE_CHOICES,
                   help="default: the task's own; auto: rank for a local model on a labelled task; score: old name of rank")
    e.add_argument("--data-source", choices=("local", "hub"), default="local")
    e.set_defaults(fn=cmd_eval)

    rp = sub.add_parser("report", help="summarise a run directory and redraw its figure")
    rp.add_argument("run_dir")
    rp.add_argument("--no-figure", action="store_true")
    rp.set_defaults(fn=cmd_report)

    t = sub.add_parser("tasks", help="list the registered tasks")
    t.set_defaults(fn=cmd_tasks)

    f = sub.add_parser("figures", help="rebuild every figure in figures/ from run directories")
    f.add_argument("--runs", default="runs", help="folder holding the run directories")
    f.add_argument("--out", default="figures")
    f.set_defaults(fn=cmd_figures)
    return p


def _user_errors() -> tuple[type[BaseException], ...]:
    from .llm import CacheError, LLMError
    from .machinery.data import DataError
    from .machinery.runs import RunError
    from .tasks import TaskError

    # OSError: a file the user named is missing, a folder is not writable, the disk is full
    return (ConfigError, LLMError, CacheError, RunError, OSError, DataError, TaskError)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except _user_errors() as e:
        print(f"seo-lite: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
