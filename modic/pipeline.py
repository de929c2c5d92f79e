"""One study through the whole analysis: segmentation -> levels/endplates -> classification.

:func:`analyze_images` is what ``modic analyze``, ``modic analyze-slice``,
batch processing and the evaluation commands all call, so every path grades
the same way. :func:`grade_probabilities` is the same analysis from class
probabilities made elsewhere (another tool's segmentation): it runs without
modic's network, and without torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modic.classification.factory import load_classifier
from modic.classification.grading import EndplateClassifier, grade_study
from modic.classification.presence import PresenceModels
from modic.classification.whole_body import whole_body_flags
from modic.errors import AnalysisError, InputError
from modic.io.resample import resample_to
from modic.io.study import StudyImages
from modic.io.volume import Volume
from modic.levels import SpineAnatomy, build_anatomy
from modic.preprocessing.registration import estimate_translation, shift_image
from modic.results import Flag, LevelGrade, StudyAnalysis
from modic.runtime import apply_runtime_settings, resolve_device
from modic.segmentation.probabilities import fuse_probabilities
from modic.resources import resolve_bundle
from modic.settings import (
    AnalysisSettings,
    ClassificationSettings,
    ContrastSettings,
    IoSettings,
    OrientationSettings,
    SegmentationSettings,
    SingleSliceSettings,
)

if TYPE_CHECKING:
    from modic.orientation.model import OrientationModel
    from modic.segmentation.bundle import LoadedBundle
    from modic.segmentation.infer import SegmentationModel

__all__ = [
    "Models",
    "StudyAnalysis",
    "analyze_images",
    "grade_probabilities",
    "is_slice_pair",
    "segmentation_inputs",
]


@dataclass
class Models:
    """The loaded segmentation network, endplate classifier and orientation check, reused across studies.

    ``orientation`` is None when the settings' ``input_checks.orientation.bundle``
    (``configs/input_checks.yaml``) is null.
    """

    segmenter: SegmentationModel
    classifier: EndplateClassifier
    info: dict[str, Any]
    presence: PresenceModels | None = None
    orientation: OrientationModel | None = None

    @classmethod
    def load(cls, config: AnalysisSettings, *, device: str = "auto", bundle: str | Path | None = None) -> Models:
        """The models ``config`` names; ``bundle`` (``--model``) replaces the segmentation bundle for every volume.

        ``segmentation.thin_slice_bundle`` (when set, and no ``bundle`` is given)
        segments volumes whose slices are at most ``thin_slice_max_spacing_mm``
        apart; an explicit ``bundle`` is used alone, so that it is what gets measured.
        Loading imports torch and MONAI (here, not when the module is imported,
        so that :func:`grade_probabilities` runs without them).
        """
        from modic.orientation.model import load_orientation_model
        from modic.segmentation.bundle import load_bundle

        apply_runtime_settings(config.runtime)
        settings = config.segmentation
        main = load_bundle(bundle or settings.bundle)
        thin_name = None if bundle is not None else settings.thin_slice_bundle
        thin = load_bundle(thin_name) if thin_name else None
        resolved = resolve_device(device)
        max_spacing = float(settings.thin_slice_max_spacing_mm) if thin else 0.0
        segmenter = _segmentation_model(
            main, settings, device=resolved,
            thin_slice_model=_segmentation_model(thin, settings, device=resolved) if thin else None,
            thin_slice_max_spacing_mm=max_spacing,
        )
        classifier, classifier_info = load_classifier(config.classification)
        segmentation_info = _bundle_info(main)
        if thin is not None:
            segmentation_info["thin_slice"] = {**_bundle_info(thin), "max_spacing_mm": max_spacing}
        info = {"segmentation": segmentation_info, "classifier": classifier_info}
        presence = load_presence(config.classification)
        if presence is not None:
            info["presence"] = presence.info
        orientation_bundle = config.input_checks.orientation.bundle
        orientation = load_orientation_model(orientation_bundle) if orientation_bundle is not None else None
        return cls(segmenter=segmenter, classifier=classifier, info=info, presence=presence, orientation=orientation)


def load_presence(settings: ClassificationSettings) -> PresenceModels | None:
    """The presence models ``classification.presence_bundle`` names, or None when it is null."""
    if settings.presence_bundle is None:
        return None
    return PresenceModels.load(resolve_bundle(settings.presence_bundle, kind="presence"))


def _segmentation_model(
    loaded: LoadedBundle, settings: SegmentationSettings, *, device: str, **thin: Any
) -> SegmentationModel:
    """A :class:`SegmentationModel` of ``loaded`` with the settings' batch size and CPU precision."""
    from modic.segmentation.infer import SegmentationModel

    return SegmentationModel(
        loaded.network,
        settings=loaded.settings,
        device=device,
        batch_size=int(settings.batch_size),
        cpu_precision=settings.cpu_precision.value,
        background_weight=loaded.background_weight,
        slice_sigma_mm=loaded.slice_sigma_mm,
        slice_sigma_max_spacing_mm=loaded.slice_sigma_max_spacing_mm,
        slice_context_mm=loaded.slice_context_mm,
        **thin,
    )


