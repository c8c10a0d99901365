"""From an SEOConfig to the objects it names: the task, the data splits, the two models.

The algorithm (:mod:`seo_lite.method.seo`) takes these as arguments and never
builds them; each decision is made here once: the task and its answer mode
(``"auto"``: label ranking needs a local model, since a server returns text,
not log-probabilities), whether M_gen and M_opt are one model, and the order
(data first, so a data error shows before any model loads).
"""
from __future__ import annotations

from ..method.config import SEOConfig
from ..tasks.base import RANK

LOCAL_MODELS = ("embedded", "hf:")      # backends that can rank labels by log-likelihood


def resolve_answer_mode(answer_mode: str | None, task: str, generator: str) -> str | None:
    """``"auto"`` -> ``"rank"`` for a local generator on a task with labels, else
    None (the task's default); any other value is returned unchanged."""
    if answer_mode != "auto":
        return answer_mode
    from ..tasks import get_task

    local = str(generator).startswith(LOCAL_MODELS)
    return RANK if local and get_task(task).labels else None


def make_task(config: SEOConfig, name: str | None = None, *, lenient: bool = False):
    """The task ``config`` names (or task ``name``, with the config's options,
    answer mode and calibration).  ``lenient=True``: options the task family does
    not take are dropped (a QA experience evaluated on another QA task)."""
    from ..tasks import get_task

    name = name or config.task
    opts = dict(config.task_options)
    mode = resolve_answer_mode(config.answer_mode, name, config.generator)
    if mode is not None:
        opts["answer_mode"] = mode
    if getattr(config, "calibration", "none") != "none":
        opts["calibration"] = config.calibration
    try:
        return get_task(name, **opts)
    except Exception:                     # lenient: an option the target family does not take
        if not lenient:
            raise
        return get_task(name)


def same_model(config: SEOConfig) -> bool:
    """Are M_gen and M_opt one model (same spec and options, secrets included)?"""
    return (config.optimizer == config.generator
            and config.optimizer_options == config.generator_options)


def make_models(config: SEOConfig, *, generator=None, optimizer=None):
    """``(generator, optimizer)``, building the ones not given; one object when
    :func:`same_model`, so one model is loaded and its calls are counted once."""
    from ..llm import make_llm

    if generator is None:
        generator = make_llm(config.generator, **config.generator_options)
    if optimizer is None:
        optimizer = (generator if same_model(config)
                     else make_llm(config.optimizer, **config.optimizer_options))
    return generator, optimizer


def task_and_splits(config: SEOConfig, *, task=None, splits=None):
    """``(task, splits)`` that ``config`` names, the ones given kept."""
    from .data import load_splits

    task = task or make_task(config)
    if splits is None:
        splits = load_splits(task, train=config.train_size, dev=config.dev_size,
                             test=config.test_size, seed=config.seed, source=config.data_source)
    return task, splits


def prepare(config: SEOConfig, *, task=None, splits=None, generator=None, optimizer=None):
    """``(task, splits, generator, optimizer)``: what ``config`` names and was not
    given.  Data and task errors surface here, before any model is loaded."""
    task, splits = task_and_splits(config, task=task, splits=splits)
    return (task, splits, *make_models(config, generator=generator, optimizer=optimizer))
