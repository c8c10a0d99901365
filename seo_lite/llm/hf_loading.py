"""Loading a transformers model: Hub id, local folder or GGUF file; 4-bit / 8-bit.

GGUF files cannot be quantized by transformers (it refuses
``quantization_config`` with ``gguf_file=``) and de-quantizing them takes tens
of seconds, so a GGUF file is converted once into a safetensors checkpoint
in the cache folder, keyed by the file's SHA-256; later loads take seconds
and the 4-bit / 8-bit paths load that checkpoint through bitsandbytes.

One copy of each model is kept per process (``load_model``), and
``model_identity`` names what goes into the call cache's key.
"""
from __future__ import annotations

import hashlib

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import LLMError
from .cache import cache_root

_POOL: dict[tuple, "_Loaded"] = {}        # one copy of each model per process
_POOL_LOCK = threading.Lock()
_HASHES: dict[tuple, str] = {}

@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    converted_seconds: float = 0.0

def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, memoised by (path, size, mtime) in the process and on disk."""
    p = Path(path).resolve()
    st = p.stat()
    memo_key = (str(p), st.st_size, st.st_mtime_ns)
    if memo_key in _HASHES:
        return _HASHES[memo_key]
    memo_file = cache_root() / "hashes" / (hashlib.sha256(repr(memo_key).encode()).hexdigest() + ".txt")
    try:
        digest = memo_file.read_text().strip()
        if len(digest) == 64:
            _HASHES[memo_key] = digest
            return digest
    except OSError:
        pass
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    _HASHES[memo_key] = digest
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        memo_file.write_text(digest)
    except OSError:
        pass
    return digest

def _folder_fingerprint(folder: Path) -> str:
    """Cheap identity of a local checkpoint: config plus the size, head and tail
    of each weight file (hashing gigabytes on every start would cost minutes)."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.name == "config.json":
            h.update(p.read_bytes())
        elif p.suffix in (".safetensors", ".bin", ".pt"):
            size = p.stat().st_size
            h.update(f"{p.name}:{size}".encode())
            with open(p, "rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return h.hexdigest()

def converted_folder(gguf_path: str | os.PathLike) -> Path:
    """Where :func:`convert_gguf` keeps the checkpoint of a GGUF file (named by its SHA-256)."""
    return cache_root() / "models" / f"{Path(gguf_path).stem}-{file_sha256(gguf_path)[:16]}"

def convert_gguf(gguf_path: str | os.PathLike, *, progress: bool = True) -> tuple[Path, float]:
    """Convert a GGUF file once into a safetensors checkpoint in the cache.

    Returns the checkpoint folder and the seconds spent converting (0.0 when
    it was already there).  ``save_pretrained`` refuses a GGUF-loaded model, so
    the weights are moved into a fresh model built ``from_config``.  Safe when
    several processes ask at once (file lock; folder renamed into place)."""
    from filelock import FileLock

    src = Path(gguf_path)
    if not src.is_file():
        raise LLMError(f"model file not found: {src}")
    dest = converted_folder(src)
    if (dest / "config.json").is_file():
        return dest, 0.0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if (dest / "config.json").is_file():
            return dest, 0.0
        t0 = time.perf_counter()
        if progress:
            print(f"[seo_lite] converting {src.name} to a safetensors checkpoint "
                  f"(once; later loads take seconds) ...", flush=True)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
            gguf_model = AutoModelForCausalLM.from_pretrained(
                str(src.parent), gguf_file=src.name, dtype=torch.float32)
            config = AutoConfig.from_pretrained(str(src.parent), gguf_file=src.name)
        finally:
            hf_logging.set_verbosity(verbosity)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        fresh.load_state_dict(gguf_model.state_dict(), strict=True)
        fresh.generation_config = gguf_model.generation_config
        tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        fresh.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "seo_lite_source.json").write_text(
            json.dumps({"gguf_file": src.name, "sha256": file_sha256(src)}, indent=1))
        os.replace(tmp, dest)
        return dest, time.perf_counter() - t0

