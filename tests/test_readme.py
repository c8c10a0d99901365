"""The README's promises: its test command is what CI runs, its code examples run."""
from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    return [ln for ln in block.splitlines() if ln and not ln.startswith("#")]


def test_first_screen_has_two_commands_and_ci_runs_the_test_one():
    run_cmd, test_cmd = _commands()
    assert "seo-lite run" in run_cmd and "pytest" in test_cmd
    assert README.index(run_cmd) < 2500, "the commands are on the first screen"
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_cmd, ".ci/run must run exactly the README's test command"


def test_own_task_example_runs(tmp_path, monkeypatch):
    code = re.search(r"### Your own task\n\n```python\n(.*?)```", README, re.S).group(1)
    rows = [{"id": f"c{i}", "input": c, "answers": [a]} for i, (c, a) in
            enumerate([("France", "Paris"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Kenya", "Nairobi")])]
    (tmp_path / "capitals.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv("SEO_LITE_DATA", str(tmp_path))
    from seo_lite.tasks import registry

    monkeypatch.setattr(registry, "_USER", {})
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    from seo_lite.machinery.data import load_splits
    from seo_lite.tasks import get_task

    task = get_task("capitals")
    splits = load_splits("capitals", train=2, dev=1, test=1, seed=0)
    ex = splits.train[0]
    assert task.score(ex.gold, ex) == 1.0 and task.score("Berlin", ex) == 0.0
    assert task.corpus_metrics([ex.gold], [ex]) == {"em": 100.0}
