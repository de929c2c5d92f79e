"""The synthetic study generator (modic.synth), on the tiny config."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet
from scipy import ndimage

from modic.cli import main
from modic.errors import ConfigError, UsageError
from modic.io.volume import Volume, lps_to_ras
from modic.synth import (
    ModicSpec,
    Variant,
    available_transfer_syntaxes,
    generate_study,
    load_synth_settings,
    parse_modic,
    write_study,
)
from modic.synth.anatomy import level_names
from modic.synth.writer import TRANSFER_SYNTAXES

TINY = "tiny"


@pytest.fixture(scope="module")
def study():
    return generate_study(seed=11, config=TINY, modic="L4 inferior:1,L5 superior:2", variant={"sacrum_in_fov": True})


@pytest.fixture(scope="module")
def written(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / study.key
    write_study(study, out, extra_series=("stir", "axial", "localizer", "derived"), non_dicom_file=True)
    return out


# Determinism ----------------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_arrays_and_bytes(tmp_path):
    first = generate_study(seed=3, config=TINY, modic="L5 inferior:2")
    second = generate_study(seed=3, config=TINY, modic="L5 inferior:2")
    for name in ("t1", "t2"):
        np.testing.assert_array_equal(getattr(first, name).array, getattr(second, name).array)
        np.testing.assert_array_equal(getattr(first, name).affine, getattr(second, name).affine)
    for name, volume in first.labels.items():
        np.testing.assert_array_equal(volume.array, second.labels[name].array)
    assert first.truth == second.truth
    write_study(first, tmp_path / "a", extra_series=("stir", "localizer"))
    write_study(second, tmp_path / "b", extra_series=("stir", "localizer"))
    tree_a, tree_b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert tree_a.keys() == tree_b.keys()
    assert all(tree_a[k] == tree_b[k] for k in tree_a), [k for k in tree_a if tree_a[k] != tree_b[k]]


@pytest.mark.parametrize(
    ("config", "t1_digest", "t2_digest"),
    [
        # generator 1.1
        (TINY, "072f4cfb1c85e7acf27bb698b0b0d2cd88eaf4cd58c16776fcd543fed59e84da",
         "87716f8568b23b38442ea58e6a6b809bd3f63903a4651901f6e62d5c68adf03a"),
        # generator 1.0's discs, which the shipped models were trained on: the 1.0 digests
        ("tiny_1_0", "314ebd806687a1c60a7c83b921078a39f4c7b45014289584f5dade80ca90dc62",
         "8fac41ad7ba4d8bf08bec5ae684319e8989a66a678caa2cfe155cd4a0cdba150"),
    ],
)
def test_seed_gives_the_recorded_arrays(config, t1_digest, t2_digest):
    """Digests of one tiny study, recorded with the generator version named.

    A change here means generated studies changed for a given seed and config:
    if that is intended, bump ``GENERATOR_VERSION`` and record the new digests.
    """
    study = generate_study(seed=3, config=config)
    assert study.t1.array.shape == (128, 128, 9)
    assert hashlib.sha256(study.t1.array.tobytes()).hexdigest() == t1_digest
    assert hashlib.sha256(study.t2.array.tobytes()).hexdigest() == t2_digest


def test_different_seeds_differ():
    a = generate_study(seed=1, config=TINY)
    b = generate_study(seed=2, config=TINY)
    assert a.patient.patient_id != b.patient.patient_id
    assert a.t1.shape != b.t1.shape or not np.array_equal(a.t1.array, b.t1.array)


# Modic signal definitions ---------------------------------------------------------------------


def _labels_on(volume: Volume, labels: Volume) -> np.ndarray:
    """Nearest-neighbour label map of ``labels`` (T1 grid) at the voxel centres of ``volume``."""
    ni, nj, nk = volume.shape
    index = np.stack(np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij"), -1).reshape(-1, 3)
    world = volume.world_coordinates(index)
    src = np.rint((world - labels.affine[:3, 3]) @ np.linalg.inv(labels.affine[:3, :3]).T).astype(int)
    inside = np.all((src >= 0) & (src < np.array(labels.shape)), axis=1)
    out = np.zeros(len(src), dtype=np.int32)
    out[inside] = labels.array[tuple(src[inside].T)]
    return out.reshape(volume.shape)


def _band_and_reference(study, volume: Volume, vertebra: int, modic_type: int) -> tuple[float, float]:
    vertebrae = _labels_on(volume, study.vertebra_instances)
    modic = _labels_on(volume, study.endplate_modic)
    body = vertebrae == vertebra
    core = body.copy()
    for axis in (0, 1):  # stay clear of the cortex and partial volume with the disc
        core &= np.roll(body, 1, axis) & np.roll(body, -1, axis)
    band = body & (modic == modic_type)
    reference = core & (modic == 0)
    assert band.sum() >= 5 and reference.sum() >= 20, (band.sum(), reference.sum())
    return float(volume.array[band].mean()), float(volume.array[reference].mean())


@pytest.mark.parametrize(
    ("modic_type", "t1_lower", "t2_higher", "stir_higher"),
    [(1, True, True, True), (2, False, None, False), (3, True, False, None)],
)
def test_planted_modic_types_follow_signal_definitions(modic_type, t1_lower, t2_higher, stir_higher):
    spec = ModicSpec(endplate="L4 inferior", modic_type=modic_type, depth_fraction=0.4, ap_fraction=0.9)
    study = generate_study(seed=21, config=TINY, modic=[spec], variant={"sacrum_in_fov": True})
    l4 = next(v["label"] for v in study.truth["vertebrae"] if v["name"] == "L4")
    assert l4 == 3
    band, ref = _band_and_reference(study, study.t1, l4, modic_type)
    assert (band < ref) if t1_lower else (band > ref), ("T1", band, ref)
    band, ref = _band_and_reference(study, study.t2, l4, modic_type)
    if t2_higher is None:  # type 2: iso- to hyperintense on T2
        assert band > 0.95 * ref, ("T2", band, ref)
    else:
        assert (band > ref) if t2_higher else (band < ref), ("T2", band, ref)
    if stir_higher is not None:
        band, ref = _band_and_reference(study, study.stir, l4, modic_type)
        assert (band > ref) if stir_higher else (band < ref), ("STIR", band, ref)


def test_mixed_band_has_both_types():
    study = generate_study(seed=5, config=TINY, modic=[
        {"endplate": "L5 superior", "type": "1/2", "depth_fraction": 0.45, "ap_fraction": 1.0}
    ])
    endplate = next(e for e in study.truth["endplates"] if e["name"] == "L5 superior")
    assert (endplate["modic_type"], endplate["mixed"]) == (2, "1/2")
    l5 = study.vertebra_instances.array == 2
    types = set(np.unique(study.endplate_modic.array[l5]).astype(int)) - {0}
    assert types == {1, 2}
    assert study.truth["levels"]["L4-L5"]["modic_type"] == 2


def _disc_over_marrow(study, volume: Volume, disc: int) -> float:
    """Median of disc ``disc`` over the mean marrow median of its two bodies, in the middle 3 slices.

    Disc label n lies between vertebra labels n (below) and n + 1 (above).
    """
    middle = np.zeros(volume.shape, dtype=bool)
    middle[..., volume.shape[2] // 2 - 1: volume.shape[2] // 2 + 2] = True
    discs, vertebrae = _labels_on(volume, study.disc_instances), _labels_on(volume, study.vertebra_instances)
    marrow = [np.median(volume.array[ndimage.binary_erosion((vertebrae == v) & middle, np.ones((3, 3, 1)))])
              for v in (disc, disc + 1)]
    return float(np.median(volume.array[(discs == disc) & middle]) / np.mean(marrow))


def test_disc_signal_falls_with_pfirrmann_grade_as_on_spider():
    """SPIDER's mid-sagittal discs read at 0.57-0.63 of the marrow on T2 for grades 1-2 and 0.19-0.23 for 4-5.

    Generator 1.0 drew every grade at 0.14-0.21 (a small nucleus, a dark annulus), so
    healthy synthetic discs looked degenerated to the presence model (docs/synthetic.md).
    """
    grades = {1: 1, 2: 5, 3: 2, 4: 4}  # disc label (L5-S1 = 1, upwards) -> Pfirrmann grade
    config = {"extends": TINY, "anatomy": {"disc": {"pfirrmann": [{g: 1.0} for g in grades.values()]}}}
    study = generate_study(seed=5, config=config, modic=[], variant={"lumbar_count": 5, "sacrum_in_fov": True})
    assert {d.name: d.pfirrmann for d in study.anatomy.discs if d.label in grades} == {
        "L5-S1": 1, "L4-L5": 5, "L3-L4": 2, "L2-L3": 4}
    t2 = {grades[d]: _disc_over_marrow(study, study.t2, d) for d in grades}
    t1 = {grades[d]: _disc_over_marrow(study, study.t1, d) for d in grades}
    assert t2[1] > t2[2] > t2[4] > t2[5], t2
    assert t2[1] > 0.45 and t2[5] < 0.3, t2
    assert t1[1] > 0.48 and t1[1] > t1[5], t1


# Labels and truth -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        Variant(lumbar_count=5, transitional_s1=False, sacrum_in_fov=True),
        Variant(lumbar_count=4, transitional_s1=False, sacrum_in_fov=True),
        Variant(lumbar_count=6, transitional_s1=False, sacrum_in_fov=True),
        Variant(lumbar_count=5, transitional_s1=True, sacrum_in_fov=True),
    ],
)
def test_labels_consistent_with_truth(variant):
    study = generate_study(seed=8, config=TINY, variant=variant, modic=[])
    truth = study.truth
    assert truth["variant"]["lumbar_count"] == variant.lumbar_count
    assert truth["variant"]["transitional_s1"] == variant.transitional_s1
    assert (truth["variant"]["rudimentary_disc"] is not None) == variant.transitional_s1
    names = [v["name"] for v in truth["vertebrae"]]
    assert names == level_names(len(names)), "vertebrae are named counting from S1 upwards"
    assert [v["label"] for v in truth["vertebrae"]] == list(range(1, len(names) + 1))
    kinds = [v["kind"] for v in truth["vertebrae"]]
    assert kinds[0] == ("transitional" if variant.transitional_s1 else "sacral")
    assert kinds.count("lumbar") == variant.lumbar_count
    # With six lumbar-type vertebrae the top one is still named T12 (counted from S1).
    assert names[variant.lumbar_count] == ("T12" if variant.lumbar_count == 6 else f"L{6 - variant.lumbar_count}")

    semantic = study.semantic.array
    vertebrae = study.vertebra_instances.array
    discs = study.disc_instances.array
    assert set(np.unique(semantic).astype(int)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(semantic == 3, vertebrae == 1)
    np.testing.assert_array_equal(semantic == 1, vertebrae > 1)
    np.testing.assert_array_equal(semantic == 2, discs > 0)
    assert set(np.unique(vertebrae).astype(int)) - {0} == {v["label"] for v in truth["vertebrae"]}
    assert set(np.unique(discs).astype(int)) - {0} == {d["label"] for d in truth["discs"]}
    disc_names = {d["label"]: d["name"] for d in truth["discs"]}
    assert disc_names[1] == "L5-S1" and disc_names[2] == "L4-L5"
    for label, name in disc_names.items():
        counted = level_names(label + 1)
        assert name == f"{counted[label]}-{counted[label - 1]}"
    for vertebra in truth["vertebrae"]:
        assert vertebra["voxels"] == int((vertebrae == vertebra["label"]).sum())
    # Centroids in RAS lie inside their own label.
    inverse = np.linalg.inv(study.semantic.affine)
    for vertebra in truth["vertebrae"]:
        index = np.rint(inverse @ np.append(vertebra["centroid_ras"], 1.0))[:3].astype(int)
        if np.all((index >= 0) & (index < np.array(vertebrae.shape))) and vertebra["voxels"] > 2000:
            assert vertebrae[tuple(index)] == vertebra["label"], vertebra["name"]


def test_levels_and_endplates(study):
    truth = study.truth
    levels = truth["levels"]
    assert {"L3-L4", "L4-L5", "L5-S1"} <= set(levels)
    assert levels["L3-L4"]["modic_type"] == 0 and levels["L3-L4"]["upper_endplate"]["name"] == "L3 inferior"
    assert levels["L4-L5"]["modic_type"] == 1  # most significant of types 1 and 2
    assert levels["L4-L5"]["upper_endplate"] == {"name": "L4 inferior", "modic_type": 1, "mixed": None}
    assert levels["L4-L5"]["lower_endplate"] == {"name": "L5 superior", "modic_type": 2, "mixed": None}
    assert levels["L5-S1"]["modic_type"] == 0
    by_name = {e["name"]: e for e in truth["endplates"]}
    assert by_name["L4 inferior"]["extent"]["depth_fraction"] > 0
    assert by_name["L4 inferior"]["vertebra_label"] == 3 and by_name["L4 inferior"]["side"] == "inferior"
    assert by_name["S1 superior"]["modic_type"] == 0 and by_name["S1 superior"]["extent"] is None
    l4_band = (study.endplate_modic.array == 1) & (study.vertebra_instances.array == 3)
    assert l4_band.any() and by_name["L4 inferior"]["band_voxels"] > 0


def test_no_sacrum_variant_keeps_s1_out_of_view():
    study = generate_study(seed=4, config=TINY, variant={"sacrum_in_fov": False})
    assert study.truth["variant"]["sacrum_in_fov"] is False
    assert not (study.vertebra_instances.array == 1).any()
    assert "S1" not in [v["name"] for v in study.truth["vertebrae"]]
    assert (study.vertebra_instances.array == 2).any(), "L5 (label 2) is still labelled"


def test_modic_specification_errors():
    assert parse_modic("L4 inferior:1, l5 Superior:1/2") == [
        ModicSpec("L4 inferior", 1),
        ModicSpec("L5 superior", 2, mixed="1/2"),
    ]
    for bad in ("L4 inferior:4", "L4 lateral:1", "L4 inferior", "L4 inferior:1,L4 inferior:2"):
        with pytest.raises(UsageError):
            parse_modic(bad)
    with pytest.raises(UsageError, match="S1 has no inferior disc"):
        generate_study(seed=1, config=TINY, modic="S1 inferior:1")
    with pytest.raises(UsageError, match="no vertebra 'C5'"):
        generate_study(seed=1, config=TINY, modic="C5 superior:2")


# Writers --------------------------------------------------------------------------------------


def _series_files(root: Path, truth: dict, name: str) -> list[Path]:
    return [root / f for f in truth["outputs"]["dicom"]["series"][name]["files"]]


def _affine_from_headers(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-to-RAS affine and voxel array rebuilt from DICOM headers only."""
    slices = [pydicom.dcmread(p) for p in paths]
    row, col = (np.array(v, dtype=float) for v in np.split(np.array(slices[0].ImageOrientationPatient, float), 2))
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    first = np.array(slices[0].ImagePositionPatient, float)
    affine = np.eye(4)
    spacing_rows, spacing_cols = (float(v) for v in slices[0].PixelSpacing)
    affine[:3, 0] = row * spacing_cols
    affine[:3, 1] = col * spacing_rows
    if len(slices) > 1:
        affine[:3, 2] = (np.array(slices[-1].ImagePositionPatient, float) - first) / (len(slices) - 1)
    affine[:3, 3] = first
    array = np.stack([ds.pixel_array.T for ds in slices], axis=-1)
    return lps_to_ras(affine), array


