"""The package's folders are its layers (issue 19): each rule of docs/how-it-works.md's
tree, checked by reading the import statements (ast) of every module under viewer/ and
producers/, deferred imports inside functions included. Nothing is imported to check.

Bottom to top: viewer/errors.py, signals.py, quiet.py, durations.py (stdlib and numpy only);
viewer/stream; producers; viewer/view; viewer/gui (the only PyQt6 importers);
viewer/recording and viewer/net; viewer/cli and viewer/testing (the only importers of
producers inside viewer). No module imports another's private (_name) names.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("viewer", "producers")
OURS = PACKAGES


@dataclass(frozen=True)
class Import:
    """One imported thing: ``target`` is a dotted module path, or module.name for a
    ``from module import name``; ``module`` is the module that imports it."""

    module: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}
    assert found, "no modules found: the test must run from the repository"
    return found


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    path = modules()[module]
    tree = ast.parse(path.read_text(), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            found += [Import(module, f"{source}.{alias.name}", node.lineno) for alias in node.names]
    return tuple(found)


def all_imports() -> Iterator[Import]:
    for module in modules():
        yield from imports_of(module)


def under(name: str, *prefixes: str) -> bool:
    """Whether dotted ``name`` is one of ``prefixes`` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(importers: tuple[str, ...], forbidden: tuple[str, ...], *, exempt: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        str(i)
        for i in all_imports()
        if under(i.module, *importers) and not under(i.module, *exempt) and under(i.target, *forbidden)
    )


def test_the_checker_sees_the_imports_it_checks():
    """A control: the parser finds imports known to be there, deferred ones included."""
    targets = {i.target for i in imports_of("viewer.view.imaging")}
    assert "cv2" in targets  # imported inside a function
    assert "viewer.stream.reader.FrameReader" in {i.target for i in imports_of("viewer.stream")}
    assert under("viewer.gui.panel", "viewer.gui") and not under("viewer.guide", "viewer.gui")


# ---- the bottom: errors, signals, quiet ---------------------------------------------------

BOTTOM = ("viewer.errors", "viewer.signals", "viewer.quiet", "viewer.durations")


def test_the_bottom_modules_import_the_standard_library_and_numpy_only():
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__", *BOTTOM}
    bad = sorted(
        str(i)
        for i in all_imports()
        if i.module in BOTTOM and i.target.split(".")[0] not in allowed and not under(i.target, *BOTTOM)
    )
    assert not bad, "\n".join(bad)


# ---- stream ----------------------------------------------------------------------------------

NOT_IN_STREAM = (
    "PyQt6",
    "cv2",
    "zenoh",
    "mcap",
    "foxglove",
    "producers",
    "viewer.view",
    "viewer.gui",
    "viewer.cli",
    "viewer.testing",
    "viewer.recording",
    "viewer.net",
)


def test_stream_imports_no_qt_opencv_zenoh_mcap_and_nothing_above_it():
    bad = violations(("viewer.stream",), NOT_IN_STREAM)
    assert not bad, "\n".join(bad)


# ---- Qt only in gui -------------------------------------------------------------------------


def test_only_gui_imports_pyqt6():
    bad = violations(OURS, ("PyQt6",), exempt=("viewer.gui",))
    assert not bad, "\n".join(bad)


# ---- producers -----------------------------------------------------------------------------

PRODUCERS_MAY_USE = ("viewer.stream", "viewer.errors", "viewer.signals", "viewer.quiet", "viewer.durations")


def test_producers_build_on_stream_errors_signals_and_quiet_only():
    bad = sorted(
        str(i)
        for i in all_imports()
        if under(i.module, "producers") and under(i.target, "viewer") and not under(i.target, *PRODUCERS_MAY_USE)
    )
    assert not bad, "\n".join(bad)


# ---- view ----------------------------------------------------------------------------------


def test_view_imports_no_gui_cli_testing_recording_or_net():
    bad = violations(("viewer.view",), ("viewer.gui", "viewer.cli", "viewer.testing", "viewer.recording", "viewer.net"))
    assert not bad, "\n".join(bad)


# ---- who wires producers in ----------------------------------------------------------------


def test_only_cli_and_testing_import_producers():
    bad = violations(("viewer",), ("producers",), exempt=("viewer.cli", "viewer.testing"))
    assert not bad, "\n".join(bad)


# ---- private names -------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_aliases(module: str) -> dict[str, str]:
    """Names in ``module`` bound to one of our modules by an import (``P`` for
    ``from viewer.stream import protocol as P``)."""
    path = modules()[module]
    aliases: dict[str, str] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules():
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                if f"{source}.{alias.name}" in modules():
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
    return aliases


def private_uses() -> Iterator[str]:
    for i in all_imports():
        if any(_private(part) for part in i.target.split(".")):
            yield str(i)
    for module, path in modules().items():
        aliases = module_aliases(module)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                yield f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"


def test_no_module_imports_a_private_name_of_another():
    bad = sorted(set(private_uses()))
    assert not bad, "\n".join(bad)


def test_the_private_name_check_would_see_one(tmp_path, monkeypatch):
    """A control: a module that imports another's _name, and one that reaches it through
    a module alias, are both caught."""
    fake = {
        "viewer.a": tmp_path / "a.py",
        "viewer.b": tmp_path / "b.py",
        "viewer.c": tmp_path / "c.py",
    }
    fake["viewer.a"].write_text("_hidden = 1\n")
    fake["viewer.b"].write_text("from viewer.a import _hidden\n")
    fake["viewer.c"].write_text("from viewer import a\nprint(a._hidden)\n")
    monkeypatch.setattr(sys.modules[__name__], "modules", lambda: fake)
    imports_of.cache_clear()
    try:
        assert sorted(private_uses()) == ["viewer.b:1 imports viewer.a._hidden", "viewer.c:2 uses viewer.a._hidden"]
    finally:
        imports_of.cache_clear()


# ---- folders: no cycles --------------------------------------------------------------------


def folder_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "producers":
        return "producers"
    return ".".join(parts[:2]) if len(parts) > 1 else module


def folder_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for i in all_imports():
        target = next((m for m in (i.target, i.target.rsplit(".", 1)[0]) if m in modules()), None)
        if target is None:
            continue
        a, b = folder_of(i.module), folder_of(target)
        if a != b and a not in ("viewer", "viewer.__main__") and b != "viewer":
            graph.setdefault(a, set()).add(b)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every folder that reaches itself, with one path by which it does."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    ]
    assert cycles({"a": {"b"}, "b": {"c"}}) == []


def test_no_cycles_between_folders():
    found = cycles(folder_graph())
    assert not found, "\n".join(" -> ".join(c) for c in found)
