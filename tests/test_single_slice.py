"""The single-slice path: ``modic analyze-slice``, :mod:`modic.io.slice_pair` and ``analyze_images`` on a slice pair.

The mid-sagittal T1 and T2 slices of one synthetic study with planted Modic
changes (the "kissing" study of :mod:`helpers.synthetic`: type 1 at L4
inferior, type 2 at L5 superior) are written as 8-bit PNG pictures and as
single-slice NIfTI files. The command line runs once on each pair (module
fixture), in-process through :func:`modic.cli.main`; the Python API path runs
on the same files.

Failures of the picture path (pictures of different size without
``--t2-spacing``, a picture without ``--spacing``, impossible spacings,
unreadable or colour pictures) are covered by ``test_bad_input_files``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from helpers.bad_input import assert_clean_failure, run_cli
from helpers.synthetic import PLANTED, SYNTH_CONFIG, planted_specs, write_synth_config
from helpers.segmentation import REPO_ROOT

from modic.cli import main
from modic.io.formats import read_slice, write_nifti
from modic.io.slice_pair import load_slice_pair
from modic.pipeline import Models, analyze_images, is_slice_pair
from modic.results import StudyAnalysis
from modic.settings import load_settings
from modic.synth import generate_study, to_study_images

pytestmark = pytest.mark.timeout(300)

CONFIG = load_settings()
SEED, CHANGES = PLANTED["kissing"]
LEVELS = ["L3-L4", "L4-L5", "L5-S1"]
EXPECTED = {
    "L3 inferior": "0", "L4 superior": "0",
    "L4 inferior": "1", "L5 superior": "2",
    "L5 inferior": "0", "S1 superior": "0",
}
"""Planted type of every graded endplate (measured on the mid-sagittal slice: deciding fractions far above 0.25)."""


def to_png(pixels: np.ndarray, path: Path) -> Path:
    """Write ``pixels`` as an 8-bit grayscale PNG, windowed to their 99.5th percentile as a PACS export would."""
    top = float(np.percentile(pixels, 99.5))
    Image.fromarray(np.clip(pixels / top * 255.0, 0, 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The mid-sagittal T1/T2 slice of the synthetic study as PNG and NIfTI files, with the study's truth."""
    root = tmp_path_factory.mktemp("slice_pair")
    study = generate_study(seed=SEED, config=str(write_synth_config(root, SYNTH_CONFIG)), modic=planted_specs(CHANGES))
    images = to_study_images(study)  # T2 on the T1 grid: both slices share one position and spacing
    assert images.t1 is not None and images.t2 is not None
    assert images.t1.axcodes == ("P", "I", "R"), "the slices are written assuming the DICOM sagittal layout"
    counts = (study.vertebra_instances.array > 0).sum(axis=(0, 1))
    k = int(np.argmax(counts))  # the slice crossing the most vertebral body: mid-sagittal
    files: dict[str, Path] = {}
    for role, volume in (("t1", images.t1), ("t2", images.t2)):
        # Picture rows run superior->inferior (array axis 1), columns anterior->posterior (axis 0).
        files[f"{role}_png"] = to_png(volume.array[:, :, k].T, root / f"{role}.png")
        files[f"{role}_nii"] = write_nifti(volume.slice_at(k), root / f"{role}.nii.gz")
    spacing = (images.t1.spacing[1], images.t1.spacing[0])  # (row_mm, col_mm)
    truth = {e["name"]: str(e["mixed"] or e["modic_type"]) for e in study.truth["endplates"]}
    return SimpleNamespace(root=root, files=files, spacing=spacing, k=k, truth=truth, slice=images.t1.array[:, :, k])


@pytest.fixture(scope="module")
def cli(pair: SimpleNamespace) -> dict[str, SimpleNamespace]:
    """``modic analyze-slice`` on the PNG pair (with ``--spacing``) and on the NIfTI pair (geometry from the files)."""
    runs = {}
    for kind in ("png", "nii"):
        out = pair.root / f"out_{kind}"
        args = ["-q", "analyze-slice", "--t1", str(pair.files[f"t1_{kind}"]), "--t2", str(pair.files[f"t2_{kind}"])]
        if kind == "png":
            args += ["--spacing", *(f"{v:.6f}" for v in pair.spacing)]
        code = main([*args, "-o", str(out), "--device", "cpu"])
        path = out / "report.json"
        report = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        runs[kind] = SimpleNamespace(code=code, out=out, report=report)
    return runs


@pytest.fixture(scope="module")
def models() -> Models:
    return Models.load(CONFIG, device="cpu")


def report_grades(report: dict[str, Any]) -> dict[str, str]:
    return {e["endplate"]: str(e["mixed"] or e["modic_type"]) for level in report["levels"] for e in level["endplates"]}


