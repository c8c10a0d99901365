"""One call cache shared by many processes on many hosts (a cluster's shared filesystem).

Temporary files carry host, pid and a random part; the orphan sweep deletes
only its own host's files whose process is gone.  The "second host" here is
a process whose host name is patched and which sees no process of the first
host alive (as on another machine, where the first host's pids do not exist).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from seo_lite.llm import cache as cache_mod
from seo_lite.llm.cache import HOST, CallCache

WRITER = textwrap.dedent("""
    import os, sys, warnings
    from seo_lite.llm import cache as c
    warnings.simplefilter("error")       # a lost write ("not written") or a bad entry fails
    root, host, rounds, foreign = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    c.HOST = host
    if foreign:                          # on another machine no pid of the first host runs
        c.pid_alive = lambda pid: pid == os.getpid()
    cache = c.CallCache(root)
    for r in range(rounds):
        for i in range(40):
            payload = {"kind": "generate", "i": i, "text": "x" * 2000}
            key = cache.key_of(payload)
            got, err = cache.get(key, payload)
            assert err is None, err                   # never a half-written or foreign entry
            assert got is None or got["text"] == f"answer {i}", got["text"]
            cache.put(key, payload, {"text": f"answer {i}", "pad": "y" * 300000})
""")


def _entries_ok(root) -> int:
    cache = CallCache(root)
    for i in range(40):
        payload = {"kind": "generate", "i": i, "text": "x" * 2000}
        value, err = cache.get(cache.key_of(payload), payload)
        assert err is None and value["text"] == f"answer {i}"
    return len(cache)


def test_temporary_names_carry_host_pid_and_a_random_part(tmp_path, monkeypatch):
    seen = []
    real_replace = cache_mod.os.replace
    monkeypatch.setattr(cache_mod.os, "replace", lambda a, b: (seen.append(a), real_replace(a, b)))
    cache = CallCache(tmp_path)
    for _ in range(2):
        cache.put("ab" * 32, {"q": 1}, {"text": "a"})
    names = [p.name for p in seen]
    assert all(n.startswith(f".{'ab' * 32}.json.{HOST}.{cache_mod.os.getpid()}.") for n in names)
    assert len(set(names)) == 2 and all(n.endswith(".tmp") for n in names)
    assert "." not in HOST, "the name is split on dots"


def test_the_sweep_touches_only_its_own_hosts_dead_writers(tmp_path):
    cache = CallCache(tmp_path)
    key = cache.key_of({"q": 1})
    dest = cache.path(key)
    dest.parent.mkdir(parents=True)
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout)
    mine = dest.parent / f".{dest.name}.{HOST}.{dead}.aaa.tmp"
    other_host = dest.parent / f".{dest.name}.gpu-node-7.{dead}.bbb.tmp"    # may be writing now
    for p in (mine, other_host):
        p.write_text('{"payl')
    cache.put(key, {"q": 1}, {"text": "a"})
    assert not mine.exists() and other_host.exists()
    assert cache.get(key, {"q": 1}) == ({"text": "a"}, None)


def test_a_missing_or_unparseable_entry_is_a_miss(tmp_path):
    cache = CallCache(tmp_path)
    key = cache.key_of({"q": 2})
    assert cache.get(key, {"q": 2}) == (None, None)
    cache.path(key).parent.mkdir(parents=True, exist_ok=True)
    cache.path(key).write_text('{"payload": {"q": 2}, "val')            # cut by a dying host
    with pytest.warns(RuntimeWarning, match="corrupt"):
        value, why = cache.get(key, {"q": 2})
    assert value is None and "corrupt" in why
    cache.put(key, {"q": 2}, {"text": "b"})
    assert cache.get(key, {"q": 2}) == ({"text": "b"}, None)


def _spawn(root, host, rounds, foreign):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), host, str(rounds),
                             "1" if foreign else "0"], stderr=subprocess.PIPE, text=True)


def test_several_processes_write_the_same_keys_at_once(tmp_path):
    procs = [_spawn(tmp_path, HOST, 3, False) for _ in range(4)]
    for p in procs:
        assert p.wait(240) == 0, p.stderr.read()
    assert _entries_ok(tmp_path) == 40
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file left behind"


def test_a_second_host_sweeping_never_breaks_the_first_hosts_writes(tmp_path):
    """Before temporary names carried the host, host B took host A's live pids for
    dead ones and deleted A's half-written files, and A's rename failed."""
    a = [_spawn(tmp_path, "host-a", 4, False) for _ in range(2)]
    b = [_spawn(tmp_path, "host-b", 12, True)]            # alone on its host: it sees no live pid but its own
    for p in a + b:
        assert p.wait(240) == 0, p.stderr.read()
    assert _entries_ok(tmp_path) == 40
    assert not list(tmp_path.rglob("*.tmp"))
