"""Data flows forward (workload → load → scoring → energy → store → analysis → report): the
import graph of `src/perwatt` must never point back. Read from the source with `ast`, so a
lazy import inside a function counts as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "perwatt"

# package → packages (or modules) it must never import
FORBIDDEN = {
    "report": ("perwatt.workloads", "perwatt.runner", "perwatt.endpoints", "perwatt.load"),
    "analysis": ("perwatt.endpoints", "perwatt.energy", "perwatt.workloads", "perwatt.runner"),
    "store": ("perwatt.analysis", "perwatt.report", "perwatt.runner", "perwatt.cli"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module `path` imports, with its line, absolute names resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return out


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_what_comes_after_or_before_it(layer):
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for line, name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert bad == []


def test_the_checker_sees_a_backward_import(tmp_path, monkeypatch):
    # Control: a module that imports a workload from report/ is caught, lazily or not.
    fake = tmp_path / "perwatt" / "report"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text(
        "def f():\n    from perwatt.workloads import load_workload\n    from ..runner import x\n"
    )
    monkeypatch.setitem(globals(), "SRC", tmp_path / "perwatt")
    names = [n for _, n in imports_of(fake / "bad.py")]
    assert names == ["perwatt.workloads", "perwatt.runner"]