def test_geometry_round_trip_dicom_and_nifti(study, written):
    truth = json.loads((written / "truth.json").read_text())
    for name, volume in (("t1", study.t1), ("t2", study.t2), ("stir", study.stir)):
        affine, array = _affine_from_headers(_series_files(written, truth, name))
        np.testing.assert_allclose(affine[:3, :3], volume.affine[:3, :3], atol=1e-4)
        np.testing.assert_allclose(affine[:3, 3], volume.affine[:3, 3], atol=5e-3)
        np.testing.assert_array_equal(array, volume.array)
    for name, volume in [("t1", study.t1), ("t2", study.t2), *study.labels.items()]:
        image = nib.load(written / truth["outputs"]["nifti"][name])
        np.testing.assert_allclose(image.affine, volume.affine, atol=1e-4)
        np.testing.assert_array_equal(np.asarray(image.dataobj), volume.array)


def test_written_series_and_identifiers(study, written):
    truth = json.loads((written / "truth.json").read_text())
    series = truth["outputs"]["dicom"]["series"]
    assert set(series) == {"t1", "t2", "stir", "axial", "localizer", "derived"}
    assert (written / "dicom" / "README.txt").is_file()
    descriptions = {}
    for name in series:
        ds = pydicom.dcmread(_series_files(written, truth, name)[0])
        descriptions[name] = (str(ds.SeriesDescription), list(ds.ImageType))
        assert ds.PatientName == study.patient.patient_name and ds.PatientID == study.patient.patient_id
        assert ds.StudyInstanceUID == study.patient.study_uid == truth["patient"]["study_uid"]
        assert ds.AccessionNumber == study.patient.accession_number
        assert ds.SeriesInstanceUID == series[name]["series_uid"] == truth["series"][name]["series_uid"]
    assert descriptions["t1"][0] == "SAG T1 TSE" and descriptions["t2"][0] == "SAG T2 TSE"
    assert descriptions["localizer"][1] == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert descriptions["derived"][1][:2] == ["DERIVED", "SECONDARY"]
    localizer = _series_files(written, truth, "localizer")
    orientations = {tuple(np.round(pydicom.dcmread(p).ImageOrientationPatient, 0)) for p in localizer}
    assert len(orientations) == 3, "the localizer mixes three orientations in one series"
    t1 = pydicom.dcmread(_series_files(written, truth, "t1")[0])
    assert 400 <= float(t1.RepetitionTime) <= 700 and 8 <= float(t1.EchoTime) <= 15
    assert t1.ScanningSequence == "SE"
    stir = pydicom.dcmread(_series_files(written, truth, "stir")[0])
    assert "IR" in list(stir.ScanningSequence) and float(stir.InversionTime) > 100


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
def test_dicom_passes_dciodvfy(written):
    truth = json.loads((written / "truth.json").read_text())
    for name in truth["outputs"]["dicom"]["series"]:
        path = _series_files(written, truth, name)[0]
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (name, errors)


