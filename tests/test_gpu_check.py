"""``bench/gpu_check.py`` on the CPU: the same checks the GPU run makes, at SmolLM2's size.

It builds a random-weight Llama-shaped model and a tokenizer in code (nothing
is downloaded), runs the decode loop against ``model.generate``, shared-prefix
log-likelihoods against full forwards, a smoke SEO run with the rule-bank
optimizer, and prints one table; a mismatch makes it exit 1.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_passes_on_the_cpu_at_the_small_size():
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    p = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--quick"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    out = p.stdout
    assert p.returncode == 0, out + p.stderr[-2000:]
    rows = {tuple(line.split()[:3]): line for line in out.splitlines()
            if line.startswith("smollm2")}
    for check in ("build", "greedy", "loglik", "seo"):
        assert rows[("smollm2", "float32", check)].split()[3 if check != "seo" else 4] == "ok", out
    assert "135M parameters" in rows[("smollm2", "float32", "build")]
    assert "identical to model.generate" in rows[("smollm2", "float32", "greedy")]
    assert "2/2 steps" in rows[("smollm2", "float32", "seo")]
    assert any(k[2] == "tokens/s" for k in rows)
    assert out.strip().endswith("all checks passed")


def test_gpu_check_reports_a_mismatch_with_exit_1(monkeypatch, capsys):
    """A check that fails (here: a tolerance no float can meet) is a MISMATCH row
    and exit status 1; the tiny shape keeps this fast."""
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_check

    monkeypatch.setitem(gpu_check.SHAPES, "smollm2", dict(
        gpu_check.SHAPES["smollm2"], hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=4096))
    monkeypatch.setitem(gpu_check.TOLERANCE, "float32", -1.0)
    assert gpu_check.main(["--quick", "--skip-seo", "--precisions", "float32",
                           "--sizes", "smollm2"]) == 1
    out = capsys.readouterr().out
    assert "loglik        MISMATCH" in out or "MISMATCH" in out.split("loglik")[1].split("\n")[0]
    assert out.strip().endswith("MISMATCH (see above)")
