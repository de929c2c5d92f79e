"""The package keeps the layer order of CONTRIBUTING.md "Layers"; the checker itself is tested on a fake package."""

from __future__ import annotations

from pathlib import Path

from helpers.layering import check_package, imports, layer_of, package_modules, read_layers

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRIBUTING = (REPO_ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def test_no_module_imports_a_higher_layer() -> None:
    violations = check_package(REPO_ROOT / "modic", package="modic", layers=read_layers(CONTRIBUTING))
    assert not violations, "\n".join(str(v) for v in violations)


def test_synthetic_studies_use_only_input_and_the_layers_below() -> None:
    """``synth`` sits high so that no stage imports it, but it may itself use only io and the layers below io."""
    layers = read_layers(CONTRIBUTING)
    io = layer_of("modic.io", package="modic", layers=layers)
    assert io is not None
    known = package_modules(REPO_ROOT / "modic", "modic")
    wrong = [
        f"{module}:{line} imports {imported}"
        for module, path in known.items()
        if module.startswith("modic.synth")
        for line, imported in imports(path, module, known=known)
        if imported.startswith("modic.") and not imported.startswith("modic.synth")
        and (layer := layer_of(imported, package="modic", layers=layers)) is not None and layer.order > io.order
    ]
    assert not wrong, "\n".join(wrong)


def test_the_table_places_the_layers_in_the_documented_order() -> None:
    names = [layer.modules for layer in read_layers(CONTRIBUTING)]
    flat = [module for modules in names for module in modules]
    order = ["results", "settings", "io", "preprocessing", "segmentation", "levels", "classification", "pipeline",
             "report", "candidacy", "evaluation", "training", "batch", "cli"]
    positions = [next(i for i, modules in enumerate(names) if module in modules) for module in order]
    assert positions == sorted(positions)
    assert len(flat) == len(set(flat)), "a module is in two layers"


TABLE = """
# Contributing

## Layers

| order | layer | modules | why |
|---:|---|---|---|
| 1 | base | `__init__`, `errors` | nothing below |
| 2 | input | `io` | reads |
| 3 | outputs | `report` | writes |

## Code
"""


def _fake_package(root: Path) -> Path:
    package = root / "fake"
    (package / "io").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "errors.py").write_text("", encoding="utf-8")
    (package / "report.py").write_text("from fake.io import reader\n", encoding="utf-8")
    (package / "io" / "__init__.py").write_text("from .reader import read\n", encoding="utf-8")
    (package / "io" / "reader.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import json\n"
        "if TYPE_CHECKING:\n"
        "    from fake.report import Thing\n"
        "\n"
        "def read():\n"
        "    from ..report import write\n"
        "    return write\n",
        encoding="utf-8",
    )
    return package


def test_the_checker_names_module_line_and_both_layers_of_an_upward_import(tmp_path: Path) -> None:
    """A function-local relative import from io up to report is caught; one under TYPE_CHECKING is not."""
    package = _fake_package(tmp_path)
    violations = check_package(package, package="fake", layers=read_layers(TABLE))
    assert [(v.module, v.line, v.imported) for v in violations] == [("fake.io.reader", 8, "fake.report")]
    text = str(violations[0])
    assert "reader.py:8: fake.io.reader (layer 2 input) imports fake.report (layer 3 outputs), a higher layer" in text


def test_the_checker_catches_module_level_imports_and_unlisted_modules(tmp_path: Path) -> None:
    package = _fake_package(tmp_path)
    (package / "io" / "reader.py").write_text("import fake.report\n", encoding="utf-8")
    (package / "extra.py").write_text("", encoding="utf-8")
    violations = check_package(package, package="fake", layers=read_layers(TABLE))
    found = sorted((v.module, v.imported, v.layer.name if v.layer else None) for v in violations)
    assert found == [("fake.extra", "", None), ("fake.io.reader", "fake.report", "input")]
