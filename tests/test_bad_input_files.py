"""Bad files other than DICOM folders: NIfTI/picture inputs, clinical and analysis YAML, model bundles, report.json.

Same contract as ``test_bad_input``: exit 1 (2 for usage errors), one
``modic: error:`` line naming the problem and the way out, no traceback,
no output left behind. A couple of cases run ``modic`` as a real process
to check the exit code and stderr end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
import yaml
from PIL import Image

from modic.resources import config_file, models_dir
from helpers.bad_input import Result, assert_clean_failure, run_cli, snapshot
from helpers.io import volume, write

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return tmp_path / "results" / "out"


@pytest.fixture()
def small_study(tmp_path: Path) -> Path:
    """A small clean sagittal T1 and T2 that load in a fraction of a second."""
    root = tmp_path / "study"
    write(root / "t1", "t1", 3)
    write(root / "t2", "t2", 4)
    return root


def analyze(capsys: pytest.CaptureFixture[str], *args: object) -> Result:
    return run_cli(capsys, ["analyze", *args, "--device", "cpu"])


def analyze_slice(capsys: pytest.CaptureFixture[str], *args: object) -> Result:
    return run_cli(capsys, ["analyze-slice", *args, "--device", "cpu"])


def png(path: Path, shape: tuple[int, int] = (64, 48), *, colour: bool = False) -> Path:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, size=(*shape, 3) if colour else shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(array.astype(np.float32), np.eye(4) if affine is None else affine), str(path))
    return path


# --- NIfTI / MHA volumes ------------------------------------------------------------------------------------------


def test_nifti_that_does_not_exist(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = analyze(capsys, "--t1", tmp_path / "t1.nii.gz", "-o", out)
    assert_clean_failure(result, mentions=["t1.nii.gz", "does not exist"], outputs=[out])


def test_nifti_with_garbage_bytes(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t1.nii.gz").write_bytes(os.urandom(2048))
    (tmp_path / "t2.mha").write_bytes(b"ObjectType = Image\nNDims = 3\n" + os.urandom(512))
    result = analyze(capsys, "--t1", tmp_path / "t1.nii.gz", "-o", out)
    assert_clean_failure(result, mentions=["cannot read NIfTI", "t1.nii.gz"], outputs=[out])
    result = analyze(capsys, "--t2", tmp_path / "t2.mha", "-o", out)
    assert_clean_failure(result, mentions=["cannot read", "t2.mha"], outputs=[out])


def test_nifti_that_is_a_fifo_does_not_hang(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "t1.nii.gz")
    result = analyze(capsys, "--t1", tmp_path / "t1.nii.gz", "-o", out)
    assert_clean_failure(result, mentions=["t1.nii.gz", "not a regular file"], outputs=[out])


def test_nifti_that_is_not_a_3d_volume(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_nifti(tmp_path / "t1.nii", np.zeros((8, 8, 4, 3)))
    result = analyze(capsys, "--t1", path, "-o", out)
    assert_clean_failure(result, mentions=["3D scalar volume"], outputs=[out])


def test_mha_with_zero_spacing(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "TransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\nElementSpacing = 0 0 0\nDimSize = 64 64 8\n"
        "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    path = tmp_path / "t1.mha"
    path.write_bytes(header.encode() + np.zeros((8, 64, 64), np.float32).tobytes())
    result = analyze(capsys, "--t1", path, "-o", out)
    assert_clean_failure(result, mentions=["cannot read", "t1.mha", "spacing"], outputs=[out])


def test_image_too_small_for_the_network(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_nifti(tmp_path / "t1.nii", np.zeros((8, 8, 4)))
    result = analyze(capsys, "--t1", path, "-o", out)
    assert_clean_failure(result, mentions=["t1.nii"], outputs=[out])


def test_volume_file_of_unknown_type(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t1.txt").write_text("not an image")
    result = analyze(capsys, "--t1", tmp_path / "t1.txt", "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["not a NIfTI or MHA", ".nii"], outputs=[out])


def test_folder_and_files_together(small_study: Path, tmp_path: Path, out: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    result = analyze(capsys, small_study, "--t1", tmp_path / "t1.nii.gz", "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["not both"], outputs=[out])


# --- single-slice pictures ----------------------------------------------------------------------------------------


def test_picture_pair_of_different_sizes(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1, t2 = png(tmp_path / "t1.png", (64, 48)), png(tmp_path / "t2.png", (60, 48))
    result = analyze_slice(capsys, "--t1", t1, "--t2", t2, "--spacing", "1.0", "1.0", "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["different size", "--t2-spacing"], outputs=[out])


def test_picture_without_spacing(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1 = png(tmp_path / "t1.png")
    result = analyze_slice(capsys, "--t1", t1, "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["without pixel spacing", "--spacing"], outputs=[out])


@pytest.mark.parametrize("spacing", [("0", "1"), ("nan", "1"), ("-1", "1"), ("inf", "inf")])
def test_picture_with_impossible_spacing(
    tmp_path: Path, out: Path, spacing: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    t1 = png(tmp_path / "t1.png")
    result = analyze_slice(capsys, "--t1", t1, "--spacing", *spacing, "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["spacing", "positive millimetre"], outputs=[out])


def test_picture_that_is_not_an_image(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t1.png").write_bytes(os.urandom(300))
    result = analyze_slice(capsys, "--t1", tmp_path / "t1.png", "--spacing", "1", "1", "-o", out)
    assert_clean_failure(result, mentions=["cannot read image", "t1.png"], outputs=[out])


def test_colour_picture(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t1 = png(tmp_path / "t1.png", colour=True)
    result = analyze_slice(capsys, "--t1", t1, "--spacing", "1", "1", "-o", out)
    assert_clean_failure(result, mentions=["colour image", "grayscale"], outputs=[out])


def test_picture_that_is_a_fifo_does_not_hang(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "t1.png")
    result = analyze_slice(capsys, "--t1", tmp_path / "t1.png", "--spacing", "1", "1", "-o", out)
    assert_clean_failure(result, mentions=["t1.png", "not a regular file"], outputs=[out])


def test_dicom_slice_without_geometry_or_spacing(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [first, *_] = write(tmp_path / "series", "t1", 3, vol=volume((24, 20, 1)))
    ds = pydicom.dcmread(first)
    for keyword in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"):
        delattr(ds, keyword)
    ds.save_as(first, enforce_file_format=True)
    result = analyze_slice(capsys, "--t1", first, "-o", out)
    assert_clean_failure(result, mentions=["no ImageOrientationPatient", "spacing"], outputs=[out])


def test_slice_path_without_files(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = analyze_slice(capsys, "-o", out)
    assert_clean_failure(result, exit_code=2, mentions=["give a T1 slice"], outputs=[out])


# --- clinical facts, policies and analysis configs ----------------------------------------------------------------

CLINICAL_CASES = {
    "wrong-type": ("age_years: old\n", ["age_years", "'old'", "expected a number"]),
    "unknown-key": ("pain_duraton_months: 12\n", ["unknown field 'pain_duraton_months'", "pain_duration_months"]),
    "negative-months": ("pain_duration_months: -3\n", ["pain_duration_months", "-3", "impossible"]),
    "longer-than-life": ("age_years: 1\npain_duration_months: 30\n", ["longer than the patient's age"]),
    "not-a-mapping": ("- age_years\n- 40\n", ["must hold a mapping"]),
    "not-yaml": ("age_years: [40\n", ["not valid YAML"]),
    "boolean-as-text": ("spondylolysis: 'no'\n", ["spondylolysis", "true or false"]),
}


@pytest.fixture()
def minimal_report(tmp_path: Path) -> Path:
    """A report.json of the current schema whose content does not matter (the clinical file fails first)."""
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"schema": "modic-report", "schema_version": "1.0", "study": {"key": "k"},
                                "levels": [], "warnings": []}))
    return path


@pytest.mark.parametrize("case", sorted(CLINICAL_CASES))
def test_bad_clinical_file(
    tmp_path: Path, minimal_report: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, mentions = CLINICAL_CASES[case]
    clinical = tmp_path / "patient.yaml"
    clinical.write_text(text)
    result_file = tmp_path / "candidacy.json"
    result = run_cli(capsys, ["candidacy", minimal_report, "--clinical", clinical, "-o", result_file])
    assert_clean_failure(result, mentions=[str(clinical), *mentions], outputs=[result_file])


def test_bad_clinical_file_stops_analyze_before_any_output(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("conservative_care_months: -6\n")
    result = analyze(capsys, small_study, "--clinical", clinical, "-o", out)
    assert_clean_failure(result, mentions=["conservative_care_months", "impossible"], outputs=[out])


def test_clinical_file_that_is_a_fifo(tmp_path: Path, minimal_report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.mkfifo(tmp_path / "patient.yaml")
    result = run_cli(capsys, ["candidacy", minimal_report, "--clinical", tmp_path / "patient.yaml"])
    assert_clean_failure(result, mentions=["patient.yaml", "not a regular file"])


def test_unknown_policy(tmp_path: Path, minimal_report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    result = run_cli(capsys, ["candidacy", minimal_report, "--clinical", clinical, "--policy", "lenient"])
    assert_clean_failure(result, mentions=["'lenient'", "shipped: default"])


def analysis_config(tmp_path: Path, change: dict[str, dict[str, object]]) -> Path:
    config = yaml.safe_load(config_file("analysis.yaml").read_text(encoding="utf-8"))
    for section, values in change.items():
        config[section].update(values)
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_analysis_config_section_that_is_not_a_mapping(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "analysis.yaml"
    config.write_text("levels: [L4-L5]\n")
    result = analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=[str(config), "'levels' is ['L4-L5']", "expected a mapping"], outputs=[out])


def test_unknown_classifier_method(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = analysis_config(tmp_path, {"classification": {"method": "magic"}})
    result = analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=["classification.method", "'magic'", "rules, learned"], outputs=[out])


def test_analysis_config_value_of_the_wrong_type(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = analysis_config(tmp_path, {"segmentation": {"batch_size": "x"}})
    result = analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=["batch_size", "'x'"], outputs=[out])


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        ({"segmentation": {"cpu_precision": "int8"}}, ["segmentation.cpu_precision", "'int8'", "float32, bfloat16"]),
        ({"runtime": {"keep_freed_memory_mb": 4096}}, ["runtime.keep_freed_memory_mb", "4096", "between 0 and 2047"]),
    ],
)
def test_runtime_settings_out_of_range(
    small_study: Path,
    tmp_path: Path,
    out: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, dict[str, object]],
    mentions: list[str],
) -> None:
    config = analysis_config(tmp_path, change)
    result = analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=mentions, outputs=[out])


@pytest.mark.parametrize("device", ["tpu", "cuda:0"])
def test_unusable_device(small_study: Path, out: Path, device: str, capsys: pytest.CaptureFixture[str]) -> None:
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
    result = run_cli(capsys, ["analyze", small_study, "-o", out, "--device", device])
    assert_clean_failure(result, mentions=[f"device '{device}'", "cpu"], outputs=[out])


# --- model bundles ------------------------------------------------------------------------------------------------


@pytest.fixture()
def bundle_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(models_dir() / "spine_seg", tmp_path / "spine_seg_copy"))


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_unchecked(bundle: Path) -> None:
    weights = bundle / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:5000])
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    metadata.pop("modic_model_sha256")
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata))


def _edit_inference(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        path = bundle / "configs" / "inference.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


MODEL_DAMAGE = {
    "flipped-bytes": (lambda b: _flip_bytes(b / "models" / "model.pt"), ["model.pt", "corrupt", "checksum"]),
    "truncated-unchecked": (_truncate_unchecked, ["model.pt", "cannot be loaded"]),
    "weights-missing": (lambda b: (b / "models" / "model.pt").unlink(), ["model.pt", "cannot read"]),
    "metadata-not-json": (lambda b: (b / "configs" / "metadata.json").write_text("{oops"),
                          ["metadata.json", "not JSON"]),
    "inference-missing": (lambda b: (b / "configs" / "inference.json").unlink(), ["inference.json", "missing"]),
    "no-network-def": (_edit_inference(lambda d: d.pop("network_def")), ["inference.json", "network_def"]),
    "unknown-network": (_edit_inference(lambda d: d["network_def"].update({"_target_": "NoSuchNet"})),
                        ["inference.json", "network"]),
    "wrong-layer-size": (_edit_inference(lambda d: d["network_def"].update({"out_channels": 7})),
                         ["model.pt", "cannot be loaded"]),
    "no-modic-section": (_edit_inference(lambda d: d.pop("modic")), ["inference.json", "modic"]),
}


@pytest.mark.parametrize("damage", sorted(MODEL_DAMAGE))
def test_damaged_model_bundle(
    small_study: Path, bundle_copy: Path, out: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    change, mentions = MODEL_DAMAGE[damage]
    change(bundle_copy)
    result = analyze(capsys, small_study, "--model", bundle_copy, "-o", out)
    assert_clean_failure(result, mentions=mentions, outputs=[out])


def test_model_folder_that_does_not_exist(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = analyze(capsys, small_study, "--model", tmp_path / "nothing", "-o", out)
    assert_clean_failure(result, mentions=["segmentation bundle", "nothing"], outputs=[out])


def test_damaged_learned_grading_bundle(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from modic.classification.features import FEATURE_NAMES

    bundle = tmp_path / "grade_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    blob = os.urandom(1000)
    (bundle / "models" / "model.skops").write_bytes(blob)
    (bundle / "configs" / "metadata.json").write_text(json.dumps(
        {"modic_model_sha256": hashlib.sha256(blob).hexdigest(), "feature_names": list(FEATURE_NAMES),
         "classes": [0, 1, 2, 3]}
    ))
    config = analysis_config(tmp_path, {"classification": {"method": "learned", "learned_bundle": str(bundle)}})
    result = analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=["learned grading model", "cannot be loaded"], outputs=[out])


# --- report.json for modic candidacy -------------------------------------------------------------------------------

REPORT_CASES = {
    "major-version-2": ('{"schema": "modic-report", "schema_version": "2.0", "levels": []}',
                        ["schema version '2.0'", "re-run modic analyze"]),
    "other-schema": ('{"schema": "something-else", "schema_version": "1.0"}', ["not a modic report"]),
    "not-json": ("{this is not json", ["not readable JSON"]),
    "json-list": ("[1, 2, 3]", ["not a modic report"]),
    "levels-not-a-list": ('{"schema": "modic-report", "schema_version": "1.0", "levels": {"L4-L5": 1}}',
                          ["'levels' must be a list"]),
    "bad-modic-type": ('{"schema": "modic-report", "schema_version": "1.0", "levels": '
                       '[{"level": "L4-L5", "endplates": [{"endplate": "L4 inferior", "modic_type": 7}]}]}',
                       ["modic_type 7"]),
    "latin-1-bytes": (b'{"schema": "modic-report", "x": "\xe9"}', ["not readable JSON"]),
}


@pytest.mark.parametrize("case", sorted(REPORT_CASES))
def test_bad_report_for_candidacy(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    content, mentions = REPORT_CASES[case]
    report = tmp_path / "report.json"
    report.write_bytes(content if isinstance(content, bytes) else content.encode())
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    result_file = tmp_path / "candidacy.json"
    result = run_cli(capsys, ["candidacy", report, "--clinical", clinical, "-o", result_file])
    assert_clean_failure(result, mentions=mentions, outputs=[result_file])


def test_report_that_is_a_fifo_or_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    os.mkfifo(tmp_path / "fifo.json")
    result = run_cli(capsys, ["candidacy", tmp_path / "fifo.json", "--clinical", clinical])
    assert_clean_failure(result, mentions=["fifo.json", "not a regular file"])
    result = run_cli(capsys, ["candidacy", tmp_path / "none.json", "--clinical", clinical])
    assert_clean_failure(result, mentions=["none.json", "does not exist"])


def test_candidacy_output_that_exists_is_left_unchanged_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"schema": "modic-report", "schema_version": "9.1"}')
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    outputs = tmp_path / "previous"
    outputs.mkdir()
    (outputs / "candidacy.json").write_text('{"verdict": "kept"}')
    before = snapshot(outputs)
    result = run_cli(capsys, ["candidacy", report, "--clinical", clinical, "-o", outputs / "candidacy.json"])
    assert_clean_failure(result, mentions=["schema version '9.1'"])
    assert snapshot(outputs) == before


def test_candidacy_output_below_a_file(
    tmp_path: Path, minimal_report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    result = run_cli(capsys, ["candidacy", minimal_report, "--clinical", clinical, "-o", blocker / "c.json"])
    assert_clean_failure(result, mentions=["cannot write", "c.json", "choose another output"])
    assert blocker.read_text() == "keep me"


def test_synth_output_below_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    result = run_cli(capsys, ["synth", blocker / "studies", "--config", "tiny"])
    assert_clean_failure(result, mentions=["cannot write", "studies"])
    assert blocker.read_text() == "keep me"


# --- as a real process ----------------------------------------------------------------------------------------------


def modic_process(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-m", "modic", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
        timeout=120, check=False,
    )


def test_process_exit_codes_and_stderr(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    failed = modic_process("analyze", "empty", "-o", "out", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.splitlines() == [
        "modic: error: no DICOM images found under 'empty' (0 file(s) seen); give the folder exported from the PACS"
    ]
    assert not (tmp_path / "out").exists()

    usage = modic_process("analyze", "empty", cwd=tmp_path)
    assert usage.returncode == 2
    [line] = usage.stderr.strip().splitlines()[-1:]
    assert "usage error" in line and "-o/--output" in line and "Traceback" not in usage.stderr

    debug = modic_process("--debug", "analyze", "empty", "-o", "out", cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr and "InputError" in debug.stderr


def test_process_non_utf8_description_prints_no_python_warning(tmp_path: Path) -> None:
    files = write(tmp_path / "study" / "t1", "t1", 3)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds["SeriesDescription"] = pydicom.DataElement(0x0008103E, "LO", b"T1 \xff\xfe sag")
        ds.save_as(path, enforce_file_format=True)
    result = modic_process("inspect", "study", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Warning:" not in result.stderr and "warn_and_log" not in result.stderr, result.stderr