def _bundle_info(loaded: LoadedBundle) -> dict[str, Any]:
    """What the report records about a segmentation bundle."""
    return {
        "bundle": loaded.path.name,
        "version": loaded.metadata.get("version"),
        "sha256": loaded.metadata.get("modic_model_sha256"),
        "background_weight": loaded.background_weight,
        "slice_sigma_mm": loaded.slice_sigma_mm,
        "slice_sigma_max_spacing_mm": loaded.slice_sigma_max_spacing_mm,
    }


def study_models_info(models: Models, volume: Volume) -> dict[str, Any]:
    """``models.info`` for one study: with a thin-slice bundle, whether it segmented ``volume`` (``used``)."""
    thin = models.info["segmentation"].get("thin_slice")
    if thin is None:
        return models.info
    used = models.segmenter.uses_thin_slice_model(volume)
    return {**models.info, "segmentation": {**models.info["segmentation"], "thin_slice": {**thin, "used": used}}}


def is_slice_pair(images: StudyImages) -> bool:
    """Whether ``images`` is a single T1/T2 slice pair, whose slices are segmented apart and aligned on the spine."""
    volumes = [v for v in (images.t1, images.t2) if v is not None]
    return bool(volumes) and min(volumes[0].shape) == 1 and images.t1 is not None and images.t2_native is not None


def segmentation_inputs(images: StudyImages) -> list[Volume]:
    """The volumes :func:`analyze_images` segments, in order.

    The T1 and the T2 on the T1 grid (whichever exist); for a slice pair the
    T1 and the T2 on its own grid. Batch processing segments these itself
    (many studies per forward pass) and passes the results to
    :func:`analyze_images` as ``probabilities``.
    """
    if is_slice_pair(images):
        assert images.t1 is not None and images.t2_native is not None
        return [images.t1, images.t2_native]
    return [v for v in (images.t1, images.t2) if v is not None]


def _fuse_slice_pair(
    images: StudyImages, p1: np.ndarray, p2_native: np.ndarray, settings: SingleSliceSettings, *, io: IoSettings
) -> tuple[StudyImages, np.ndarray, list[Flag]]:
    """Align the separately segmented T2 slice on the T1 by the spine, and fuse where both exist."""
    assert images.t1 is not None and images.t2_native is not None
    t1, t2_native = images.t1, images.t2_native
    on_t1 = [resample_to(t2_native.with_array(channel), t1, config=io).array for channel in p2_native]
    p2 = np.stack(on_t1)
    coverage = resample_to(t2_native.with_array(np.ones(t2_native.shape, dtype=np.float32)), t1, config=io).array
    t2_image = images.t2.array if images.t2 is not None else resample_to(t2_native, t1, config=io).array

    plane = tuple(axis for axis, n in enumerate(t1.shape) if n > 1)
    squeeze = tuple(axis for axis, n in enumerate(t1.shape) if n == 1)
    spacing = min(np.asarray(t1.spacing)[list(plane)])
    translation = estimate_translation(
        np.squeeze(p1[1:].sum(axis=0), axis=squeeze),
        np.squeeze(p2[1:].sum(axis=0), axis=squeeze),
        max_shift=int(round(float(settings.max_shift_mm) / spacing)),
    )

    def moved(array: np.ndarray) -> np.ndarray:
        squeezed = np.squeeze(array, axis=tuple(a + array.ndim - t1.array.ndim for a in squeeze))
        return shift_image(squeezed, translation).reshape(array.shape)

    p2, coverage, t2_image = moved(p2), moved(coverage), moved(t2_image)
    covered = coverage > 0.5
    fused = np.where(covered[None], (p1 + p2) / 2, p1)
    t2_aligned = t1.with_array(np.where(covered, t2_image, np.nan).astype(np.float32))
    shift_mm = [translation.rows * t1.spacing[plane[0]], translation.cols * t1.spacing[plane[1]]]
    record = {
        "event": "register",
        "level": "info",
        "shift_mm": [round(v, 2) for v in shift_mm],
        "correlation": round(translation.correlation, 3),
        "message": f"T2 slice aligned to the T1 on the segmented spine: shift {shift_mm[0]:.1f}, {shift_mm[1]:.1f} mm "
        f"(correlation {translation.correlation:.2f})",
    }
    flags = []
    if translation.correlation < float(settings.min_alignment_correlation):
        flags.append(
            Flag("alignment_uncertain", f"T1 and T2 slices could not be aligned reliably (correlation "
                 f"{translation.correlation:.2f}); T2-based signal may be wrong")
        )
    aligned = replace(images, t2=t2_aligned, decisions=[*images.decisions, record])
    return aligned, fused.astype(np.float32), flags


