"""Foundation: core is a library — no module under core/ imports Qt or the gui package."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core

FORBIDDEN = ("PySide6", "pyqtgraph", "gui")
CORE = Path(core.__file__).parent


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            yield node.lineno, str(node.args[0].value)


def test_core_modules_import_no_qt_and_no_gui():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    bad = [f"{f.relative_to(CORE.parent)}:{line} imports {name}"
           for f in files for line, name in _imports(f)
           if name.split(".")[0] in FORBIDDEN]
    assert not bad, "core must not import Qt or gui:\n" + "\n".join(bad)


def test_lint_imports_contract(tmp_path):
    """Run import-linter's forbidden contract on core (gui may not be a package yet, so it is checked above)."""
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.skip("import-linter is not installed in this venv")
    config = tmp_path / "importlinter.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["core"]\ninclude_external_packages = true\n\n'
        '[[tool.importlinter.contracts]]\nname = "core is a library: no Qt"\ntype = "forbidden"\n'
        'source_modules = ["core"]\nforbidden_modules = ["PySide6", "pyqtgraph"]\n')
    r = subprocess.run([str(exe), "--config", str(config), "--no-cache"], capture_output=True, text=True,
                       cwd=CORE.parent, timeout=60, env={**os.environ, "PYTHONPATH": str(CORE.parent)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "KEPT" in r.stdout