def analysis_grades(analysis: StudyAnalysis) -> dict[str, str]:
    return {g.endplate: str(g.mixed or g.modic_type) for level in analysis.levels for g in level.endplates}


def test_planted_changes_cross_the_chosen_slice(pair: SimpleNamespace) -> None:
    """The truth the tests compare with: the planted types, which the mid-sagittal slice must show."""
    assert {name: t for name, t in pair.truth.items() if t != "0"} == {"L4 inferior": "1", "L5 superior": "2"}
    assert {name: pair.truth[name] for name in EXPECTED} == EXPECTED


def test_png_and_nifti_slices_are_read_alike(pair: SimpleNamespace) -> None:
    """A picture (head up, anterior left) and a NIfTI slice of the same image give the same oriented slice."""
    from_png = read_slice(pair.files["t1_png"], spacing=pair.spacing)
    from_nifti = read_slice(pair.files["t1_nii"])
    assert from_png.shape == from_nifti.shape == (*pair.slice.shape, 1)
    assert from_png.axcodes == from_nifti.axcodes == ("P", "I", "R")
    np.testing.assert_allclose(from_png.spacing[:2], from_nifti.spacing[:2], rtol=1e-5)
    np.testing.assert_allclose(from_nifti.array[:, :, 0], pair.slice, rtol=1e-6)
    correlation = np.corrcoef(from_png.array.ravel(), from_nifti.array.ravel())[0, 1]
    assert correlation > 0.99, "the picture was read in another orientation than the NIfTI slice"


@pytest.mark.parametrize("kind", ["png", "nii"])
def test_analyze_slice_reports_the_planted_types(cli: dict[str, SimpleNamespace], kind: str) -> None:
    run = cli[kind]
    assert run.code == 0
    assert run.report is not None, f"no report.json in {run.out}"
    report = run.report
    assert report["study"]["single_slice"] is True
    assert report["anatomy"]["size_unit"] == "mm2"
    assert [level["level"] for level in report["levels"]] == LEVELS
    assert report_grades(report) == EXPECTED
    levels = {level["level"]: (level["modic_type"], level["mixed"]) for level in report["levels"]}
    assert levels == {"L3-L4": (0, None), "L4-L5": (1, "1/2"), "L5-S1": (0, None)}
    assert {"levels.csv", "report.html", "sagittal_t1.png", "sagittal_t2.png"} <= {p.name for p in run.out.iterdir()}
    assert not [p.name for p in run.out.parent.iterdir() if p.name.startswith(".modic-tmp")]
    registration = [d for d in report["input_decisions"] if d["event"] == "register"]
    assert len(registration) == 1 and registration[0]["correlation"] > 0.5
    assert max(abs(v) for v in registration[0]["shift_mm"]) < 3.0, "the slices are co-registered already"


def test_png_and_nifti_pairs_grade_alike(cli: dict[str, SimpleNamespace]) -> None:
    """8-bit windowing of the pictures changes no grade (features are relative to the reference marrow)."""
    png, nii = cli["png"].report, cli["nii"].report
    assert png is not None and nii is not None
    for ours, theirs in zip(png["levels"], nii["levels"], strict=True):
        for a, b in zip(ours["endplates"], theirs["endplates"], strict=True):
            assert (a["endplate"], a["modic_type"], a["mixed"]) == (b["endplate"], b["modic_type"], b["mixed"])
            assert a["pattern_fractions"] == pytest.approx(b["pattern_fractions"], abs=0.1)


def test_python_api_gives_the_cli_grades(
    pair: SimpleNamespace, cli: dict[str, SimpleNamespace], models: Models
) -> None:
    images = load_slice_pair(t1=pair.files["t1_png"], t2=pair.files["t2_png"], spacing=pair.spacing)
    assert is_slice_pair(images)
    assert images.t1 is not None and images.t2 is not None and images.t2_native is not None
    assert images.t1.shape == images.t2.shape == (*pair.slice.shape, 1)
    assert [d["event"] for d in images.decisions] == ["input", "input"]
    analysis = analyze_images(images, models=models, config=CONFIG)
    assert analysis.anatomy.single_slice
    report = cli["png"].report
    assert report is not None
    assert analysis_grades(analysis) == report_grades(report) == EXPECTED
    confidences = {g.endplate: g.confidence for level in analysis.levels for g in level.endplates}
    for level in report["levels"]:
        for endplate in level["endplates"]:
            assert confidences[endplate["endplate"]] == pytest.approx(endplate["confidence"], abs=1e-4)