def _check_field_of_view(volume: Volume, minimum_mm: float) -> None:
    """Refuse images too small to hold a lumbar spine (and too small for the network)."""
    lateral = volume.lateral_axis
    extents = [n * s for axis, (n, s) in enumerate(zip(volume.shape, volume.spacing)) if axis != lateral]
    if min(extents) < minimum_mm:
        name = Path(str(volume.info.get("path", volume.info.get("source", "image")))).name
        raise InputError(
            f"image '{name}' covers only {extents[0]:.0f} x {extents[1]:.0f} mm in the sagittal plane; "
            f"lumbar spine analysis needs at least {minimum_mm:.0f} mm in each direction"
        )


def _check_probabilities(probabilities: Sequence[np.ndarray], volumes: Sequence[Volume]) -> None:
    if len(probabilities) != len(volumes):
        raise AnalysisError(
            f"{len(probabilities)} probability map(s) given for {len(volumes)} segmented image(s); "
            "give one per volume of segmentation_inputs(images)"
        )
    for p, volume in zip(probabilities, volumes):
        if p.ndim != 4 or tuple(p.shape[1:]) != tuple(volume.shape):
            raise AnalysisError(
                f"probabilities of shape {tuple(p.shape)} do not fit an image of shape {tuple(volume.shape)}; "
                "expected (classes, *image shape)"
            )


def beside_discs(anatomy: SpineAnatomy, volume: Volume, *, distance_mm: tuple[float, float], side: str) -> np.ndarray:
    """Voxels ``distance_mm[0]`` to ``distance_mm[1]`` behind (``side="posterior"``) or in front of each disc.

    Sampled on every line of voxels through a disc along the anterior-posterior
    axis, from the disc's margin on that side, outside every body and disc.
    Behind the lumbar discs lies the spinal canal.
    """
    axis = int(np.argmax(np.abs(volume.affine[1, :3])))
    step_mm = float(np.linalg.norm(volume.affine[:3, axis]))
    towards_anterior = 1 if volume.affine[1, axis] > 0 else -1
    direction = -towards_anterior if side == "posterior" else towards_anterior
    discs = np.moveaxis(anatomy.disc_map > 0, axis, -1)
    mask = np.zeros(discs.shape, dtype=bool)
    near, far = (int(round(d / step_mm)) for d in distance_mm)
    for line in np.argwhere(discs.any(axis=-1)):
        where = np.flatnonzero(discs[tuple(line)])
        edge = where.min() if direction < 0 else where.max()
        start, stop = sorted((edge + direction * near, edge + direction * far))
        mask[tuple(line)][max(start, 0): max(stop + 1, 0)] = True
    return np.moveaxis(mask, -1, axis) & (anatomy.vertebra_map == 0) & (anatomy.disc_map == 0)


def contrast_ratios(
    images: StudyImages, anatomy: SpineAnatomy, *, distance_mm: tuple[float, float], min_voxels: int, side: str = "posterior"
) -> dict[str, float]:
    """Median signal beside the discs (by default the spinal canal behind them) over median vertebral marrow, by role.

    The canal holds cerebrospinal fluid: darker than fatty marrow on T1, brighter on T2.
    A role is left out when fewer than ``min_voxels`` sampled or body voxels have a finite value.
    """
    volume = images.t1 if images.t1 is not None else images.t2
    assert volume is not None
    sampled = beside_discs(anatomy, volume, distance_mm=distance_mm, side=side)
    bodies = anatomy.vertebra_map > 0
    ratios: dict[str, float] = {}
    for role, image in (("t1", images.t1), ("t2", images.t2)):
        if image is None:
            continue
        fluid, marrow = image.array[sampled], image.array[bodies]
        fluid, marrow = fluid[np.isfinite(fluid)], marrow[np.isfinite(marrow)]
        if min(fluid.size, marrow.size) < min_voxels or float(np.median(marrow)) <= 0:
            continue
        ratios[role] = float(np.median(fluid)) / float(np.median(marrow))
    return ratios