def test_configurable_patient_identifiers(tmp_path):
    patient = {"name": "DOE^JANE", "id": "PRIV-{seed}", "accession_number": "ACC-SECRET", "study_uid": "1.2.3.4.5"}
    study = generate_study(seed=9, config={"extends": TINY, "patient": patient})
    write_study(study, tmp_path / "s", formats=("dicom",))
    ds = pydicom.dcmread(next(p for p in (tmp_path / "s" / "dicom").rglob("IM*")))
    assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber, ds.StudyInstanceUID) == (
        "DOE^JANE", "PRIV-9", "ACC-SECRET", "1.2.3.4.5"
    )


def test_shuffled_layout_and_dicomdir(study, tmp_path):
    write_study(study, tmp_path / "shuffled", formats=("dicom",), shuffle_and_rename=True)
    files = [p for p in (tmp_path / "shuffled" / "dicom").rglob("*") if p.is_file()]
    root = tmp_path / "shuffled" / "dicom"
    assert files and all(p.suffix == "" and len(p.relative_to(root).parts) == 3 for p in files)
    instance_order = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in sorted(files)]
    assert instance_order != sorted(instance_order)
    write_study(study, tmp_path / "cd", formats=("dicom",), dicomdir=True, extra_series=("localizer",))
    file_set = FileSet(pydicom.dcmread(tmp_path / "cd" / "dicom" / "DICOMDIR"))
    truth = json.loads((tmp_path / "cd" / "truth.json").read_text())
    expected = sum(len(s["files"]) for s in truth["outputs"]["dicom"]["series"].values())
    assert len(list(file_set)) == expected
    listed = [f for s in truth["outputs"]["dicom"]["series"].values() for f in s["files"]]
    assert all((tmp_path / "cd" / f).is_file() for f in listed)


