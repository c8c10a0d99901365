"""seo_lite: Stochastic Experience Optimization (arXiv 2501.04393), small enough to read.

The names follow the paper; docs/architecture.md maps each step to its module.

>>> from seo_lite import SEOConfig, train, make_llm, get_task
>>> config = SEOConfig.preset("smoke", task="trec", answer_mode="rank")
>>> run = train(config)                      # doctest: +SKIP
>>> print(run.experience)                    # doctest: +SKIP
"""
from .method.config import PRESETS, ConfigError, SEOConfig
from .method.experience import Experience
from .llm import GenParams, LLMError, LoglikelihoodRequest, Request, make_llm
from .method.evaluation import compare, evaluate
from .method.seo import (Candidate, SEORun, StepDecision, StepRecord, Trial, propose_candidates,
                         run_trials, sample_validation_set, select, seo_step)

__version__ = "0.1.0"


def __getattr__(name):
    # training, tasks, data and experiments import lazily so `import seo_lite` stays light
    if name in ("get_task", "list_tasks", "register_task", "Task", "Example"):
        from . import tasks
        return getattr(tasks, name)
    if name in ("load_splits", "load_examples"):
        from .machinery import data
        return getattr(data, name)
    if name in ("run_experiment", "report"):
        from .lab import experiment
        return getattr(experiment, name)
    if name == "train":
        from .machinery.training import train
        return train
    if name == "estimate_cost":                  # the dry run: what a config will cost
        from .machinery.dryrun import estimate_cost
        return estimate_cost
    if name == "prepare":
        from .machinery.build import prepare
        return prepare
    if name == "load_run":
        from .machinery.runs import load_run
        return load_run
    raise AttributeError(f"module 'seo_lite' has no attribute {name!r}")
