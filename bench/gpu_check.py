"""The GPU path in one command, downloading nothing: ``python bench/gpu_check.py``.

Needs only torch and transformers (and bitsandbytes, where it imports, for
the 4-bit rows).  No weights and no tokenizer are fetched: the models are
Llama-shaped with random weights, built from a config,

* ``smollm2`` -- SmolLM2-135M's shape (576 wide, 30 layers, 9 heads / 3
  key-value heads, 49,152-token vocabulary, tied embeddings);
* ``llama2-7b`` -- Llama-2-7B's shape (4096 wide, 32 layers, 32 heads,
  32,000 tokens); CUDA only,

and the tokenizer is a byte-level BPE trained here, in code, on the texts of
``data/`` (it knows ~4k tokens; ids above that, which a random model may
still emit, decode to nothing).  Each model runs through seo_lite's own
backend (:class:`~seo_lite.llm.hf.HFLLM`) and is checked:

1. ``greedy``: the decode loop's greedy tokens (batched, rows sharing a
   prefix, rows leaving early) equal ``model.generate``'s for each prompt
   alone.  A random model has near-ties: where the two first differ, the two
   tokens' logits (one unbatched forward) must be within the dtype's
   tolerance, or it is a mismatch;
2. ``loglik``: label log-likelihoods with the shared prefix equal one full
   forward per label (``loglikelihood_unshared``) within the dtype's tolerance;
3. ``speed``: generated tokens/s at batch 1, 8 and 32, and peak GPU memory
   (timings: whatever else runs on the machine counts);
4. ``seo``: a ``smoke`` SEO run end to end (SST-2, label ranking, the
   rule-bank optimizer): every step recorded.

On CUDA: fp16 or bf16 (what the GPU supports) and 4-bit NF4, both sizes.  On
a machine without a GPU: the small model in float32 on the CPU (the test
suite runs it so, ``--quick``).  It prints one table and exits 1 on any
mismatch.  ``--sizes``, ``--precisions``, ``--batches`` narrow it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPES = {
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                    max_position_embeddings=8192, rope_theta=100000.0, tie_word_embeddings=True),
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
                      max_position_embeddings=4096, rope_theta=10000.0, tie_word_embeddings=False),
}
# how far apart two logits or log-likelihoods may be and still count as equal
TOLERANCE = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 2e-1, "4bit": 2e-1}


def build_tokenizer(vocab: int = 4096):
    """A byte-level BPE trained on the repository's data files (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = []
    for f in sorted((REPO / "data").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines()[:200]:
            row = json.loads(line)
            texts += [v for v in row.values() if isinstance(v, str) and len(v) > 20]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")


def build_backend(shape: str, precision: str, device: str, folder: Path, seed: int = 0):
    """An HFLLM around a random-weight model of ``shape`` (4-bit: saved, then
    loaded through bitsandbytes, as a Hub checkpoint would be)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from seo_lite.llm.hf import HFLLM
    from seo_lite.llm.hf_loading import _Loaded

    tok = build_tokenizer()
    config = LlamaConfig(**SHAPES[shape], bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    dtype = torch.float32 if precision in ("float32", "4bit") and device == "cpu" else (
        torch.float16 if precision in ("float16", "4bit") else getattr(torch, precision))
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    tok.padding_side = "left"
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)
    if precision == "4bit":
        model.save_pretrained(folder)
        del model
        llm = HFLLM(str(folder), load_in_4bit=True, cache=None)
        return llm.load()
    config.save_pretrained(folder)
    llm = HFLLM(str(folder), dtype=str(dtype).replace("torch.", ""), cache=None,
                device_map=device)
    llm._loaded = _Loaded(model, tok)
    return llm


# -- the checks -----------------------------------------------------------------------------
PROMPTS = ["Classify the sentiment of the review: a gripping, humane film.",
           "Classify the sentiment of the review: dull and far too long.",
           "Classify the sentiment of the review: the cast is wonderful.",
           "Which city is the capital of France?",
           "Translate to German: the house is small.",
           "Classify the sentiment of the review: an ending I will not forget."]


def check_greedy(llm, tol: float, new_tokens: int) -> tuple[bool, str]:
    """The decode loop on all prompts in one batch (sorted, so rows that share a
    prefix compute it once) vs ``model.generate`` on each prompt alone."""
    import torch

    from seo_lite.llm import GenParams, Request

    reqs = [Request([{"role": "user", "content": p}], GenParams(max_new_tokens=new_tokens))
            for p in sorted(PROMPTS)]
    ids = sorted(llm._encode(llm.render(r.messages)) for r in reqs)
    model, tok = llm.model, llm.tokenizer
    ours, decode = [], tok.decode             # the loop decodes each row's tokens once, in order
    tok.decode = lambda t, **kw: ours.append(list(t)) or decode(t, **kw)
    try:
        with torch.inference_mode():
            llm._generate_batch(reqs, ids)
    finally:
        del tok.decode
    ties, worst = 0, 0.0
    for prompt, mine in zip(ids, ours):
        x = torch.tensor([prompt], device=llm._device)
        with torch.inference_mode():
            ref = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                                 max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)
        ref = ref[0, len(prompt):].tolist()
        if mine == ref:
            continue
        t = next((i for i, (a, b) in enumerate(zip(mine, ref)) if a != b), None)
        if t is None:                        # one stopped at an end token, the other did not
            return False, f"lengths differ: {len(mine)} vs {len(ref)} tokens"
        with torch.inference_mode():         # a near-tie in this dtype, or a real difference?
            logits = model(input_ids=torch.tensor([prompt + ref[:t]], device=llm._device)).logits
        gap = abs(float(logits[0, -1, mine[t]]) - float(logits[0, -1, ref[t]]))
        worst = max(worst, gap)
        if gap > tol:
            return False, f"token {t} differs, logit gap {gap:.3g} > {tol:g}"
        ties += 1
    if len(ours) != len(ids):
        return False, f"{len(ours)} rows decoded for {len(ids)} prompts"
    return True, (f"{len(ids)} prompts x {new_tokens} tokens identical to model.generate"
                  + (f" but {ties} near-tie(s), logit gap <= {worst:.2g}" if ties else ""))


def check_loglik(llm, tol: float) -> tuple[bool, str]:
    from seo_lite.llm import LoglikelihoodRequest

    system = {"role": "system", "content": "Rules: 1. Read the whole review. 2. Mind negations."}
    reqs = [LoglikelihoodRequest([system, {"role": "user", "content": p}],
                                 ("negative", "positive", "very positive"))
            for p in PROMPTS]
    shared = llm.loglikelihood(reqs)
    worst = 0.0
    for r, s in zip(reqs, shared):
        ref = llm.loglikelihood_unshared(r)
        worst = max(worst, max(abs(a - b) for a, b in zip(s.logprobs, ref.logprobs)))
    saved = sum(s.prompt_tokens - (s.prompt_tokens_computed or 0) for s in shared)
    return worst <= tol, f"max |diff| {worst:.2g} (tol {tol:g}); {saved} prompt tokens shared"


def measure_speed(llm, batch: int, new_tokens: int) -> tuple[float, str]:
    import torch

    from seo_lite.llm import GenParams, Request

    reqs = [Request([{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}],
                    GenParams(max_new_tokens=new_tokens)) for i in range(batch)]
    cuda = llm._device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    llm.batch_size = batch
    t0 = time.perf_counter()
    out = llm.generate(reqs)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    made = sum(c.completion_tokens for c in out)
    memory = (f"peak {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB" if cuda
              else "CPU (no GPU memory)")
    return made / seconds, f"{made} tokens in {seconds:.2f} s; {memory}"


def check_seo(llm) -> tuple[bool, str]:
    from seo_lite.llm import make_llm
    from seo_lite.machinery.training import train
    from seo_lite.method.config import SEOConfig

    config = SEOConfig.preset("smoke", task="sst2", answer_mode="rank", optimizer="rulebank")
    run = train(config, generator=llm, optimizer=make_llm("rulebank", cache=None), progress=False)
    ok = len(run.steps) == config.steps and all(s.candidates for s in run.steps)
    accepted = sum(s.decision.accepted for s in run.steps)
    return ok, f"{len(run.steps)}/{config.steps} steps, {accepted} accepted, E_T {len(run.experience.rules)} rules"


# -- the table --------------------------------------------------------------------------------
def settings(args, cuda: bool, bnb: bool) -> list[tuple[str, str]]:
    import torch

    sizes = args.sizes or (list(SHAPES) if cuda else ["smollm2"])
    if args.precisions:
        precisions = args.precisions
    elif cuda:
        precisions = ["bfloat16" if torch.cuda.is_bf16_supported() else "float16"] + (
            ["4bit"] if bnb else [])
    else:
        precisions = ["float32"]
    return [(s, p) for s in sizes for p in precisions]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", choices=list(SHAPES))
    ap.add_argument("--precisions", nargs="*", choices=list(TOLERANCE))
    ap.add_argument("--batches", default="1,8,32", help="batch sizes for tokens/s")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--quick", action="store_true",
                    help="fewer tokens and batches 1,8 (the test suite's CPU run)")
    ap.add_argument("--skip-seo", action="store_true")
    args = ap.parse_args(argv)

    import torch

    try:
        import bitsandbytes  # noqa: F401
        bnb = True
    except Exception:                        # not installed, or no usable GPU build
        bnb = False
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    new_tokens = 8 if args.quick else args.new_tokens
    batches = [1, 8] if args.quick else [int(b) for b in args.batches.split(",")]
    print(f"gpu_check: torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda else "")
          + f", bitsandbytes {'yes' if bnb else 'no'}; random weights, tokenizer built in code")
    rows, failed = [], False
    for shape, precision in settings(args, cuda, bnb):
        if precision == "4bit" and not bnb:
            rows.append((shape, precision, "all", "skip", "bitsandbytes does not import"))
            continue
        if shape == "llama2-7b" and not cuda:
            rows.append((shape, precision, "all", "skip", "needs a GPU"))
            continue
        tol = TOLERANCE[precision]
        with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
            t0 = time.perf_counter()
            llm = build_backend(shape, precision, device, Path(tmp) / shape)
            params = sum(p.numel() for p in llm.model.parameters())
            rows.append((shape, precision, "build", "ok",
                         f"{params / 1e6:,.0f}M parameters in {time.perf_counter() - t0:.1f} s"))
            checks = [("greedy", lambda: check_greedy(llm, tol, new_tokens)),
                      ("loglik", lambda: check_loglik(llm, tol))]
            if not args.skip_seo:
                checks.append(("seo smoke", lambda: check_seo(llm)))
            for name, run in checks:
                try:
                    ok, detail = run()
                except Exception as e:       # a crash is a failed check, reported in the table
                    ok, detail = False, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                failed |= not ok
                rows.append((shape, precision, name, "ok" if ok else "MISMATCH", detail))
            for b in batches:
                rate, detail = measure_speed(llm, b, new_tokens)
                rows.append((shape, precision, f"tokens/s b={b}", f"{rate:,.1f}", detail))
            del llm
            if cuda:
                torch.cuda.empty_cache()
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(5)]
    for r in [HEADER] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip())
    print("gpu_check: " + ("MISMATCH (see above)" if failed else "all checks passed"))
    return 1 if failed else 0


HEADER = ("model", "precision", "check", "result", "detail")

if __name__ == "__main__":
    sys.exit(main())