def check_contrast(images: StudyImages, anatomy: SpineAnatomy, *, settings: ContrastSettings) -> None:
    """Refuse a study whose T1 and T2 were swapped, or whose images are mirrored front to back.

    Fluid in the spinal canal is darker than marrow on T1 and brighter on T2, so
    the T2-to-T1 ratio of the signal beside the discs (each relative to marrow,
    :func:`contrast_ratios`) is high behind the discs, where the canal is. The
    front above ``mirrored_front`` and above the back by ``mirrored_margin``, with
    the product of both at least ``mirrored_min_product`` (T1 and T2 not swapped:
    swapping inverts both): the canal is in front, the images are mirrored.
    Otherwise, behind the discs below ``1 / swapped_ratio``: T1 and T2 were
    swapped. Settings: ``input_checks.contrast`` (``configs/input_checks.yaml``).

    Raises:
        InputError: naming what was found and what to do.
    """
    distance = (float(settings.canal_depth_mm[0]), float(settings.canal_depth_mm[1]))
    minimum, ratio = int(settings.min_voxels), float(settings.swapped_ratio)
    back = contrast_ratios(images, anatomy, distance_mm=distance, min_voxels=minimum, side="posterior")
    front = contrast_ratios(images, anatomy, distance_mm=distance, min_voxels=minimum, side="anterior")
    if len(back) < 2:
        return
    behind = back["t2"] / back["t1"]
    ahead = front["t2"] / front["t1"] if len(front) == 2 else None
    names = {role: images.series[role].description for role in ("t1", "t2") if role in images.series}
    mirrored = (
        ahead is not None
        and ahead > float(settings.mirrored_front)
        and ahead > float(settings.mirrored_margin) * behind
        and ahead * behind >= float(settings.mirrored_min_product)
    )
    if mirrored:
        raise InputError(
            f"the images ('{names.get('t1', 'T1')}', '{names.get('t2', 'T2')}') look mirrored front to back: the "
            f"fluid of the spinal canal (dark on T1, bright on T2) is in front of the discs (T2/T1 contrast "
            f"{ahead:.2f} in front, {behind:.2f} behind); fix the orientation (the file's affine or the raster's "
            "column order) and analyse it again"
        )
    if behind < 1.0 / ratio:
        raise InputError(
            f"the image given as T1 ('{names.get('t1', 'T1')}') looks T2-weighted and the one given as T2 "
            f"('{names.get('t2', 'T2')}') T1-weighted: the spinal canal behind the discs is {back['t1']:.2f} x the "
            f"vertebral marrow signal on the first and {back['t2']:.2f} x on the second (fluid is darker than "
            "marrow on T1, brighter on T2); swap the T1 and T2 (--t1/--t2 or --t1-uid/--t2-uid)"
        )


def check_lordosis(images: StudyImages, anatomy: SpineAnatomy, *, settings: OrientationSettings) -> None:
    """Refuse a study whose lumbar spine bulges backwards: the images are mirrored front to back.

    The named lumbar bodies of a correct image curve forwards (lordosis,
    :func:`~modic.levels.curvature.lordosis_mm`); a curve behind the chord from
    L1 to L5 deeper than ``min_lordosis_mm`` (negative) is taken as a mirror.
    It catches mirrors that the canal contrast (:func:`check_contrast`) misses,
    e.g. where the T2 gives no contrast or there is no T2. Settings:
    ``orientation`` in ``configs/input_checks.yaml``.

    Raises:
        InputError: the curve is reversed.
    """
    from modic.levels.curvature import lordosis_mm

    curve = lordosis_mm(anatomy)
    if curve is None or curve >= settings.min_lordosis_mm:
        return
    present = [role for role in ("t1", "t2") if getattr(images, role) is not None and role in images.series]
    names = [images.series[role].description or role.upper() for role in present]
    raise InputError(
        f"the images ({', '.join(repr(n) for n in names)}) look mirrored front to back: the lumbar spine bulges "
        f"{-curve:.0f} mm backwards instead of curving forwards (lordosis); fix the orientation (the file's affine "
        "or the raster's column order) and analyse it again"
    )


