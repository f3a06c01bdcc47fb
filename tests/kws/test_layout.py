"""kwtrain's package layout: no import circles, and .eim archives that carry what they import.

The two front ends live in their own subpackages (`kwtrain.mfcc`, `kwtrain.embedding`) with
what they share beside them in `kwtrain/`. `embedding` and `onnxparts` once imported each other
(one of the two imports hidden inside a function); the graph below counts imports anywhere in a
file, function-local ones included, so a circle cannot come back that way either.
"""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

from devkit.paths import REPO
from kwtrain.embedding import export as embedding_export
from kwtrain.mfcc import export as mfcc_export

PKG = REPO / "kwtrain"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def kwtrain_imports(path: Path) -> set[str]:
    """The kwtrain modules `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != "kwtrain"}


GRAPH = {name: kwtrain_imports(path) - {name} for name, path in MODULES.items()}


def cycle_from(start: str, graph: dict[str, set[str]] = GRAPH) -> list[str] | None:
    """An import path from `start` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_graph_sees_the_imports() -> None:
    """The checker itself: it finds the imports the layout is built on (else the test below
    would pass on an empty graph)."""
    assert "kwtrain.embedding.onnxfiles" in GRAPH["kwtrain.embedding.onnxparts"]
    assert "kwtrain.embedding.onnxfiles" in GRAPH["kwtrain.embedding.frontend"]
    assert "kwtrain.mfcc.runtime" in GRAPH["kwtrain.evaluate"]
    assert "kwtrain.embedding.cli" in GRAPH["kwtrain.cli"]  # `from kwtrain.embedding import cli`
    # the circle this layout removed is found when put back
    old = {**GRAPH, "kwtrain.embedding.onnxfiles": {"kwtrain.embedding.onnxparts"}}
    assert cycle_from("kwtrain.embedding.onnxparts", old) is not None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_circle(name: str) -> None:
    cycle = cycle_from(name)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_onnxparts_and_the_front_end_do_not_import_each_other() -> None:
    assert "kwtrain.embedding.frontend" not in GRAPH["kwtrain.embedding.onnxparts"]
    assert "kwtrain.embedding.onnxparts" not in GRAPH["kwtrain.embedding.frontend"]
    assert GRAPH["kwtrain.embedding.onnxfiles"] == set()


@pytest.mark.parametrize("exporter", [mfcc_export, embedding_export], ids=["mfcc", "embedding"])
def test_an_eim_carries_every_module_it_imports(exporter) -> None:
    """The archive's runtime modules import only each other (and no trainer-side module such
    as onnxparts, which needs the onnx package the device does not have)."""
    packed = {module_name(PKG / name) for name in exporter.RUNTIME_MODULES}
    for name in packed:
        missing = GRAPH[name] - packed
        assert not missing, f"{name} imports {missing}, which the .eim does not carry"
    assert exporter.PACKAGE.replace("/", ".") in packed  # the subpackage's __init__ too


def test_old_layout_eims_still_read() -> None:
    """Models exported before the subpackages (tests/edge/models/hello_world.eim keeps that
    layout: kwtrain/model.npz, kwtrain/runtime.py) are still read by `evaluate` and the tests."""
    old = REPO / "tests" / "edge" / "models" / "hello_world.eim"
    with zipfile.ZipFile(old) as zf:
        assert "kwtrain/model.npz" in zf.namelist()
    assert mfcc_export.read_model(old).labels[0] == "hello world"
    assert not embedding_export.is_embedding_eim(old)
    assert embedding_export.is_embedding_eim(REPO / "edgeml" / "models" / "listen.eim")
