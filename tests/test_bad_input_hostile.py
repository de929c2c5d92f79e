"""Hostile inputs that must be one-line errors, not crashes: huge headers, NaN voxels, YAML traps, misspelt settings.

Same contract as ``test_bad_input``: exit 1 (2 for usage errors), one
``modic: error:`` line naming the problem and the way out, no traceback, no
output left behind.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.bad_input import assert_clean_failure, run_cli
from helpers.io import write

from modic.io.formats import read_volume
from modic.io.study import load_study
from modic.resources import config_file

pytestmark = pytest.mark.timeout(120)

HUGE = (4000, 4000, 4000)


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return tmp_path / "results" / "out"


def _analyze(capsys: pytest.CaptureFixture[str], *args: object):  # type: ignore[no-untyped-def]
    return run_cli(capsys, ["analyze", *args, "--device", "cpu"])


# --- image files ---------------------------------------------------------------------------------------------------


def _sparse_nifti(path: Path) -> Path:
    """A NIfTI header of 64 billion float voxels over a sparse file (takes no disk space)."""
    header = nib.Nifti1Header()
    header.set_data_shape(HUGE)
    header.set_data_dtype(np.float32)
    header.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    with open(path, "wb") as handle:
        header.write_to(handle)
        handle.truncate(352 + int(np.prod(HUGE)) * 4)
    return path


def _sparse_mha(path: Path) -> Path:
    text = "ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    with open(path, "wb") as handle:
        handle.write(text.encode())
        handle.truncate(len(text) + int(np.prod(HUGE)) * 4)
    return path


@pytest.mark.parametrize("make", [_sparse_nifti, _sparse_mha], ids=["nifti", "mha"])
def test_enormous_image_header_is_refused_before_reading(
    tmp_path: Path, out: Path, make, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    image = make(tmp_path / ("t1.nii" if make is _sparse_nifti else "t1.mha"))
    started = time.monotonic()
    result = _analyze(capsys, "--t1", image, "-o", out)
    assert_clean_failure(result, mentions=[str(image), "4000 x 4000 x 4000", "memory.max_voxels"], outputs=[out])
    assert time.monotonic() - started < 20, "the voxels must not be read"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_image_with_nan_or_infinite_voxels(tmp_path: Path, out: Path, value: float,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = np.ones((32, 32, 5), np.float32)
    data[3, 4, 2] = value
    image = tmp_path / "t1.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.0, 1.0, 1.0, 1.0]) + np.diag([4.0, 0, 0, 0])), str(image))
    result = _analyze(capsys, "--t1", image, "-o", out)
    assert_clean_failure(result, mentions=[str(image), "1 voxel(s) that are NaN or infinite", "replace them"],
                         outputs=[out])


def test_nifti_without_orientation_codes_is_read_with_a_recorded_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = nib.Nifti1Image(np.ones((6, 40, 40), np.float32), None)
    assert int(image.header["qform_code"]) == 0 and int(image.header["sform_code"]) == 0
    path = tmp_path / "t2.nii.gz"
    nib.save(image, str(path))
    with caplog.at_level(logging.WARNING, logger="modic"):
        volume = read_volume(path)
    assert any("no orientation" in record.getMessage() and str(path) in record.getMessage()
               for record in caplog.records)
    assert "assumed" in volume.info["warnings"][0]
    try:
        images = load_study(t2=path)
    except Exception as exc:  # noqa: BLE001 - the geometry may be refused later; the record is what is checked here
        pytest.fail(f"load_study refused the file: {exc}")
    (decision,) = [d for d in images.decisions if d["event"] == "input"]
    assert any("qform_code and sform_code are 0" in note for note in decision["warnings"])


def test_nifti_with_orientation_has_no_such_warning(tmp_path: Path) -> None:
    path = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 40, 40), np.float32), np.eye(4)), str(path))
    assert "warnings" not in read_volume(path).info


# --- YAML files ----------------------------------------------------------------------------------------------------


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.json"
    path.write_text('{"schema": "modic-report", "schema_version": "1.0", "study": {"key": "k"}, "levels": [], '
                    '"warnings": []}')
    return path


YAML_TRAPS = {
    "repeated key": ("age_years: 40\npain_duration_months: 12\nage_years: 70\n",
                     ["key 'age_years' is given twice", "lines 1 and 3"]),
    "deep lists": ("age_years: " + "[" * 3000 + "]" * 3000 + "\n", ["nested more than", "age_years"]),
    "deep mappings": ("".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v: 1\n",
                      ["nested more than", "k0.k1.k2"]),
}


@pytest.mark.parametrize("case", sorted(YAML_TRAPS))
def test_clinical_yaml_traps(tmp_path: Path, report: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    text, mentions = YAML_TRAPS[case]
    clinical = tmp_path / "patient.yaml"
    clinical.write_text(text)
    target = tmp_path / "candidacy.json"
    result = run_cli(capsys, ["candidacy", report, "--clinical", clinical, "-o", target])
    assert_clean_failure(result, mentions=[str(clinical), *mentions], outputs=[target])


def _analysis_config(tmp_path: Path, text_change) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "analysis.yaml"
    path.write_text(text_change(config_file("analysis.yaml").read_text(encoding="utf-8")))
    return path


@pytest.fixture()
def small_study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write(root / "t1", "t1", 3)
    write(root / "t2", "t2", 4)
    return root


@pytest.mark.parametrize(
    ("change", "mentions"),
    [
        (lambda t: t.replace("  batch_size: 16", "  batchsize: 16"),
         ["unknown key 'segmentation.batchsize'", "did you mean 'segmentation.batch_size'"]),
        (lambda t: t.replace("    min_fraction: 0.20", "    min_fracton: 0.20"),
         ["unknown key 'classification.rules.min_fracton'", "did you mean 'classification.rules.min_fraction'"]),
        (lambda t: t.replace("runtime:", "runtim:"), ["unknown key 'runtim'", "did you mean 'runtime'"]),
        (lambda t: t + "\nsegmentation:\n  bundle: other\n", ["key 'segmentation' is given twice"]),
        (lambda t: t.replace("  batch_size: 16", "  batch_size: 16\n  batch_size: 4"),
         ["key 'batch_size' is given twice"]),
    ],
    ids=["misspelt key", "misspelt nested key", "misspelt section", "repeated section", "repeated key"],
)
def test_analysis_config_misspelt_or_repeated_keys(
    small_study: Path, tmp_path: Path, out: Path, change, mentions: list[str],  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _analysis_config(tmp_path, change)
    assert config.read_text() != config_file("analysis.yaml").read_text(encoding="utf-8")
    result = _analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=[str(config), *mentions], outputs=[out])


def test_shipped_yaml_files_have_no_repeated_keys() -> None:
    from modic.config import load_yaml

    for path in sorted(config_file("analysis.yaml").parent.rglob("*.yaml")):
        assert isinstance(load_yaml(path), dict), path


# --- more of the same, at the other doors ---------------------------------------------------------------------------


def test_policy_yaml_with_a_repeated_key(tmp_path: Path, report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = config_file("candidacy/default.yaml").read_text(encoding="utf-8")
    first_key = next(line.split(":")[0] for line in shipped.splitlines() if line and line[0].isalpha())
    policy = tmp_path / "policy.yaml"
    policy.write_text(shipped + f"\n{first_key}: again\n")
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    result = run_cli(capsys, ["candidacy", report, "--clinical", clinical, "--policy", policy])
    assert_clean_failure(result, mentions=[str(policy), f"key '{first_key}' is given twice"])


def test_analysis_config_nested_too_deep(
    small_study: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _analysis_config(tmp_path, lambda t: t + "\nextra: " + "[" * 5000 + "]" * 5000 + "\n")
    result = _analyze(capsys, small_study, "--config", config, "-o", out)
    assert_clean_failure(result, mentions=[str(config), "nested more than"], outputs=[out])


def test_enormous_4d_nifti_header(tmp_path: Path) -> None:
    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, 512, 64))
    header.set_data_dtype(np.int16)
    path = tmp_path / "t1.nii"
    with open(path, "wb") as handle:
        header.write_to(handle)
        handle.truncate(352 + 512 * 512 * 512 * 64 * 2)
    with pytest.raises(Exception, match=r"512 x 512 x 512 x 64 = 8,589,934,592 voxels.*memory.max_voxels"):
        read_volume(path)


def test_mha_with_nan_voxels(tmp_path: Path) -> None:
    import SimpleITK as sitk

    array = np.zeros((5, 16, 16), np.float32)
    array[2, 3, 3] = np.nan
    path = tmp_path / "t2.mha"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    with pytest.raises(Exception, match=r"t2.mha' has 1 voxel\(s\) that are NaN or infinite; replace them"):
        read_volume(path)


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        (["--study-timeout", "0"], ["--study-timeout 0", "positive"]),
        (["--study-timeout", "-5"], ["--study-timeout -5", "positive"]),
        (["--study-timeout", "10", "--executor", "dask"], ["--study-timeout applies to --executor local"]),
    ],
)
def test_batch_study_timeout_usage_errors(
    small_study: Path, tmp_path: Path, options: list[str], mentions: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, ["batch", small_study, "-o", tmp_path / "batch_out", *options])
    assert_clean_failure(result, exit_code=2, mentions=mentions)