def test_t2_picture_with_its_own_spacing_and_offset(pair: SimpleNamespace, models: Models, tmp_path: Path) -> None:
    """A T2 picture of another size and spacing, cut 12 rows shorter at the top, is scaled by its own spacing
    (``t2_spacing``) and aligned on the segmented spine: the shift found is the cut, and the grades stand."""
    with Image.open(pair.files["t2_png"]) as t2:
        width, height = t2.size
        size = (round(width * 0.8), round(height * 0.8))
        cut = 12
        t2.resize(size, Image.BILINEAR).crop((0, cut, size[0], size[1])).save(tmp_path / "t2_small.png")
    t2_spacing = (pair.spacing[0] * height / size[1], pair.spacing[1] * width / size[0])
    images = load_slice_pair(t1=pair.files["t1_png"], t2=tmp_path / "t2_small.png", spacing=pair.spacing,
                             t2_spacing=t2_spacing)
    assert images.t2_native is not None and images.t2_native.shape == (size[0], size[1] - cut, 1)
    analysis = analyze_images(images, models=models, config=CONFIG)
    registration = analysis.images.decisions[-1]
    assert registration["event"] == "register" and registration["correlation"] > 0.7
    along_ap, along_spine = registration["shift_mm"]
    assert abs(along_ap) < 2.0
    assert abs(along_spine) == pytest.approx(cut * t2_spacing[0], abs=2.0)
    # A T2 downsampled by 0.8 and realigned blurs the band's edge: the main type of
    # every endplate must stand; a minor second pattern may appear as a mixed type.
    main_types = {g.endplate: str(g.modic_type) for level in analysis.levels for g in level.endplates}
    assert main_types == EXPECTED


def test_t1_slice_alone(pair: SimpleNamespace, models: Models) -> None:
    """Without a T2, low T1 cannot be told apart as type 1 or 3: that endplate is undetermined, with a note."""
    images = load_slice_pair(t1=pair.files["t1_png"], t2=None, spacing=pair.spacing)
    assert images.t2 is None and not is_slice_pair(images)
    assert [d["event"] for d in images.decisions] == ["input", "missing"]
    analysis = analyze_images(images, models=models, config=CONFIG)
    assert "missing_t2" in [flag.code for flag in analysis.warnings]
    assert analysis_grades(analysis) == {**EXPECTED, "L4 inferior": "None"}
    cap = float(CONFIG.classification.rules.single_sequence_confidence)
    grades = {g.endplate: g for level in analysis.levels for g in level.endplates}
    assert all(g.confidence <= cap for g in grades.values())
    assert grades["L4 inferior"].confidence == 0.0
    assert "type 1 or type 3" in (grades["L4 inferior"].note or "")
    assert "undetermined_endplates" in [flag.code for flag in analysis.warnings]
    assert grades["L5 superior"].features.t2 is None


def test_spacing_needs_two_values(pair: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--spacing`` with one value is a usage error (exit 2, one line) before anything is read or written."""
    out = tmp_path / "out"
    result = run_cli(capsys, ["analyze-slice", "--t1", pair.files["t1_png"], "--spacing", "0.9", "-o", out])
    assert_clean_failure(result, exit_code=2, mentions=["--spacing", "expected 2 arguments"], outputs=[out])


def test_separability_features_belong_to_their_level(pair: SimpleNamespace, models: Models) -> None:
    """``scripts/spider_separability.py`` measures each level on its own endplates, bodies and disc,
    and leaves out a level whose disc was not found."""
    path = REPO_ROOT / "scripts" / "spider_separability.py"
    spec = importlib.util.spec_from_file_location("spider_separability", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    images = load_slice_pair(t1=pair.files["t1_png"], t2=pair.files["t2_png"], spacing=pair.spacing)
    analysis = analyze_images(images, models=models, config=CONFIG)
    features = {level: script.level_features(analysis, level) for level in LEVELS}
    assert all(f is not None for f in features.values()), features
    planted, clean = features["L4-L5"], [features["L3-L4"], features["L5-S1"]]
    # L4 inferior carries type 1 and L5 superior type 2: the level takes the larger share of each
    # (a clean band of this 8-bit slice holds a few per cent of either pattern at most).
    for key in ("marrow_type1_fraction", "marrow_type2_fraction"):
        assert planted[key] > 0.3 and all(f[key] < 0.1 for f in clean), (key, planted[key], [f[key] for f in clean])
    # Fat is bright on T1: the planted level's band outshines the clean ones against their own discs.
    assert all(planted["disc_t1_band_p90"] > f["disc_t1_band_p90"] + 0.3 for f in clean)
    assert all(f["disc_t1_pair_bodies"] > 1 for f in features.values())  # marrow is brighter than disc on T1

    discs = [d for d in analysis.anatomy.discs if d.name != "L4-L5"]
    without_disc = dataclasses.replace(analysis, anatomy=dataclasses.replace(analysis.anatomy, discs=discs))
    assert script.level_features(without_disc, "L4-L5") is None
    assert script.level_features(without_disc, "L3-L4") == features["L3-L4"]
