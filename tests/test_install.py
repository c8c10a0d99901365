"""What Colab and `pip install git+<repo>` get: the wheel, installed outside the checkout.

The wheel is built from this checkout and installed into a fresh virtual
environment in a temporary folder; the heavy dependencies (torch,
transformers, ...) come from the checkout's environment through a ``.pth``
line, so nothing is downloaded.  Everything then runs from an empty folder,
with ``SEO_LITE_DATA`` unset: the package must carry its data samples and
every module must import.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--disable-pip-version-check", "-w", str(out), str(REPO)],
                   check=True, cwd=build, env={**os.environ, "TMPDIR": str(build)})
    wheels = list(out.glob("seo_lite-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_carries_every_module_and_every_data_sample(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(p.relative_to(REPO)) for p in (REPO / "seo_lite").rglob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    samples = {p.name for p in (REPO / "data").iterdir() if p.suffix in (".jsonl", ".json")}
    assert len([s for s in samples if s.endswith(".jsonl")]) >= 15
    shipped = {n.split("/", 2)[2] for n in names if n.startswith("seo_lite/samples/")}
    assert samples <= shipped, f"data files missing from the wheel: {sorted(samples - shipped)}"
    assert "README.md" in shipped, "the samples' origins and licences travel with them"


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; dependencies seen through a .pth line."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    target = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    # pip --python: the checkout's pip installs into the new venv, scripts pointing at it.
    # The wheel goes in *before* the checkout's packages become visible, so pip never
    # sees (and never uninstalls) the checkout's editable seo_lite.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--ignore-installed", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True)
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(target, "checkout_deps.pth").write_text("\n".join(deps) + "\n")
    return env_dir


def _run(env_dir: Path, args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SEO_LITE_DATA", "PYTHONPATH")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_package_imports_from_the_venv_and_finds_its_data(installed, tmp_path):
    code = ("import importlib, pkgutil, json, seo_lite\n"
            "from seo_lite.machinery.data import data_folder, load_examples\n"
            "mods = [m.name for m in pkgutil.walk_packages(seo_lite.__path__, 'seo_lite.')]\n"
            "for m in mods: importlib.import_module(m)\n"
            "print(json.dumps({'file': seo_lite.__file__, 'data': str(data_folder()),\n"
            "                  'sst2': len(load_examples('sst2')), 'modules': len(mods)}))\n")
    r = _run(installed, [str(installed / "bin" / "python"), "-c", code], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(installed), "imported the checkout, not the wheel"
    assert Path(got["data"]).is_relative_to(installed) and Path(got["data"]).name == "samples"
    assert got["sst2"] == 300 and got["modules"] >= 15


@pytest.mark.slow
def test_installed_cli_lists_tasks_and_runs_a_smoke_seo_run(installed, tmp_path):
    cli = str(installed / "bin" / "seo-lite")
    r = _run(installed, [cli, "tasks"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "sst2" in r.stdout and "wmt23:de-en" in r.stdout
    r = _run(installed, [cli, "run", "--task", "sst2", "--answer-mode", "score", "--preset", "smoke",
                         "--out", "runs/smoke", "--no-figure"], tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    final = json.loads((tmp_path / "runs" / "smoke" / "final.json").read_text())
    assert final["steps"] >= 1 and set(final["comparisons"]) == {"dev", "test"}
    assert not list(tmp_path.glob("data")), "nothing was read from or written to a data folder here"
