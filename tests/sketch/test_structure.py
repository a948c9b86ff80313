"""The layout of ``tsdb_arrow.sketch``: no import cycles, re-exports only at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import tsdb_arrow.sketch as sk

ROOT = Path(sk.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parents[1]).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every tsdb_arrow.sketch module the sketch modules import, wherever the import sits
    (function bodies and ``TYPE_CHECKING`` blocks included)."""
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_no_import_cycles_below_the_package() -> None:
    graph = _imports()
    graph.pop("tsdb_arrow.sketch")  # the re-exports sit on top of everything
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_only_the_package_root_re_exports() -> None:
    graph = _imports()
    assert graph["tsdb_arrow.sketch"], "tsdb_arrow.sketch re-exports the public names"
    for name, deps in graph.items():
        if name != "tsdb_arrow.sketch":
            assert "tsdb_arrow.sketch" not in deps, f"{name} imports the package root"
    for init in ROOT.rglob("*/__init__.py"):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), f"{init}: only a docstring"


def test_public_names_are_unchanged() -> None:
    assert sorted(sk.__all__) == sorted(
        [
            "quantiles",
            "sketches",
            "merge_sketches",
            "quantiles_from_sketches",
            "to_sketch_column",
            "from_sketch_column",
            "histogram_quantiles",
            "histogram_buckets",
            "histogram_column",
            "exponential_from_otel",
            "exponential_to_proto",
            "explicit_to_fixed",
            "Sketch",
            "SketchArrays",
            "FixedBucketHistogram",
            "ExponentialHistogram",
            "LogarithmicMapping",
        ]
    )
    assert all(hasattr(sk, name) for name in sk.__all__)