def _resolve_dtype(dtype, on_gpu: bool):
    import torch

    if dtype in (None, "auto"):
        if on_gpu:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # On a CPU the default stays float32: every number the docs quote was measured
        # in it.  "auto" asks for bfloat16 where the CPU has bf16 instructions (2.2x
        # faster quick start on an EPYC with avx512_bf16); emulated, it is slower.
        native = dtype == "auto" and any(getattr(torch.cpu, f, lambda: False)()
                                         for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return torch.bfloat16 if native else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in table:
        raise LLMError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(table)}")
    return table[dtype]

def load_model(source: str, ident: dict, *, dtype=None, device_map=None, load_in_4bit=False,
               load_in_8bit=False, revision=None, trust_remote_code=False) -> _Loaded:
    """Load (or reuse) a causal LM and its tokenizer.  ``source`` is a Hub id, a
    local folder or a ``.gguf`` file; ``ident`` its :func:`model_identity`."""
    pool_key = (source, str(dtype), str(device_map), load_in_4bit, load_in_8bit, revision)
    with _POOL_LOCK:
        if pool_key in _POOL:
            return _POOL[pool_key]
        loaded = _load(source, ident, dtype, device_map, load_in_4bit, load_in_8bit, revision,
                       trust_remote_code)
        _POOL[pool_key] = loaded
        return loaded

def model_identity(source: str, *, dtype=None, device_map=None, load_in_4bit=False,
                   load_in_8bit=False, revision=None) -> dict:
    """What identifies the model's answers, computed without loading its weights
    (so a fully cached re-run never loads the model).  Checks that a local file
    or folder exists."""
    import torch

    path = Path(source).expanduser()
    if source.endswith(".gguf"):
        if not path.is_file():
            raise LLMError(f"model file not found: {path} (hf:<file.gguf> needs an existing file)")
        ident = {"model": path.name, "gguf_sha256": file_sha256(path)}
    elif source.startswith((".", "/", "~")) or path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise LLMError(f"model folder not found or has no config.json: {path}")
        ident = {"model": path.name, "fingerprint": _folder_fingerprint(path)}
    else:
        ident = {"model": source, "revision": revision or "main"}
    on_gpu = torch.cuda.is_available() and device_map not in ("cpu",)
    quant = "4bit-nf4" if load_in_4bit else "8bit" if load_in_8bit else None
    ident.update({"backend": "hf", "dtype": str(_resolve_dtype(dtype, on_gpu)).replace("torch.", ""),
                  "quantization": quant, "device": "cuda" if on_gpu else "cpu"})
    return ident

def _load(source, ident, dtype, device_map, load_in_4bit, load_in_8bit, revision,
          trust_remote_code) -> _Loaded:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    on_gpu = ident["device"] == "cuda"
    converted = 0.0
    is_hub = "revision" in ident
    if source.endswith(".gguf"):
        folder, converted = convert_gguf(Path(source).expanduser())
        load_from = str(folder)
    else:
        load_from = str(Path(source).expanduser()) if not is_hub else source
    torch_dtype = _resolve_dtype(dtype, on_gpu)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "revision": revision,
                              "trust_remote_code": trust_remote_code}
    if load_in_4bit or load_in_8bit:
        from transformers import BitsAndBytesConfig

        if load_in_4bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch_dtype, bnb_4bit_use_double_quant=True)
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        device_map = device_map or ("auto" if on_gpu else "cpu")
    if device_map is None and on_gpu:
        device_map = "auto"
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        tok = AutoTokenizer.from_pretrained(load_from, revision=revision,
                                            trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(load_from, **kwargs)
    except (OSError, ValueError) as e:
        hint = (" Hub models need a network, and gated ones (meta-llama/*) need an accepted "
                "licence and HF_TOKEN set in the environment." if is_hub else "")
        raise LLMError(f"could not load model {source!r}: {e}.{hint}") from e
    except ImportError as e:
        raise LLMError(f"could not load model {source!r}: {e} (4-bit/8-bit needs bitsandbytes)") from e
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return _Loaded(model, tok, converted)
