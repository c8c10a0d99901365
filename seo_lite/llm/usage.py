"""Usage accounting: what each role (generator, optimizer, ...) cost, in the fields of :class:`RoleUsage`."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass
class RoleUsage:
    calls: int = 0            # requests a model actually answered
    cache_hits: int = 0       # requests answered from the cache
    prompt_tokens: int = 0    # prompt tokens of the answered requests
    prompt_tokens_computed: int = 0   # of those, tokens the model ran (prefix sharing)
    completion_tokens: int = 0        # tokens generated
    completion_tokens_kept: int = 0   # of those, tokens a caller's parser kept (if recorded)
    seconds: float = 0.0      # wall time spent in the model
    cache_errors: int = 0     # unreadable cache entries (recomputed)


class Usage:
    """Per-role accounting, shared by every call of one LLM; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.roles: dict[str, RoleUsage] = {}

    def add(self, role: str, **delta):
        with self._lock:
            u = self.roles.setdefault(role, RoleUsage())
            for k, v in delta.items():
                setattr(u, k, getattr(u, k) + v)

    def to_dict(self) -> dict[str, dict]:
        with self._lock:
            return {r: asdict(u) for r, u in sorted(self.roles.items())}

    def total(self) -> RoleUsage:
        return RoleUsage(**add_usage({"": u} for u in self.to_dict().values()).get("", {}))

    @staticmethod
    def diff(after: dict, before: dict) -> dict:
        """Usage between two ``to_dict()`` snapshots (e.g. one SEO step)."""
        out = {}
        for role, a in after.items():
            b = before.get(role, {})
            d = {k: (round(v - b.get(k, 0), 4) if isinstance(v, float) else v - b.get(k, 0))
                 for k, v in a.items()}
            if any(d.values()):
                out[role] = d
        return out

    def __str__(self) -> str:
        rows = [f"{'role':<11}{'calls':>7}{'cached':>8}{'prompt tok':>12}{'computed':>10}"
                f"{'output tok':>12}{'seconds':>9}"]
        for role, u in self.to_dict().items():
            rows.append(f"{role:<11}{u['calls']:>7}{u['cache_hits']:>8}{u['prompt_tokens']:>12}"
                        f"{u['prompt_tokens_computed']:>10}{u['completion_tokens']:>12}"
                        f"{u['seconds']:>9.1f}")
        return "\n".join(rows)


def merge_usage(*llms) -> dict[str, dict]:
    """One usage table for several models (generator and optimizer may be one
    object; it is counted once)."""
    return add_usage(u.to_dict() for u in {id(llm.usage): llm.usage for llm in llms}.values())


def add_usage(tables) -> dict[str, dict]:
    """Per-role usage tables (``Usage.to_dict()``, a step's ``usage``) added up."""
    total: dict[str, dict] = {}
    for table in tables:
        for role, counts in table.items():
            acc = total.setdefault(role, {})
            for k, v in counts.items():
                acc[k] = acc.get(k, 0) + v
    return total
