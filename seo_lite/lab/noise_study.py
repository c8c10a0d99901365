"""How noisy is v(E) on a small validation set?  Chapter 04's study.

Step 4 of SEO scores every candidate on a fresh random D_t.  Repeating that
draw many times for fixed experiences shows how much

    v(E) = 1/|D_t| * sum_{x in D_t} metric(M_gen(x; E), x)

moves from draw to draw (its spread falls like 1/sqrt(|D_t|)), and how often
the better experience (by its mean over the whole pool) wins on one draw:
the chance that selection keeps the right one.
"""
from __future__ import annotations

import random
import statistics
from typing import Any, Sequence

from ..method.seo import sample_validation_set, score_experiences


def validation_noise(task, generator, pool, experiences: dict[str, Any], sizes: Sequence[int],
                     draws: int, *, seed: int = 0, exclude=(), progress: bool = False) -> dict:
    """Score each experience on ``draws`` fresh random validation sets of each size.

    This is step 4 of SEO repeated: ``sample_validation_set`` then
    ``score_experiences``, many times.  With a cache, a draw that repeats
    examples costs no model call."""
    names = list(experiences)
    exps = [experiences[n] for n in names]
    rng = random.Random(f"noise:{seed}")
    rest = [ex for ex in pool if ex.id not in {e.id for e in exclude}]
    results = {"task": task.name, "models": f"generator {generator.name}",
               "sizes": [int(s) for s in sizes], "draws": int(draws), "experiences": names,
               "rules": {n: list(getattr(e, "rules", ()) or ()) for n, e in experiences.items()},
               "pool": len(rest), "scores": {}, "seed": seed}
    for size in sizes:
        per = {n: [] for n in names}
        for _ in range(draws):
            d_t = sample_validation_set(pool, int(size), rng, exclude)
            scores = score_experiences(task, generator, exps, d_t, progress=progress)
            for n, s in zip(names, scores):
                per[n].append(sum(s) / len(s))
        results["scores"][str(size)] = per
    full = score_experiences(task, generator, exps, rest)
    results["pool_means"] = {n: sum(s) / len(s) for n, s in zip(names, full)}
    return results


def noise_summary(results: dict) -> list[dict]:
    """Per |D_t|: mean and standard deviation of v(E) across draws for each
    experience, and (with two experiences) how often the better one wins."""
    names = results["experiences"]
    rows = []
    best = max(names, key=lambda n: results["pool_means"][n]) if len(names) > 1 else None
    for size in results["sizes"]:
        per = results["scores"][str(size)]
        row = {"size": size}
        for n in names:
            row[f"{n} mean"] = statistics.fmean(per[n])
            row[f"{n} sd"] = statistics.stdev(per[n]) if len(per[n]) > 1 else 0.0
        if best is not None:
            others = [n for n in names if n != best]
            wins = [all(per[best][i] > per[o][i] for o in others) for i in range(results["draws"])]
            row["better wins"] = sum(wins) / len(wins)
        rows.append(row)
    return rows
