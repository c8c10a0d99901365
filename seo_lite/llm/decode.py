"""The decode loop behind :class:`~seo_lite.llm.hf.HFLLM`: batched generation and
label log-likelihoods, with shared prefixes and length chunks.

Generation is batched: prompts are rendered with the model's chat template,
sorted by their tokens (so prompts that share a prefix sit together), cut
into batches of ``batch_size``, and our own decode loop answers a whole
batch, dropping each row as soon as it is done (``_generate_batch``).

Prefix sharing.  SEO sends many prompts that start alike: one candidate
experience over all of D_t (system prompt + instruction + the rules, then a
different example), k samples of one optimizer prompt.  Within a batch, each
run of rows that share at least ``MIN_SHARED_PREFIX`` tokens computes that
prefix once, batch size one; its key/value cache is copied into the run's
rows, and each row continues with ``padding + its own suffix`` (masked,
positions taken from the mask), so each row computes what it would alone.
A prompt of length L_i in a run of B rows sharing p tokens then costs
(L_i - p) + p / B instead of L_i; ``Completion.prompt_tokens_computed``
records it.  The suffixes run in chunks of similar length, so a short one
does not pay for the longest one's padding.

Stopping.  A row ends at its end-of-sequence token, at a stop string, after
its own ``max_new_tokens``, or where its parser can read no more: its
numbered list is over (``GenParams.stop_list_after``) or its task's answer is
(``GenParams.answer_end``: a translation's first paragraph, an "Answer:"
line, the first label word; see ``stopping.py``); the other rows go on.

Sampling.  Greedy rows take the arg max.  Rows at temperature > 0 are drawn
together by :class:`_Sampler`, each from its own generator seeded from the
request itself (``Request.sampling_seed``), so a request samples the same
text whatever batch it lands in: a resumed run reproduces an unbroken one.

``loglikelihood`` computes, for a prompt x and continuations y_1..y_L (labels),

    log p(y_j | x) = sum_t log p(y_j,t | x, y_j,<t)

with the prompt's forward pass done once: its key/value cache is repeated L
times and only the continuation tokens are run for each label.  Prompts are
grouped by shared prefix (one experience over D_t) and the prefix runs once
per group, and the suffixes run in chunks of similar length, as in generation.
"""
from __future__ import annotations

import copy
import inspect
import time

from .base import Completion, Loglikelihoods, LoglikelihoodRequest, Request
from .stopping import cut_reply, reads_text, reply_end


class _Sampler:
    """The sampled rows of a batch (temperature > 0), drawn together each step.

    A row's token is what ``torch.multinomial(nucleus, 1, generator=g)`` would
    draw, where ``nucleus`` is softmax(logits / temperature) with the tokens
    outside the top_p nucleus set to zero and ``g`` is the row's own generator,
    seeded from its request.  multinomial draws one Exp(1) number per
    vocabulary entry from ``g`` and takes argmax(nucleus / draws); that is done
    here for all rows at once (the draws stay per row, so a request samples
    the same text whatever batch it lands in).  The nucleus is looked for
    among the ``TOP_K`` most likely tokens (a partial sort) and the whole
    vocabulary is sorted only for a row whose nucleus is wider."""

    TOP_K = 256

    def __init__(self, reqs: list[Request]):
        import torch

        self.rows: dict[int, tuple] = {}              # batch row -> (generator, temperature, top_p)
        for b, r in enumerate(reqs):
            if not r.params.greedy:
                g = torch.Generator(device="cpu")
                g.manual_seed(r.sampling_seed())
                self.rows[b] = (g, r.params.temperature, r.params.top_p)

    def __call__(self, logits, active: list[int]) -> dict[int, int]:
        """``{j: token}`` for the sampled rows among ``active`` (row j of ``logits``
        answers batch row ``active[j]``)."""
        import torch

        js = [j for j, b in enumerate(active) if b in self.rows]
        if not js:
            return {}
        gens, temps, top_ps = zip(*(self.rows[active[j]] for j in js))
        x = logits[torch.tensor(js, device=logits.device)].float().cpu()
        probs = torch.softmax(x / torch.tensor(temps)[:, None], dim=-1)
        top_p = torch.tensor(top_ps)[:, None]
        cut = [i for i, p in enumerate(top_ps) if p < 1.0]
        if cut:
            probs[cut] = self._nucleus(probs[cut], top_p[cut])
        draws = torch.empty_like(probs)
        for i, g in enumerate(gens):
            draws[i].exponential_(1, generator=g)
        return dict(zip(js, (probs / draws).argmax(-1).tolist()))

    def _nucleus(self, probs, top_p):
        """``probs`` with the tokens outside each row's top_p nucleus set to zero:
        in descending order a token is kept while the mass before it is below top_p."""
        import torch

        def kept(vals, idx, top_p):
            keep = vals.cumsum(-1) - vals < top_p
            keep[:, 0] = True
            out = vals.new_zeros((vals.shape[0], probs.shape[-1])).scatter_(-1, idx, vals * keep)
            return out, keep[:, -1]

        out, last_kept = kept(*probs.topk(min(self.TOP_K, probs.shape[-1]), dim=-1), top_p)
        wide = last_kept.nonzero().flatten()             # the nucleus may go past the top k
        if len(wide) and self.TOP_K < probs.shape[-1]:
            out[wide] = kept(*torch.sort(probs[wide], dim=-1, descending=True), top_p[wide])[0]
        return out


