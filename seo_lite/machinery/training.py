"""Training in a run directory: SEO's steps, each logged as it finishes, resumable.

:func:`train` wraps the algorithm's loop (:func:`seo_lite.method.seo.seo_steps`)
with a run directory (:class:`seo_lite.machinery.runs.RunDir`); a killed run
resumes where it stopped (see :mod:`seo_lite.method.seo` on its random draws).
"""
from __future__ import annotations

from typing import Callable

from .build import prepare
from ..method.config import SEOConfig
from ..method.experience import Experience
from .runs import RunDir
from ..method.seo import SEORun, StepRecord, seo_steps


def train(config: SEOConfig, *, task=None, splits=None, generator=None, optimizer=None,
          run_dir=None, progress: bool = True,
          on_step: Callable[[StepRecord], None] | None = None,
          on_start: Callable[[RunDir, int], None] | None = None) -> SEORun:
    """Run SEO for ``config.steps`` steps.  With ``run_dir`` every step is logged as
    it finishes and a second call with the same directory resumes after the last
    finished step; ``on_start(run_dir, finished_steps)`` is called once the run
    directory is open (the run has begun), ``on_step(record)`` after each step."""
    task, splits, generator, optimizer = prepare(config, task=task, splits=splits,
                                                 generator=generator, optimizer=optimizer)
    initial = Experience(config.initial_experience)
    records: list[StepRecord] = []
    store = None
    if run_dir is not None:
        store = RunDir(run_dir)
        records = store.open(config, splits)
        if on_start:
            on_start(store, len(records))
    experience = records[-1].experience_after if records else initial
    bar = None
    if progress and config.steps > len(records):
        from ..llm.progress import reporter      # a bar, plain lines off a terminal, or off

        bar = reporter(config.steps, "SEO steps", initial=len(records), leave=True)
    for record in seo_steps(task, generator, optimizer, splits.train, config, experience,
                            start=len(records), progress=progress):
        if store is not None:
            store.append(record)
        records.append(record)
        if on_step:
            on_step(record)
        if bar:
            bar.update(1)
            bar.set_postfix(accepted=sum(r.decision.accepted for r in records))
    if bar:
        bar.close()
    return SEORun(config, records, initial, str(store.path) if store else None)
