"""Calibrating label scores: divide out the model's label prior.

Under label ranking the model gives, for an example x and each label y of the
label set Y, a summed log-probability log p(y | prompt(x)).  Normalised over
the label set these are a distribution

    p(y | x) = exp(log p(y | prompt(x))) / sum_{y' in Y} exp(log p(y' | prompt(x)))

and the uncalibrated answer is argmax_y p(y | x).  A small model has a strong
*prior* over labels (SmolLM2-135M says "abbreviation" to nearly every TREC
question): the prompt favours one label whatever the input.  Calibration
estimates that prior pi(y) and divides it out,

    q(y | x) = (p(y | x) / pi(y)) / sum_{y'} (p(y' | x) / pi(y')),

answer = argmax_y q(y | x).  Two estimates of pi, both computed under the
*same* instruction and experience as the example (rules move the prior too):

* ``"contextual"`` (Zhao et al. 2021, "Calibrate Before Use"): the mean label
  distribution of content-free inputs, the example slot filled with "N/A",
  "" and "[MASK]" (:data:`CONTENT_FREE_INPUTS`):

      pi(y) = 1/|C| * sum_{c in C} p(y | c);

* ``"batch"`` (Zhou et al. 2023, "Batch Calibration"): the mean label
  distribution over the examples scored *together*:

      pi(y) = 1/|B| * sum_{x in B} p(y | x).

  "Together" means: one call of ``Task.predict_pairs`` (or ``Task.predict``),
  the pairs grouped by experience (same rules, or none), each distinct example
  counted once.  In SEO that is, for a candidate's validation, all of D_t
  under that candidate; for an evaluation, the whole split under E (and,
  separately, the split without E); for the trials, the mini-batch B_t with
  E_t (and, separately, B_t without E_t).  So a batch-calibrated answer
  depends on the other examples of its group, and a small group (a mini-batch
  of 2) gives a noisy prior.

``"none"`` leaves the distribution as it is (the argmax of the raw log-probs).
Everything is done in log space, so a prior that underflows in probability
space still divides out.
"""
from __future__ import annotations

import math
from typing import Sequence

CALIBRATIONS = ("none", "contextual", "batch")

# Zhao et al. 2021 average over several content-free strings; these three are theirs.
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def _logsumexp(xs: Sequence[float]) -> float:
    m = max(xs)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(x - m) for x in xs))


def log_normalize(logprobs: Sequence[float]) -> list[float]:
    """log p(y | x) normalised over the label set (a log-softmax)."""
    z = _logsumexp(logprobs)
    return [x - z for x in logprobs]


def log_prior(rows: Sequence[Sequence[float]]) -> list[float]:
    """log pi(y): the mean of the rows' label distributions (in probability
    space), returned as log-probabilities.  ``rows`` are raw label log-probs."""
    if not rows:
        raise ValueError("a prior needs at least one row of label log-probabilities")
    normed = [log_normalize(r) for r in rows]
    k = len(normed[0])
    if any(len(r) != k for r in normed):
        raise ValueError("every row needs one log-probability per label")
    n = math.log(len(normed))
    return [_logsumexp([r[j] for r in normed]) - n for j in range(k)]


def calibrate(logprobs: Sequence[float], prior_log: Sequence[float]) -> list[float]:
    """q(y | x) ∝ p(y | x) / pi(y), normalised over the labels."""
    if len(logprobs) != len(prior_log):
        raise ValueError(f"{len(logprobs)} label log-probs for a prior over {len(prior_log)} labels")
    return [math.exp(x) for x in log_normalize([a - b for a, b in zip(log_normalize(logprobs), prior_log)])]


def argmax(values: Sequence[float]) -> int:
    """The first index of the largest value (ties go to the earlier label, as
    with uncalibrated scoring)."""
    return max(range(len(values)), key=lambda i: values[i])


STORED_DECIMALS = 4      # a prediction keeps its scores to 4 decimals


def decide(logprobs: Sequence[float], prior_log: Sequence[float] | None = None
           ) -> tuple[int, list[float], list[float] | None, list[float] | None]:
    """The answer's label index and the rows a prediction stores: the raw
    log-probs, the prior pi(y) and the calibrated q(y | x) (these two None
    without a prior), all rounded to :data:`STORED_DECIMALS`.  The answer is
    the argmax of the *stored* row (q with a prior, the raw log-probs without),
    so a reader who takes the argmax of a logged row finds the logged answer;
    a tie after rounding goes to the earlier label."""
    r = lambda xs: [round(x, STORED_DECIMALS) for x in xs]
    raw = r(logprobs)
    if prior_log is None:
        return argmax(raw), raw, None, None
    probs = r(calibrate(logprobs, prior_log))
    return argmax(probs), raw, r(math.exp(x) for x in prior_log), probs


__all__ = ["CALIBRATIONS", "CONTENT_FREE_INPUTS", "log_normalize",
           "log_prior", "calibrate", "argmax", "decide"]