@pytest.mark.parametrize("name", [n for n in TRANSFER_SYNTAXES if n != "explicit"])
def test_compressed_transfer_syntaxes_are_lossless(study, tmp_path, name):
    if TRANSFER_SYNTAXES[name] not in available_transfer_syntaxes():
        pytest.skip(f"no {name} encoder installed")
    write_study(study, tmp_path / name, formats=("dicom",), transfer_syntax=name)
    truth = json.loads((tmp_path / name / "truth.json").read_text())
    affine, array = _affine_from_headers(_series_files(tmp_path / name, truth, "t1"))
    assert pydicom.dcmread(_series_files(tmp_path / name, truth, "t1")[0]).file_meta.TransferSyntaxUID == (
        TRANSFER_SYNTAXES[name]
    )
    np.testing.assert_array_equal(array, study.t1.array)


def test_write_refuses_existing_folder(study, written):
    with pytest.raises(UsageError, match="already exists"):
        write_study(study, written)


# Settings -------------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_are_typed_and_shipped_configs_extend_default():
    tiny = load_synth_settings(TINY)
    default = load_synth_settings()
    assert tiny.name == "tiny" and default.name == "default"
    assert tiny.series.t1.matrix.options == (128,) and tiny.series.t1.matrix.weights is None
    assert tiny.anatomy == default.anatomy, "tiny changes only series and render settings"
    assert default.anatomy.lumbar[0].height == 26.5 and default.anatomy.sacral[0].ala_width == 108.0
    assert default.anatomy.lumbar[0].ala_width == 0.0, "ala_width may be left out"
    assert default.series.stir.ti == ((1.5, (140.0, 160.0)), (3.0, (200.0, 230.0)))
    assert default.demo is None and load_synth_settings("demo").demo.seed == 2024
    assert load_synth_settings(tiny) is tiny