class DecodeLoop:
    """Generation and log-likelihoods for a backend that has ``model``, ``tokenizer``,
    ``_device``, ``batch_size`` and ``ChatTokens``' calls (:class:`~seo_lite.llm.hf.HFLLM`)."""

    # -- generation -----------------------------------------------------------------
    def _generate(self, requests: list[Request]):
        """Yield ``(index, Completion)`` batch by batch (each batch is cached as
        soon as it is done); requests with the same stop strings share a batch."""
        import torch

        encoded = [self._encode(self.render(r.messages) + r.prefix) for r in requests]
        shape = lambda i: requests[i].params.stop           # stop strings are checked per batch
        order = sorted(range(len(requests)), key=lambda i: (shape(i), encoded[i]))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self.batch_size and shape(batches[-1][0]) == shape(i):
                batches[-1].append(i)
            else:
                batches.append([i])
        for b in batches:
            with torch.inference_mode():
                done = self._generate_batch([requests[i] for i in b], [encoded[i] for i in b])
            yield from zip(b, done)

    def _generate_batch(self, reqs: list[Request], ids: list[list[int]]) -> list[Completion]:
        """Answer one batch with our own decode loop, one token per row per step.

        Why not ``model.generate``: it keeps every row in the batch until the
        longest reply is done, feeding finished rows padding, and replies vary
        from a few tokens to ``max_new_tokens``; more than half of its row-steps
        were wasted.  Here a row leaves the batch as soon as it is done: its
        rows of the key/value cache, the attention mask and the token history
        are dropped, and later steps run only the rows still going.  Rows are
        laid out by :meth:`_batch_layout` and stop as the module docstring says
        (stop strings: transformers' ``StopStringCriteria``, as ``generate`` uses)."""
        import torch
        from transformers import StopStringCriteria

        tok, model, dev = self.tokenizer, self.model, self._device
        B = len(ids)
        rows, mask, past, shared, computed = self._batch_layout(ids)
        p = reqs[0].params
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        sampler = _Sampler(reqs)
        stop_strings = StopStringCriteria(tok, list(p.stop)) if p.stop else None
        watch = [reads_text(r.params) for r in reqs]

        seq = torch.tensor(rows, device=dev)          # the prompts; then, for stop strings, the replies
        mask = torch.tensor(mask, device=dev)
        pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        step_ids, step_pos = None, pos[:, -1:]        # the next forward's input, after the prompts
        active = list(range(B))                       # batch row j answers reqs[active[j]]
        tokens: list[list[int]] = [[] for _ in range(B)]
        finish = ["length"] * B
        t0 = time.perf_counter()
        for step in range(max(r.params.max_new_tokens for r in reqs)):
            if step == 0:                             # the prompts, in chunks of similar length
                logits, past = self._prefill(seq, mask, pos, past, shared)
            else:
                out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos,
                            use_cache=True, logits_to_keep=1, **{_cache_kw(model): past})
                past = _cache_of(out)
                logits = out.logits[:, -1].float()
            chosen = logits.argmax(-1).tolist()
            for j, t in sampler(logits, active).items():
                chosen[j] = t
            for j, b in enumerate(active):
                tokens[b].append(chosen[j])
            step_ids = torch.tensor(chosen, device=dev)[:, None]
            if stop_strings:
                seq = torch.cat([seq, step_ids], dim=1)
                hit_stop = stop_strings(seq, None).tolist()
            else:
                hit_stop = [False] * len(active)
            keep = []
            for j, b in enumerate(active):
                if chosen[j] in eos_ids or (watch[b] and reply_end(
                        reqs[b].prefix + tok.decode(tokens[b], skip_special_tokens=True),
                        reqs[b].params, scan=False) is not None):
                    finish[b] = "stop"
                elif not hit_stop[j] and len(tokens[b]) < reqs[b].params.max_new_tokens:
                    keep.append(j)                    # still going
            if not keep:
                break
            if len(keep) < len(active):               # drop the finished rows
                idx = torch.tensor(keep, device=dev)
                past.batch_select_indices(idx)
                seq, step_ids, mask, step_pos = seq[idx], step_ids[idx], mask[idx], step_pos[idx]
                active = [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            step_pos = step_pos[:, -1:] + 1
        latency = (time.perf_counter() - t0) / B

        results = []
        for b, (r, prompt) in enumerate(zip(reqs, ids)):
            text = r.prefix + tok.decode(tokens[b], skip_special_tokens=True)
            for s in p.stop:
                if s in text:
                    text, finish[b] = text[: text.index(s)], "stop"
            text, cut = cut_reply(text, r.params)
            finish[b] = "stop" if cut else finish[b]
            results.append(Completion(text=text.strip(), prompt_tokens=len(prompt),
                                      completion_tokens=len(tokens[b]), latency_s=latency,
                                      finish_reason=finish[b], prompt_tokens_computed=computed[b]))
        return results

    def _prefill(self, seq, mask, pos, past, shared: int):
        """The batch's prompt tokens after the shared prefixes (in ``past``):
        each row's last-position logits and the key/value cache in the
        batch's layout.  Suffixes are right-aligned, so one forward pass over
        all rows pays for the longest one's padding in every row; rows of
        similar length run together instead (:func:`_length_chunks`) and their
        caches are put back into the batch's layout (the columns a chunk did
        not need are masked padding)."""
        import torch
        from transformers import DynamicCache

        model, kw = self.model, _cache_kw(self.model)
        B, W = seq.shape
        lengths = mask[:, shared:].sum(-1).tolist()
        chunks = _length_chunks(lengths)
        if len(chunks) == 1:
            out = model(input_ids=seq[:, shared:], attention_mask=mask, position_ids=pos[:, shared:],
                        use_cache=True, logits_to_keep=1, **{kw: past})
            return out.logits[:, -1].float(), _cache_of(out)
        logits, parts = None, []
        for rows in chunks:
            idx = torch.tensor(rows, device=seq.device)
            width = max(lengths[i] for i in rows)
            cols = torch.cat([torch.arange(shared, device=seq.device),
                              torch.arange(W - width, W, device=seq.device)])
            sub = None if past is None else DynamicCache(
                ddp_cache_data=[(l.keys[idx], l.values[idx]) for l in past.layers],
                config=model.config)
            out = model(input_ids=seq[idx][:, W - width:], attention_mask=mask[idx][:, cols],
                        position_ids=pos[idx][:, W - width:], use_cache=True, logits_to_keep=1,
                        **{kw: sub})
            last = out.logits[:, -1].float()
            if logits is None:
                logits = last.new_empty((B, last.shape[-1]))
            logits[idx] = last
            parts.append((idx, width, _cache_of(out)))
        pieces = []
        for idx, width, cache in parts:       # prefix columns, then the chunk's own columns
            pieces += [(idx, cache, slice(0, shared), slice(0, shared)),
                       (idx, cache, slice(shared, None), slice(W - width, W))]
        return logits, _assemble_cache(pieces, B, W, model.config)

    def _batch_layout(self, ids: list[list[int]]):
        """Token rows, attention mask, key/value cache of the shared prefixes,
        their width and the prompt tokens computed per row, for one batch.

        Rows are cut into runs that share a prompt prefix of at least
        ``MIN_SHARED_PREFIX`` tokens (the instruction, or the instruction and
        one experience: all of D_t for one candidate); each run's prefix runs
        once (batch of one) and its key/value cache is copied into the rows of
        the run.  A row is ``padding + its run's prefix + padding + own
        suffix``, right-aligned in both parts; padding is masked out.  Rows
        without a run share nothing and are simply left-padded."""
        import torch

        pad = self.tokenizer.pad_token_id
        groups = _prefix_groups(ids, self.MIN_SHARED_PREFIX) if len(ids) > 1 else [[0]]
        plen = [0] * len(ids)
        for g in groups:
            if len(g) > 1:
                p = _common_prefix_all([ids[i] for i in g])
                for i in g:
                    plen[i] = p if p >= self.MIN_SHARED_PREFIX else 0
        P = max(plen)
        S = max(len(x) - q for x, q in zip(ids, plen))
        rows, mask, computed = [], [], []
        for x, q in zip(ids, plen):
            suffix = x[q:]
            rows.append([pad] * (P - q) + x[:q] + [pad] * (S - len(suffix)) + suffix)
            mask.append([0] * (P - q) + [1] * q + [0] * (S - len(suffix)) + [1] * len(suffix))
            computed.append(len(suffix))
        if not P:
            return rows, mask, None, 0, computed
        pieces = []
        for g in groups:
            q = plen[g[0]]
            if q:
                kv, fresh = self._prefix_cache(ids[g[0]][:q])
                computed[g[0]] += fresh            # the prefix ran once (or not at all)
                pieces.append((torch.tensor(g, device=self._device), kv, slice(0, q),
                               slice(P - q, P)))
        return rows, mask, _assemble_cache(pieces, len(ids), P, self.model.config), P, computed

    def _prefix_cache(self, prefix: list[int]):
        """Key/value cache of ``prefix`` (batch of one) and how many tokens were
        computed for it now; the last one is kept, so consecutive batches with
        the same prefix compute it once."""
        import torch

        if self._prefix_memo is None or self._prefix_memo[0] != prefix:
            out = self.model(input_ids=torch.tensor([prefix], device=self._device), use_cache=True,
                             logits_to_keep=1)
            self._prefix_memo = (list(prefix), _cache_of(out))
            return self._prefix_memo[1], len(prefix)
        return self._prefix_memo[1], 0

    # -- log-likelihoods of fixed continuations ----------------------------------------------------------------
    MIN_SHARED_PREFIX = 8       # tokens; shorter common prefixes are not worth a cache copy

    def _loglikelihood(self, requests: list[LoglikelihoodRequest]):
        """Yield ``(index, Loglikelihoods)`` batch by batch: prompts sorted by their
        tokens, cut into groups that share a long prefix (one candidate's D_t) and
        each group into batches of ``batch_size``, as the module docstring says.
        Weights are read once per chunk instead of once per example and label."""
        import torch

        inputs = [self._loglikelihood_inputs(r) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: inputs[i][0])
        for group in _prefix_groups([inputs[i][0] for i in order], self.MIN_SHARED_PREFIX):
            members = [order[g] for g in group]
            shared = _common_prefix_all([inputs[i][0] for i in members])
            p = shared if shared >= self.MIN_SHARED_PREFIX else 0
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                items = [inputs[i] for i in batch]
                answers: list = [None] * len(items)
                with torch.inference_mode():
                    kv, fresh = self._prefix_cache(items[0][0][:p]) if p else (None, 0)
                    for rows in _length_chunks([len(prompt) - p for prompt, _ in items]):
                        chunk = self._loglikelihood_chunk([items[j] for j in rows], p, kv)
                        for j, answer in zip(rows, chunk):
                            answers[j] = answer
                answers[0].prompt_tokens_computed += fresh
                yield from zip(batch, answers)

    def _loglikelihood_chunk(self, items, p: int, prefix_cache) -> list[Loglikelihoods]:
        """Log-likelihoods for (prompt, continuations) rows of similar length whose first
        ``p`` prompt tokens are in ``prefix_cache`` (``p=0``: none): one right-padded pass
        over the suffixes, then one over the labels' further tokens."""
        import torch

        t0 = time.perf_counter()
        dev, pad = self._device, self.tokenizer.pad_token_id
        B = len(items)
        suffix = [prompt[p:] for prompt, _ in items]
        S = max(len(x) for x in suffix)
        past = None
        if prefix_cache is not None:
            past = copy.deepcopy(prefix_cache)
            past.batch_select_indices(torch.zeros(B, dtype=torch.long, device=dev))
        last_pos = [len(x) - 1 for x in suffix]
        keep = sorted(set(last_pos))
        out = self.model(
            input_ids=torch.tensor([x + [pad] * (S - len(x)) for x in suffix], device=dev),
            attention_mask=torch.tensor([[1] * (p + len(x)) + [0] * (S - len(x)) for x in suffix],
                                        device=dev),
            position_ids=torch.tensor([list(range(p, p + S))] * B, device=dev),
            use_cache=True, logits_to_keep=torch.tensor(keep, device=dev),
            **{_cache_kw(self.model): past})
        logp_last = torch.log_softmax(out.logits.float(), dim=-1)
        totals = []
        for b, (_, conts) in enumerate(items):
            row = logp_last[b, keep.index(last_pos[b])]
            totals.append([float(row[c[0]]) for c in conts])
        multi = [(b, j) for b, (_, conts) in enumerate(items) for j, c in enumerate(conts) if len(c) > 1]
        if multi:
            cache = _cache_of(out)
            cache.batch_select_indices(torch.tensor([b for b, _ in multi], device=dev))
            W = max(len(items[b][1][j]) for b, j in multi) - 1
            body, mask, pos = [], [], []
            for b, j in multi:
                c, n = items[b][1][j], len(suffix[b])
                body.append(c[:-1] + [pad] * (W - len(c) + 1))
                mask.append([1] * (p + n) + [0] * (S - n) + [1] * (len(c) - 1) + [0] * (W - len(c) + 1))
                pos.append(list(range(p + n, p + n + W)))
            logits = self.model(input_ids=torch.tensor(body, device=dev),
                                attention_mask=torch.tensor(mask, device=dev),
                                position_ids=torch.tensor(pos, device=dev),
                                use_cache=True, **{_cache_kw(self.model): cache}).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for r, (b, j) in enumerate(multi):
                c = items[b][1][j]
                for t in range(1, len(c)):
                    totals[b][j] += float(logp[r, t - 1, c[t]])
        latency = (time.perf_counter() - t0) / B
        return [Loglikelihoods(logprobs=totals[b], token_counts=[len(c) for c in items[b][1]],
                       prompt_tokens=len(items[b][0]), latency_s=latency,
                       prompt_tokens_computed=len(suffix[b])) for b in range(B)]

    def loglikelihood_unshared(self, r: LoglikelihoodRequest) -> Loglikelihoods:
        """Reference implementation: one full forward per label (for tests and
        the benchmark that measures what sharing the prompt saves)."""
        import torch

        prompt, conts = self._loglikelihood_inputs(r)
        t0 = time.perf_counter()
        totals = []
        with torch.inference_mode():
            for c in conts:
                ids = torch.tensor([prompt + c], device=self._device)
                logp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), dim=-1)
                totals.append(sum(float(logp[len(prompt) - 1 + t, c[t]]) for t in range(len(c))))
        return Loglikelihoods(logprobs=totals, token_counts=[len(c) for c in conts],
                      prompt_tokens=len(prompt), latency_s=time.perf_counter() - t0)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _common_prefix_all(seqs: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one of its own."""
    n = min(len(x) for x in seqs) - 1
    first = seqs[0]
    for x in seqs[1:]:
        n = min(n, _common_prefix(first, x))
    return max(n, 0)


def _prefix_groups(sorted_prompts: list[list[int]], min_drop: int) -> list[list[int]]:
    """Cut prompts sorted by their tokens into runs that share a prefix (one
    experience over D_t).  In sorted order a run's common prefix is the
    smallest common prefix of neighbours; a new run starts where that would
    shrink by ``min_drop`` tokens or more, or where the next pair shares
    ``min_drop`` more tokens than this one (a tighter run begins)."""
    n = len(sorted_prompts)
    lcp = [0] + [_common_prefix(sorted_prompts[i - 1], sorted_prompts[i]) for i in range(1, n)]
    groups: list[list[int]] = [[0]] if n else []
    common = None                                   # None: the run has one member
    for i in range(1, n):
        nxt = lcp[i + 1] if i + 1 < n else 0
        if (common is not None and common - lcp[i] >= min_drop) or nxt - lcp[i] >= min_drop:
            groups.append([i])
            common = None
        else:
            groups[-1].append(i)
            common = lcp[i] if common is None else min(common, lcp[i])
    return groups


def _length_chunks(lengths: list[int], waste: float = 1.3) -> list[list[int]]:
    """Row indices in runs of similar length (ascending): a run grows while its
    rows padded to its longest cost at most ``waste`` times their own tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks: list[list[int]] = []
    for i in order:
        if chunks:
            run = chunks[-1]
            real = sum(lengths[j] for j in run) + lengths[i]
            if (len(run) + 1) * lengths[i] <= waste * real:
                run.append(i)
                continue
        chunks.append([i])
    return chunks


def _assemble_cache(pieces, n_rows: int, width: int, config):
    """A key/value cache of ``n_rows`` rows and ``width`` columns: zeros (masked
    padding) except where a piece ``(rows, cache, src, dst)`` copies columns
    ``src`` of ``cache`` (one row per row of ``rows``, or one row for all) into
    columns ``dst`` of ``rows``."""
    from transformers import DynamicCache

    layers = []
    for n, layer in enumerate(pieces[0][1].layers):
        k0 = layer.keys                                # (rows, heads, length, dim)
        keys = k0.new_zeros((n_rows, k0.shape[1], width, k0.shape[3]))
        values = k0.new_zeros((n_rows, k0.shape[1], width, k0.shape[3]))
        for rows, cache, src, dst in pieces:
            keys[rows, :, dst] = cache.layers[n].keys[:, :, src]
            values[rows, :, dst] = cache.layers[n].values[:, :, src]
        layers.append((keys, values))
    return DynamicCache(ddp_cache_data=layers, config=config)


def _cache_kw(model) -> str:
    """The forward/generate argument that takes a key/value cache: ``cache``
    since transformers 5.x (``past_key_values`` is deprecated there and warns),
    ``past_key_values`` before."""
    name = getattr(model, "_seo_lite_cache_kw", None)
    if name is None:
        params = inspect.signature(model.forward).parameters
        name = "cache" if "cache" in params else "past_key_values"
        model._seo_lite_cache_kw = name
    return name


def _cache_of(out):
    kv = getattr(out, "cache", None)
    return kv if kv is not None else out.past_key_values