def check_upright(images: StudyImages, *, model: OrientationModel, settings: OrientationSettings) -> None:
    """Refuse a study whose T1 or T2 is upside down: its pixels run head to foot against its geometry.

    The orientation network (:mod:`modic.orientation`) reads the middle
    sagittal slice of the T1 and of the T2 (on its own grid), each apart; an
    image it finds upside down with at least ``upside_down_threshold``
    probability is refused. It runs before segmentation (milliseconds).
    Settings: ``orientation`` in ``configs/input_checks.yaml``.

    Raises:
        InputError: naming the image, the probability and what to do.
    """
    threshold = settings.upside_down_threshold
    for role, volume in (("t1", images.t1), ("t2", images.t2_native if images.t2_native is not None else images.t2)):
        if volume is None:
            continue
        probability = model.upside_down_probability(volume)
        if probability < threshold:
            continue
        described = images.series[role].description if role in images.series else ""
        shown = described or Path(str(volume.info.get("path", "") or role.upper())).name
        raise InputError(
            f"the {role.upper()} image '{shown}' looks flipped head to foot: the orientation check finds the head at "
            f"the bottom of its middle sagittal slice (probability {probability:.2f}, threshold {threshold:.2f}); fix "
            "the orientation (the file's affine or the raster's row order) and analyse it again"
        )


def grade_flags(levels: Sequence[LevelGrade], *, low_confidence: float) -> list[Flag]:
    """Warnings about the grades: affected reference marrow, undetermined endplates, low confidence."""
    warnings: list[Flag] = []
    affected = {
        grade.endplate.split()[0]: grade.features.reference_part
        for level in levels
        for grade in level.endplates
        if grade.features.reference_part != "whole"
    }
    for vertebra, part in affected.items():
        warnings.append(
            Flag(
                "reference_marrow_affected",
                f"{vertebra}: a deep change reached the centre of the vertebral body, so its signal ratios are "
                f"measured against the {part} of the reference marrow only",
            )
        )
    undetermined = [grade for level in levels for grade in level.endplates if grade.modic_type is None]
    if undetermined:
        names = ", ".join(grade.endplate for grade in undetermined)
        warnings.append(
            Flag(
                "undetermined_endplates",
                f"{len(undetermined)} endplate(s) could not be typed from these images ({names}): "
                f"{undetermined[0].note}",
            )
        )
    for level in levels:
        for grade in level.endplates:
            if grade.modic_type is not None and grade.confidence < low_confidence:
                warnings.append(
                    Flag("low_confidence", f"{grade.endplate}: Modic {grade.modic_type} with low confidence {grade.confidence:.2f}")
                )
    return warnings


def input_flags(images: StudyImages) -> list[Flag]:
    """Report warnings for the input problems that reading handled (decision-log entries with a ``flag`` code).

    E.g. ``monochrome1_inverted``, ``t2_outside_t1``, ``exam_mixed``: they change what was analysed, so
    they belong with the result's warnings, not only in ``input_decisions``.
    """
    return [Flag(str(d["flag"]), str(d["message"])) for d in images.decisions if d.get("flag")]


def analyze_images(
    images: StudyImages,
    *,
    models: Models,
    config: AnalysisSettings,
    probabilities: Sequence[np.ndarray] | None = None,
) -> StudyAnalysis:
    """Segment, label and grade one study whose T2 (if any) is on the T1 grid.

    ``probabilities``: class probabilities ``(C, I, J, K)`` of each volume of
    :func:`segmentation_inputs` (in that order, on that volume's grid), when
    the caller has already run the segmentation network; ``models.segmenter``
    is then not used.
    """
    return _analyze(
        images, config=config, probabilities=probabilities, segmenter=models.segmenter,
        classifier=models.classifier, presence=models.presence, orientation=models.orientation,
        info=lambda analyzed: study_models_info(models, segmentation_inputs(analyzed)[0]),
    )


