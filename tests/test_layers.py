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


# --- function length ------------------------------------------------------------------------
MAX_FUNCTION_LINES = 120


def _long_functions(root: Path) -> list[str]:
    """Functions (and methods, nested ones too) under `root` over MAX_FUNCTION_LINES lines, from the
    `def` line to the last line of the body, unless a line of the docstring starts with "Long because"."""
    import ast
    out = []
    for p in sorted(root.rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1
            if lines <= MAX_FUNCTION_LINES:
                continue
            doc = ast.get_docstring(node) or ""
            if any(line.strip().startswith("Long because") for line in doc.splitlines()):
                continue
            out.append(f"{p.relative_to(root.parent).as_posix()}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_long_functions_are_found(tmp_path):
    """The length check finds a long function (a method, nested or not) and lets one whose docstring
    says why it is long pass."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "a.py").write_text("def short():\n    return 1\n\n\n"
                              "class C:\n    def long_method(self):\n" + body.replace("    ", "        ")
                              + "\n\ndef long_but_said():\n    \"\"\"Twin of a kernel.\n\n    Long because it mirrors the"
                              " kernel line by line.\"\"\"\n" + body)
    found = _long_functions(pkg)
    assert found == [f"pkg/a.py:6 long_method ({MAX_FUNCTION_LINES + 1} lines)"], found


def test_no_function_over_120_lines():
    """No function in the package is over 120 lines unless its docstring has a line starting
    "Long because" saying why. No allow-list."""
    long = _long_functions(ROOT / "topo")
    assert not long, "functions over %d lines:\n%s" % (MAX_FUNCTION_LINES, "\n".join(long))


def _test_file_imports(text: str) -> list:
    """Modules named test_* that a test file imports (top level or inside a function)."""
    import ast
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out += [n for n in names if n.split(".")[-1].startswith("test_")]
    return out


def test_no_test_file_imports_another():
    """Shared test helpers live in conftest.py or tests/helpers/, never in another test file."""
    tests = Path(__file__).resolve().parent
    offenders = {p.name: _test_file_imports(p.read_text()) for p in sorted(tests.glob("test_*.py"))}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, offenders
    assert _test_file_imports("def f():\n    from test_routing import clos\n") == ["test_routing"]
