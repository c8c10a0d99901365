"""Shared fixtures.  Tests use only what is on the machine: the embedded model,
the data samples the repository ships in data/ (found by the loader with no
configuration; SEO_LITE_DATA overrides) and servers on 127.0.0.1."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))           # makes `tests.support` importable

# An explicit SEO_LITE_DATA is made absolute, so notebooks executed from notebooks/
# see the same folder; unset, every process finds the shipped samples by itself.
if os.environ.get("SEO_LITE_DATA", "").strip():
    os.environ["SEO_LITE_DATA"] = str(Path(os.environ["SEO_LITE_DATA"]).expanduser().resolve())
# Converted model checkpoints are reused between test sessions; call caches are not
# (tests that need one make their own in tmp_path).
os.environ.setdefault("SEO_LITE_CACHE", str(REPO / ".cache" / "seo_lite"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder the loader reads with no argument (the shipped samples by default)."""
    from seo_lite.machinery.data import data_folder

    return data_folder()


@pytest.fixture(scope="session")
def embedded():
    """The real embedded model, with no call cache (tests count real calls)."""
    from seo_lite.llm import make_llm

    return make_llm("embedded", cache=None)


@pytest.fixture
def fresh_call_cache(tmp_path, monkeypatch) -> Path:
    """A new, empty call cache for this test (and the processes it starts), which
    reuses the converted model checkpoint but none of the calls."""
    cache = tmp_path / "cache"
    cache.mkdir()
    shared = Path(os.environ["SEO_LITE_CACHE"])
    for sub in ("models", "hashes"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(shared / sub, target_is_directory=True)
    monkeypatch.setenv("SEO_LITE_CACHE", str(cache))
    return cache