def test_partial_override_is_merged_over_default(tmp_path):
    path = _write(tmp_path / "mine.yaml", "study_key: 'MINE{seed}'\nrender: {abdomen_step: 2.5}\n")
    mine = load_synth_settings(path)
    default = load_synth_settings()
    assert mine.study_key == "MINE{seed}" and mine.render.abdomen_step == 2.5
    assert mine.render.bias == default.render.bias and mine.series == default.series
    over_tiny = load_synth_settings({"extends": TINY, "modic": {"levels": {2: 1.0}}})
    assert over_tiny.series == load_synth_settings(TINY).series
    assert over_tiny.modic.levels.weight() == {2: 1.0}, "weight tables are replaced whole, not merged"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("render: {abdomen_stepp: 2.0}\n", "unknown key 'render.abdomen_stepp'; did you mean 'render.abdomen_step'?"),
        ("anatomy: {lumbar: [{height: 26, depth: 40, width: 51, wedge_deg: 6}, {height: 0, depth: 40, "
         "width: 49, wedge_deg: 3}]}\n", "'anatomy.lumbar[1].height' is 0; expected a number from 1.0"),
        ("anatomy: {lumbar: [{heigth: 26}]}\n", "unknown key 'anatomy.lumbar[0].heigth'; did you mean "
         "'anatomy.lumbar[0].height'?"),
        ("modic: {probability: 1.5}\n", "'modic.probability' is 1.5; expected a number from 0.0 to 1.0"),
        ("series: {t1: {n_slices: [9.5, 12]}}\n", "'series.t1.n_slices' is [9.5, 12]; expected an integer or a "
         "[low, high] pair of integers"),
        ("study_key: 'S{sed}'\n", "'study_key' is 'S{sed}'; expected a text whose only placeholder is {seed}"),
        ("patient: {birth_date: ['19991231', '19400101']}\n", "'patient.birth_date' is ['19991231', '19400101']"),
        ("series: {t1: {kind: ir}}\n", "'series.t1' has kind 'ir' but no 'ti'"),
        ("extends: tinyy\n", "'tinyy' is neither a YAML file nor a shipped config in configs/synth/"),
    ],
)
def test_config_errors_are_one_line_naming_file_and_key(tmp_path, text, message):
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as raised:
        load_synth_settings(path)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    if "neither" not in message:
        assert str(raised.value).startswith(f"config {path}: ")


