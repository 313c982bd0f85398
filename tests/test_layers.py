"""The package's layers (pyproject.toml's import-linter contracts) and its lint hold, and a layer
violation is caught: the contracts are checked by running import-linter, as CI does."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.skip(f"{name} is not installed (it is in the test extra: pip install -e '.[test]')")
    return exe


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([_tool("lint-imports"), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True)


def test_layers_hold():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_a_layer_violation_is_caught(tmp_path):
    """The model layer importing the CLI (a deliberate violation in a copy of the tree) breaks the contract."""
    shutil.copytree(ROOT / "topo", tmp_path / "topo", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cat = tmp_path / "topo" / "model" / "catalog.py"
    cat.write_text(cat.read_text() + "\nimport topo.cli.app  # deliberate violation\n")
    r = _lint_imports(tmp_path)
    assert r.returncode != 0 and "BROKEN" in r.stdout
    assert "topo.model.catalog -> topo.cli.app" in r.stdout, r.stdout[-3000:]


def test_ruff_finds_nothing():
    r = subprocess.run([_tool("ruff"), "check", "--no-cache", "topo", "tests", "benchmarks"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]
