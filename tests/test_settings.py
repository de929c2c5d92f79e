"""Typed settings (modic.settings): partial overrides, one-line errors, frozen objects, and their effect on the stages."""

from __future__ import annotations

import ast
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from modic.cli import main
from modic.config import load_shipped
from modic.errors import ConfigError, InputError, SeriesSelectionError
from modic.settings import (
    ClassifierMethod,
    DepthMode,
    WarningCode,
    Weighting,
    load_settings,
    shipped_settings,
)

SHIPPED = shipped_settings()


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "my.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(source: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(source)
    message = str(raised.value)
    assert "\n" not in message, "every settings error is one line"
    return message


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic DICOM study (T1 and T2)."""
    from modic.synth import generate_study, write_study

    root = tmp_path_factory.mktemp("settings_study")
    write_study(generate_study(seed=5, config="tiny", modic="L5 superior:1"), root / "input", formats=("dicom",))
    return root / "input" / "dicom"


# --- loading ---------------------------------------------------------------------------------------------------------


def test_shipped_settings_are_the_shipped_files() -> None:
    """``to_dict`` gives back exactly what configs/ holds: the effective settings read like the YAML files."""
    effective = SHIPPED.to_dict()
    analysis = load_shipped("analysis.yaml")
    assert {section: effective[section] for section in analysis} == analysis
    for section in ("io", "series_selection", "input_checks", "batch"):
        assert effective[section] == load_shipped(f"{section}.yaml"), section
    assert load_settings() is SHIPPED and load_settings(SHIPPED) is SHIPPED


def test_partial_override_changes_only_its_keys(tmp_path: Path) -> None:
    settings = load_settings(settings_file(tmp_path, "classification: {method: learned}\n"))
    assert settings.classification.method is ClassifierMethod.LEARNED
    assert dataclasses.replace(settings.classification, method=ClassifierMethod.RULES) == SHIPPED.classification
    assert dataclasses.replace(settings, classification=SHIPPED.classification) == SHIPPED


def test_nested_override_keeps_the_sibling_keys() -> None:
    settings = load_settings({"classification": {"voxels": {"t1_low": 0.7}}, "io": {"memory": {"max_voxels": 10}}})
    assert settings.classification.voxels.t1_low == 0.7
    assert settings.classification.voxels.t1_high == SHIPPED.classification.voxels.t1_high
    assert settings.io.memory.max_voxels == 10 and settings.io.geometry == SHIPPED.io.geometry


def test_lists_and_tables_are_replaced_whole() -> None:
    settings = load_settings({"levels": {"graded": ["L4-L5"]},
                              "series_selection": {"image_sop_classes": {"1.2.3": "test"}}})
    assert settings.levels.graded == ("L4-L5",)
    assert dict(settings.series_selection.image_sop_classes) == {"1.2.3": "test"}


def test_an_empty_section_or_file_changes_nothing(tmp_path: Path) -> None:
    assert load_settings(settings_file(tmp_path, "classification:\n")) == SHIPPED
    assert load_settings(settings_file(tmp_path, "")) == SHIPPED


def test_null_is_accepted_where_the_setting_is_optional() -> None:
    settings = load_settings({"segmentation": {"thin_slice_bundle": None},
                              "classification": {"voxels": {"reference_half_difference": None}}})
    assert settings.segmentation.thin_slice_bundle is None
    assert settings.classification.voxels.reference_half_difference is None


def test_merged_validates_like_a_file() -> None:
    changed = SHIPPED.merged({"endplates": {"depth": {"mode": "mm", "value": 4}}})
    assert changed.endplates.depth.mode is DepthMode.MM and changed.endplates.depth.millimetres(body_height_mm=30) == 4
    with pytest.raises(ConfigError, match=r"config overrides: 'endplates.depth.mode' is 'cm'"):
        SHIPPED.merged({"endplates": {"depth": {"mode": "cm"}}})


# --- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("classification: {methd: learned}\n",
         ["unknown key 'classification.methd'", "did you mean 'classification.method'?"]),
        ("clasification: {method: learned}\n", ["unknown key 'clasification'", "did you mean 'classification'?"]),
        ("io: {memory: {max_voxel: 5}}\n", ["unknown key 'io.memory.max_voxel'", "did you mean 'io.memory.max_voxels'?"]),
        ("series_selection: {selection: {plan: sagittal}}\n",
         ["unknown key 'series_selection.selection.plan'", "did you mean 'series_selection.selection.plane'?"]),
        ("zzz: 1\n", ["unknown key 'zzz'", "known there: batch, classification"]),
    ],
    ids=["key", "section", "io key", "series-selection key", "nothing close"],
)
def test_misspelt_key_names_file_key_and_spelling(tmp_path: Path, text: str, mentions: list[str]) -> None:
    path = settings_file(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"config {path}: ")
    for mention in mentions:
        assert mention in message


@pytest.mark.parametrize(
    ("changes", "mentions"),
    [
        ({"segmentation": {"batch_size": "x"}}, ["'segmentation.batch_size' is 'x'", "expected an integer"]),
        ({"segmentation": {"batch_size": 2.5}}, ["'segmentation.batch_size' is 2.5", "expected an integer"]),
        ({"levels": {"min_relative_size": 1.5}}, ["'levels.min_relative_size' is 1.5", "between 0 and 1"]),
        ({"levels": {"merge_factor": 1.0}}, ["'levels.merge_factor' is 1.0", "at least 1.1"]),
        ({"levels": {"graded": ["L4-L9"]}}, ["'levels.graded' is ['L4-L9']", "list of levels such as"]),
        ({"endplates": {"reference_height": [0.7, 0.3]}},
         ["'endplates.reference_height' is [0.7, 0.3]", "[low, high] with 0 <= low < high <= 1"]),
        ({"classification": {"level_significance": [1, 2, 3]}}, ["'classification.level_significance'", "0, 1, 2, 3"]),
        ({"classification": {"voxels": {"median_filter": True}}},
         ["'classification.voxels.median_filter' is True", "an integer"]),
        ({"io": {"scan": {"follow_symlinks": "yes"}}}, ["'io.scan.follow_symlinks' is 'yes'", "true or false"]),
        ({"series_selection": {"description_patterns": {"t1": ["(t1"]}}},
         ["'series_selection.description_patterns.t1' is ['(t1']", "valid regular expressions"]),
        ({"input_checks": {"overlap": {"min_t2_coverage": 2}}}, ["'input_checks.overlap.min_t2_coverage' is 2"]),
        ({"batch": {"study_timeout_s": 0}}, ["'batch.study_timeout_s' is 0", "a positive number"]),
        ({"classification": 5}, ["'classification' is 5", "expected a mapping of settings such as 'method'"]),
    ],
)
def test_wrong_type_or_range_is_one_line_quoting_the_value(changes: dict[str, Any], mentions: list[str]) -> None:
    message = error_of(changes)
    for mention in mentions:
        assert mention in message


@pytest.mark.parametrize(
    ("changes", "key", "accepted"),
    [
        ({"classification": {"method": "svm"}}, "classification.method", "one of rules, learned, patch"),
        ({"endplates": {"depth": {"mode": "cm"}}}, "endplates.depth.mode", "one of fraction, mm"),
        ({"segmentation": {"cpu_precision": "int8"}}, "segmentation.cpu_precision", "one of float32, bfloat16, auto"),
        ({"series_selection": {"selection": {"plane": "oblique"}}}, "series_selection.selection.plane",
         "one of sagittal, coronal, axial"),
        ({"series_selection": {"selection": {"t2_weightings": ["T2", "T3"]}}}, "series_selection.selection.t2_weightings",
         ", ".join(w.value for w in Weighting)),
    ],
)
def test_enums_refuse_unknown_values_listing_the_accepted_ones(changes: dict[str, Any], key: str, accepted: str) -> None:
    message = error_of(changes)
    assert f"'{key}'" in message and accepted in message


PACKAGE = Path(__file__).resolve().parents[1] / "modic"


def _emitted_warning_codes() -> set[str]:
    """Every warning code modic can emit, read from its source.

    A code is the first argument of a ``Flag(...)`` call, or an input problem
    that :func:`modic.pipeline.input_flags` turns into a Flag: the value of a
    ``"flag"`` key in a decision-log entry, or the code of a ``(code, message)``
    pair appended to a reader's ``flags``. A Flag whose code is not written
    out fails the test (except the forwarding in ``input_flags``), so that no
    code escapes the scan.
    """
    codes: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        forwarding = {
            id(node)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef) and function.name == "input_flags"
            for node in ast.walk(function)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name == "Flag":
                    code = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "code")
                    if isinstance(code, ast.Constant) and isinstance(code.value, str):
                        codes.add(code.value)
                    else:
                        assert id(node) in forwarding, f"{path}:{node.lineno}: a Flag code that is not a literal"
                elif (
                    name == "append"
                    and isinstance(node.func, ast.Attribute)
                    and ast.unparse(node.func.value).split(".")[-1] == "flags"
                    and node.args
                    and isinstance(node.args[0], ast.Tuple)
                    and isinstance(node.args[0].elts[0], ast.Constant)
                ):
                    codes.add(node.args[0].elts[0].value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "flag" and isinstance(value, ast.Constant):
                        codes.add(value.value)
    return codes


def test_every_warning_code_modic_emits_is_a_warning_code_member() -> None:
    emitted = _emitted_warning_codes()
    assert {"s1_not_found", "reference_marrow_affected", "monochrome1_inverted", "exam_mixed"} <= emitted, (
        "the scan finds Flag calls, decision-log flags and reader flags"
    )
    members = {code.value for code in WarningCode}
    assert emitted - members == set(), "add these codes to modic.settings.enums.WarningCode"
    assert members - emitted == set(), "these WarningCode members are emitted nowhere; remove them"


def test_a_broken_shipped_value_names_the_shipped_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from modic.settings import loader

    original = loader.load_shipped

    def broken(name: str) -> dict[str, Any]:
        data = original(name)
        return {**data, "memory": {"max_voxels": -1}} if name == "io.yaml" else data

    monkeypatch.setattr(loader, "load_shipped", broken)
    assert "config configs/io.yaml: 'memory.max_voxels' is -1" in error_of({"classification": {"method": "rules"}})


# --- the objects ---------------------------------------------------------------------------------------------------


def test_settings_are_frozen_hashable_and_picklable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHIPPED.classification.method = ClassifierMethod.PATCH  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        SHIPPED.levels = SHIPPED.levels  # type: ignore[misc]
    with pytest.raises(TypeError):
        SHIPPED.series_selection.image_sop_classes["1.2.3"] = "x"  # type: ignore[index]
    assert isinstance(SHIPPED.levels.graded, tuple)
    assert pickle.loads(pickle.dumps(SHIPPED)) == SHIPPED  # batch workers receive them
    assert hash(SHIPPED) == hash(load_settings({}))


def test_enum_members_read_as_their_yaml_text() -> None:
    assert SHIPPED.classification.method == "rules" and SHIPPED.classification.method.value == "rules"
    assert SHIPPED.to_dict()["classification"]["method"] == "rules"


# --- the effect on the stages ----------------------------------------------------------------------------------------


def test_io_override_reaches_the_reader(study: Path) -> None:
    """``io`` in a partial settings mapping given to the API changes how the study is read."""
    from modic.api import analyze_study

    with pytest.raises(InputError, match=r"above the memory guard of 1,000 voxels"):
        analyze_study(study, settings={"io": {"memory": {"max_voxels": 1000}}}, device="cpu")


def test_series_selection_override_reaches_the_selection(study: Path) -> None:
    from modic.api import analyze_study

    with pytest.raises(SeriesSelectionError, match=r"modality 'MR' is not one of \['CT'\]"):
        analyze_study(study, settings={"series_selection": {"modalities": ["CT"]}}, device="cpu")


def test_cli_config_overrides_io(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = settings_file(tmp_path, "io:\n  memory:\n    max_voxels: 1000\n")
    code = main(["analyze", str(study), "--config", str(config), "-o", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "memory guard of 1,000 voxels" in err
    assert not (tmp_path / "out").exists()


def test_cli_misspelt_key_is_a_one_line_config_error(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 (a ConfigError, as every invalid config file), one line naming the file, key and spelling."""
    config = settings_file(tmp_path, "classification:\n  mehtod: learned\n")
    code = main(["analyze", str(study), "--config", str(config), "-o", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert lines[0] == (
        f"modic: error: config {config}: unknown key 'classification.mehtod'; did you mean 'classification.method'?"
    )


def test_batch_job_reads_with_its_io_settings(study: Path, tmp_path: Path) -> None:
    from modic.batch.sources import discover
    from modic.batch.worker import BatchJob, process_study

    settings = load_settings({"io": {"memory": {"max_voxels": 1000}}})
    (source,) = discover(study, io_config=settings.io)
    outcome = process_study(source, BatchJob(out=tmp_path / "out", config=settings, device="cpu"))
    assert outcome.status == "failed" and "memory guard of 1,000 voxels" in str(outcome.error)


def test_report_carries_the_effective_settings(study: Path) -> None:
    from modic.io.study import load_study
    from modic.pipeline import Models, analyze_images
    from modic.report.json_report import build_report

    settings = load_settings({"classification": {"low_confidence": 0.99, "voxels": {"t1_low": 0.78}},
                              "levels": {"graded": ["L4-L5", "L5-S1"]}})
    analysis = analyze_images(load_study(study), models=Models.load(settings, device="cpu"), config=settings)
    report = build_report(analysis)
    assert json.loads(json.dumps(report)) == report
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parent.parent / "docs" / "report.schema.json").read_text("utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(report))
    effective = settings.to_dict()
    assert report["settings"] == {key: effective[key] for key in ("levels", "endplates", "classification")}
    assert report["settings"]["classification"]["low_confidence"] == 0.99
    assert report["settings"]["classification"]["voxels"]["t1_low"] == 0.78
    assert report["settings"]["levels"]["graded"] == ["L4-L5", "L5-S1"]
    assert [level["level"] for level in report["levels"]] == ["L4-L5", "L5-S1"]
    assert any(w["code"] == "low_confidence" for w in report["warnings"])
