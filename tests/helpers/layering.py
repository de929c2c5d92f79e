"""The layering rule of CONTRIBUTING.md, checked on a package's source with :mod:`ast`.

The layer table is read from the "Layers" section of ``CONTRIBUTING.md`` (the
one place it is written down): each row gives an order, a layer name and the
modules or packages of the layer in backticks. A module may import modules of
its own layer and of lower layers; every import counts, at module level and
inside functions, ``import x`` and ``from x import y``, relative imports
resolved. Imports under ``if TYPE_CHECKING:`` are not checked: they run only
in a type checker, so they make no dependency (the result types name the stage
types they carry that way). There are no exceptions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|")
NAME = re.compile(r"`([\w.]+)`")


@dataclass(frozen=True)
class Layer:
    """One row of the layer table."""

    order: int
    name: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Violation:
    """An import of a module of a higher layer (or of a module that belongs to no layer)."""

    path: Path
    line: int
    module: str
    imported: str
    layer: Layer | None
    imported_layer: Layer | None

    def __str__(self) -> str:
        if self.layer is None:
            return f"{self.path}: module {self.module} is in no layer of the table; add it to a row"
        if self.imported_layer is None:
            return f"{self.path}:{self.line}: {self.module} imports {self.imported}, which is in no layer of the table"
        return (
            f"{self.path}:{self.line}: {self.module} (layer {self.layer.order} {self.layer.name}) imports "
            f"{self.imported} (layer {self.imported_layer.order} {self.imported_layer.name}), a higher layer"
        )


def section(markdown: str, title: str) -> list[str]:
    """The lines of the markdown section headed ``title`` (any heading level), up to the next heading of that level."""
    lines = markdown.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(#+)\s+(.*)$", line)
        if match and match.group(2).strip() == title:
            level = len(match.group(1))
            body = []
            for following in lines[index + 1:]:
                heading = re.match(r"^(#+)\s", following)
                if heading and len(heading.group(1)) <= level:
                    break
                body.append(following)
            return body
    raise ValueError(f"no section '{title}' in the markdown")


def read_layers(markdown: str) -> list[Layer]:
    """The rows of the table in the "Layers" section, lowest first."""
    layers = []
    for line in section(markdown, "Layers"):
        match = ROW.match(line)
        if match:
            order, name, modules = match.groups()
            layers.append(Layer(int(order), name, tuple(NAME.findall(modules))))
    if not layers:
        raise ValueError("the Layers section holds no table rows like '| 1 | foundations | `errors` | why |'")
    return sorted(layers, key=lambda layer: layer.order)


def layer_of(module: str, *, package: str, layers: Iterable[Layer]) -> Layer | None:
    """The layer of ``module`` (dotted, starting with ``package``): the row naming its longest prefix.

    The package's own ``__init__`` is named ``__init__`` in the table, ``__main__`` likewise.
    """
    relative = "__init__" if module == package else module.removeprefix(package + ".")
    best: tuple[int, Layer] | None = None
    for layer in layers:
        for name in layer.modules:
            if relative == name or relative.startswith(name + "."):
                if best is None or len(name) > best[0]:
                    best = (len(name), layer)
    return best[1] if best else None


def package_modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root`` (the folder holding ``__init__.py``), by dotted name."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package, *parts])] = path
    return modules


def imports(path: Path, module: str, *, known: Mapping[str, Path]) -> Iterator[tuple[int, str]]:
    """(line, imported module) of every import in ``path`` outside ``if TYPE_CHECKING:`` blocks.

    ``from a import b`` imports ``a.b`` when that is a module, else ``a``;
    relative imports are resolved against ``module``'s package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package=is_package)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in known else base


def check_package(root: Path, *, package: str, layers: Iterable[Layer]) -> list[Violation]:
    """Every import in the package at ``root`` that breaks the layering, and every module in no layer."""
    layers = list(layers)
    known = package_modules(root, package)
    violations = []
    for module, path in known.items():
        layer = layer_of(module, package=package, layers=layers)
        if layer is None:
            violations.append(Violation(path, 0, module, "", None, None))
            continue
        for line, imported in imports(path, module, known=known):
            if imported != package and not imported.startswith(package + "."):
                continue
            target = layer_of(imported, package=package, layers=layers)
            if target is None or target.order > layer.order:
                violations.append(Violation(path, line, module, imported, layer, target))
    return violations


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except those inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, module: str, *, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)