def test_extends_loop_is_refused(tmp_path):
    first = tmp_path / "first.yaml"
    second = _write(tmp_path / "second.yaml", f"extends: {first}\n")
    _write(first, f"extends: {second}\n")
    with pytest.raises(ConfigError, match="'extends' chain loops back"):
        load_synth_settings(first)


# CLI ------------------------------------------------------------------------------------------


def test_cli_writes_n_studies(tmp_path):
    out = tmp_path / "out"
    args = ["synth", str(out), "--n", "2", "--seed", "30", "--config", TINY, "--modic", "L4 inferior:1"]
    assert main(args) == 0
    studies = sorted(p for p in out.iterdir() if p.is_dir())
    assert [p.name for p in studies] == ["SYN000030", "SYN000031"]
    for folder in studies:
        truth = json.loads((folder / "truth.json").read_text())
        assert truth["levels"]["L4-L5"]["upper_endplate"]["modic_type"] == 1
        assert (folder / "nifti" / "t1.nii.gz").is_file() and any((folder / "dicom").rglob("IM*.dcm"))
    before = (studies[0] / "truth.json").stat().st_mtime_ns
    assert main(args) == 0, "existing studies are skipped"
    assert (studies[0] / "truth.json").stat().st_mtime_ns == before


def test_cli_takes_a_partial_config_and_refuses_a_misspelt_key(tmp_path, capsys):
    mine = _write(tmp_path / "mine.yaml", "extends: tiny\nstudy_key: 'MINE{seed:03d}'\n")
    assert main(["synth", str(tmp_path / "out"), "--seed", "4", "--config", str(mine), "--modic", ""]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["MINE004"]
    bad = _write(tmp_path / "bad.yaml", "extends: tiny\nstudy_kye: 'X{seed}'\n")
    capsys.readouterr()
    assert main(["synth", str(tmp_path / "out2"), "--config", str(bad)]) == 1
    error = capsys.readouterr().err.strip()
    assert "unknown key 'study_kye'; did you mean 'study_key'?" in error and len(error.splitlines()) == 1


def test_cli_usage_errors(tmp_path):
    assert main(["synth", str(tmp_path / "x"), "--n", "0"]) == 2
    assert main(["synth", str(tmp_path / "x"), "--modic", "L4 inferior:7", "--config", TINY]) == 2
    assert main(["synth", str(tmp_path / "x"), "--extra-series", "dwi", "--config", TINY]) == 2