def grade_probabilities(
    images: StudyImages,
    probabilities: Sequence[np.ndarray],
    *,
    config: AnalysisSettings,
    classifier: EndplateClassifier | None = None,
    source: str = "given class probabilities",
) -> StudyAnalysis:
    """Label and grade one study from class probabilities made elsewhere, without modic's segmentation network.

    ``probabilities``: one ``(C, I, J, K)`` map per volume of
    :func:`segmentation_inputs`, in the channel order of
    :class:`~modic.segmentation.classes.SegClass` (from another tool's label
    map: :func:`modic.segmentation.probabilities.probabilities_from_labels`).
    Everything after segmentation is what :func:`analyze_images` does, except
    the upside-down check, which needs modic's orientation network (torch). ``classifier``: default, the one
    ``config.classification`` names. ``source`` is recorded in the report's
    ``models.segmentation``.
    """
    info: dict[str, Any] = {"segmentation": {"source": source}}
    if classifier is None:
        classifier, info["classifier"] = load_classifier(config.classification)
    else:
        info["classifier"] = {"method": classifier.name}
    presence = load_presence(config.classification)
    if presence is not None:
        info["presence"] = presence.info
    return _analyze(
        images, config=config, probabilities=probabilities, segmenter=None, classifier=classifier,
        presence=presence, orientation=None, info=lambda analyzed: info,
    )


def _analyze(
    images: StudyImages,
    *,
    config: AnalysisSettings,
    probabilities: Sequence[np.ndarray] | None,
    segmenter: SegmentationModel | None,
    classifier: EndplateClassifier,
    presence: PresenceModels | None,
    orientation: OrientationModel | None,
    info: Callable[[StudyImages], dict[str, Any]],
) -> StudyAnalysis:
    """The analysis after the models are chosen: segment (unless ``probabilities``), label, check and grade."""
    timings: dict[str, float] = {}
    volumes = [v for v in (images.t1, images.t2) if v is not None]
    if not volumes:
        raise AnalysisError("the study has neither a T1 nor a T2 image to analyze")
    geometry = volumes[0]
    for volume in segmentation_inputs(images):
        _check_field_of_view(volume, float(config.segmentation.min_field_of_view_mm))
    checks = config.input_checks
    if orientation is not None:
        started = time.perf_counter()
        check_upright(images, model=orientation, settings=checks.orientation)
        timings["orientation_s"] = time.perf_counter() - started

    started = time.perf_counter()
    alignment_flags: list[Flag] = []
    if probabilities is not None:
        _check_probabilities(probabilities, segmentation_inputs(images))
    elif segmenter is None:
        raise AnalysisError("no class probabilities and no segmentation model; give one of them")
    if is_slice_pair(images):
        assert images.t1 is not None and images.t2_native is not None
        if probabilities is None:
            assert segmenter is not None
            probabilities = [segmenter.predict_probabilities(v) for v in (images.t1, images.t2_native)]
        p1, p2_native = probabilities
        images, fused, alignment_flags = _fuse_slice_pair(images, p1, p2_native, config.single_slice, io=config.io)
    elif probabilities is None:
        assert segmenter is not None
        fused = segmenter.predict_fused(volumes)
    else:
        fused = fuse_probabilities(probabilities)
    timings["segment_s"] = time.perf_counter() - started

    started = time.perf_counter()
    anatomy = build_anatomy(fused, geometry, levels=config.levels, endplates=config.endplates)
    timings["levels_s"] = time.perf_counter() - started
    if anatomy.vertebrae:
        check_contrast(images, anatomy, settings=checks.contrast)
        check_lordosis(images, anatomy, settings=checks.orientation)
    if not anatomy.vertebrae:
        raise AnalysisError("no vertebral body was found: check that the images are sagittal lumbar spine MRI")

    started = time.perf_counter()
    classification = config.classification
    levels = grade_study(
        anatomy,
        t1=images.t1.array if images.t1 is not None else None,
        t2=images.t2.array if images.t2 is not None else None,
        classifier=classifier,
        config=classification,
        presence=presence,
    )
    timings["classify_s"] = time.perf_counter() - started

    warnings = input_flags(images) + list(anatomy.flags) + alignment_flags
    if images.t1 is None:
        warnings.append(Flag("missing_t1", "no sagittal T1: Modic types cannot be determined reliably from T2 alone"))
    if images.t2 is None:
        warnings.append(Flag("missing_t2", "no sagittal T2: types 1 and 3 cannot be told apart from T1 alone"))
    warnings.extend(grade_flags(levels, low_confidence=float(classification.low_confidence)))
    warnings.extend(whole_body_flags(levels, voxels=classification.voxels, whole_body=classification.whole_body))
    return StudyAnalysis(
        images=images,
        anatomy=anatomy,
        levels=levels,
        warnings=warnings,
        models=info(images),
        config=config,
        timings=timings,
    )
