"""The layers are a checked contract: lint-imports (import-linter) with pyproject.toml's [tool.importlinter]."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists(),
                    reason="import-linter is not installed (pip install -e '.[test]')")
def test_every_module_imports_only_from_the_layers_below_it():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
    assert "1 kept, 0 broken" in out.stdout


def test_argparse_stays_in_the_commands_layer():
    """Flags are read in aira/commands; the layers below take typed arguments (issue #20)."""
    import ast

    found = []
    for package in ("tasks", "compose", "agents", "train"):
        for path in sorted((ROOT / "aira" / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "argparse" for n in names):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"argparse imported below aira/commands: {found}"
