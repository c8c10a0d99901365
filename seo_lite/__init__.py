"""seo_lite: Stochastic Experience Optimization (arXiv 2501.04393), small enough to read.

The names follow the paper; docs/architecture.md maps each step to its module.

>>> from seo_lite import SEOConfig, train, make_llm, get_task
>>> config = SEOConfig.preset("smoke", task="trec", answer_mode="rank")
>>> run = train(config)                      # doctest: +SKIP
>>> print(run.experience)                    # doctest: +SKIP
"""
import importlib

from .method.config import PRESETS, ConfigError, SEOConfig
from .method.experience import Experience
from .llm import GenParams, LLMError, LoglikelihoodRequest, Request, make_llm
from .method.evaluation import compare, evaluate
from .method.seo import (Candidate, SEORun, StepDecision, StepRecord, Trial, propose_candidates,
                         run_trials, sample_validation_set, select, seo_step)

__version__ = "0.1.0"


# training, tasks, data and experiments import lazily so `import seo_lite` stays light
_LAZY = {**dict.fromkeys(("get_task", "list_tasks", "register_task", "Task", "Example"), "tasks"),
         **dict.fromkeys(("load_splits", "load_examples"), "machinery.data"),
         **dict.fromkeys(("run_experiment", "report"), "lab.experiment"),
         "train": "machinery.training", "prepare": "machinery.build", "load_run": "machinery.runs",
         "estimate_cost": "machinery.dryrun"}          # the dry run: what a config will cost


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'seo_lite' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
