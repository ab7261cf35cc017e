"""The package's layout holds its design: training/ and serving/ never import each other, the
shared root imports neither, there are no import cycles, and forks import only the public face
(`from sagemaker_byo import ...`), every name of which resolves.

The import graph is read statically (ast), so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALGO = ROOT / "algo"
PACKAGE = ALGO / "sagemaker_byo"
FIXTURE_FORK = ROOT / "tests" / "fixture_fork"
FACE = "sagemaker_byo"  # the public face: sagemaker_byo/__init__.py


def module_name(path: Path) -> str:
    parts = path.relative_to(ALGO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every sagemaker_byo module `path` imports, anywhere in it, resolved to absolute names."""
    name = module_name(path)
    here = package_of(name, path).split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import x` imports the module x; `from .x import y`, the module x
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES
            found.update(submodules or {base})
    return {m for m in found if m in MODULES and m != name}


def graph(skip_face: bool = True) -> dict[str, set[str]]:
    edges = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if skip_face and name == FACE:
            continue
        edges[name] = {m for m in imports(path) if not (skip_face and m == FACE)}
    return edges


def area(module: str) -> str:
    """training, serving, or root (what both modes share)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ("training", "serving")) else "root"


def test_the_graph_is_read_from_the_package():
    edges = graph()
    assert "sagemaker_byo.serving.app" in edges and "sagemaker_byo.training.fitting" in edges
    assert "sagemaker_byo.serving.pipeline" in edges["sagemaker_byo.serving.app"]
    assert "sagemaker_byo.serving.multimodel.routes" in edges["sagemaker_byo.serving.app"]  # a lazy import


@pytest.mark.parametrize(("importer", "forbidden"), [
    ("training", "serving"), ("serving", "training"), ("root", "training"), ("root", "serving")])
def test_areas_import_only_what_the_layout_allows(importer, forbidden):
    wrong = sorted(f"{m} imports {d}" for m, deps in graph().items() if area(m) == importer
                   for d in deps if area(d) == forbidden)
    assert not wrong, wrong


def test_the_package_has_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_no_module_imports_the_public_face():
    # The face is for forks; inside the package, modules import each other directly.
    users = sorted(m for m, deps in graph(skip_face=False).items() if m != FACE and FACE in deps)
    assert not users, users


def test_every_public_name_resolves_and_is_listed():
    face = importlib.import_module(FACE)
    assert sorted(face.__all__) == sorted(face._PUBLIC)
    for name in face.__all__:
        assert getattr(face, name) is not None, name
    with pytest.raises(AttributeError):
        face.no_such_name  # noqa: B018


def test_a_public_name_of_one_mode_does_not_load_the_other():
    code = ("import sys; sys.path.insert(0, {algo!r}); from sagemaker_byo import {name}; "
            "print(sorted(m for m in sys.modules if m.startswith('sagemaker_byo.{other}')))")
    for name, other in (("Algorithm", "serving"), ("Invocation", "training")):
        out = subprocess.run([sys.executable, "-c", code.format(algo=str(ALGO), name=name, other=other)],
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() == "[]", (name, out)


# A fork's own algorithm.py and predictor.py are checked in tests/sample/test_public_face.py.
FORK_FILES = [FIXTURE_FORK / "algorithm.py", FIXTURE_FORK / "predictor.py",
              *sorted((ROOT / "examples").rglob("*.py"))]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "examples").rglob("*.md"))]
SUBMODULE_IMPORT = re.compile(r"^\s*(?:from\s+sagemaker_byo\.\w|import\s+sagemaker_byo\b)", re.M)


@pytest.mark.parametrize("path", FORK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_fork_files_import_only_the_public_face(path):
    assert path.is_file()
    assert not SUBMODULE_IMPORT.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in DOCS if p.is_file()], ids=lambda p: str(p.relative_to(ROOT)))
def test_code_samples_in_the_docs_import_only_the_public_face(path):
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
    offending = [line for block in blocks for line in block.splitlines() if SUBMODULE_IMPORT.match(line)]
    assert not offending, offending
