"""Bootstrap confidence intervals and paired comparisons.

A score on 100 test examples is an estimate.  We report it with a percentile
bootstrap interval: resample the per-example scores with replacement B
times, take the mean of each resample, and read the alpha/2 and 1 - alpha/2
quantiles.  "With experience vs without" is a *paired* comparison (the same
examples answered twice), so its interval resamples the per-example
differences d_i = s_i(with) - s_i(without), which is far tighter than two
separate intervals.  Several seeds aggregate as mean and the spread of the
per-seed means.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def to_dict(self) -> dict:
        return asdict(self)


def _quantile(sorted_vals: Sequence[float], q: float) -> float:
    if not sorted_vals:
        return math.nan
    pos = q * (len(sorted_vals) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 1000, confidence: float = 0.95,
                 seed: int = 0) -> Estimate:
    """Mean of ``values`` with a percentile-bootstrap interval."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, confidence)
    mean = sum(vals) / n
    if n_boot <= 0 or n == 1:
        return Estimate(mean, mean, mean, n, confidence)
    rng = random.Random(seed)
    means = sorted(sum(vals[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    alpha = 1 - confidence
    return Estimate(mean, _quantile(means, alpha / 2), _quantile(means, 1 - alpha / 2), n, confidence)


@dataclass(frozen=True)
class PairedComparison:
    a: Estimate          # e.g. with experience
    b: Estimate          # e.g. without
    diff: Estimate       # a - b, paired bootstrap
    wins: int            # examples where a > b
    losses: int
    ties: int

    @property
    def significant(self) -> bool:
        """The interval of the difference excludes 0."""
        return self.diff.low > 0 or self.diff.high < 0

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "diff": self.diff.to_dict(),
                "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "significant": self.significant}


def paired_comparison(a: Sequence[float], b: Sequence[float], *, n_boot: int = 1000,
                      confidence: float = 0.95, seed: int = 0) -> PairedComparison:
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    kw = dict(n_boot=n_boot, confidence=confidence, seed=seed)
    return PairedComparison(bootstrap_ci(a, **kw), bootstrap_ci(b, **kw), bootstrap_ci(d, **kw),
                            sum(x > 0 for x in d), sum(x < 0 for x in d), sum(x == 0 for x in d))


def across_seeds(means: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Several runs (seeds) of one setting: their mean and a t-interval."""
    vals = [float(m) for m in means]
    point = bootstrap_ci(vals, n_boot=0, confidence=confidence)    # the mean, no interval
    if point.n < 2:
        return point
    n, mean = point.n, point.mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    # two-sided t quantiles for 95% (enough seeds are rarely more than 10)
    t = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306,
         10: 2.262}.get(n, 1.96) if abs(confidence - 0.95) < 1e-9 else 1.96
    half = t * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, confidence)
