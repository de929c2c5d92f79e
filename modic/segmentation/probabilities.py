"""Class probability maps: what the levels stage reads, whichever tool segmented the image.

The levels stage (:func:`modic.levels.build_anatomy`) takes class
probabilities ``(C, I, J, K)`` in the channel order of :class:`SegClass`
(background, vertebral body, disc, S1) on the image grid. modic's network makes
them (:mod:`modic.segmentation.infer`); :func:`probabilities_from_labels`
makes them from another tool's integer label map (for instance
TotalSpineSeg's), so that such a segmentation is graded by modic's levels and
classification stages without modic's network. Neither function needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modic.errors import AnalysisError, ConfigError
from modic.io.resample import resample_to
from modic.io.volume import Volume
from modic.segmentation.classes import N_CLASSES, SegClass

CLASS_KEYS: dict[str, SegClass] = {
    "background": SegClass.BACKGROUND,
    "vertebral_body": SegClass.VERTEBRAL_BODY,
    "disc": SegClass.DISC,
    "s1": SegClass.S1,
}
"""The names a label mapping may give each label (:func:`probabilities_from_labels`)."""


def fuse_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """The mean class probabilities ``(C, I, J, K)`` of co-registered volumes, as ``predict_fused`` returns."""
    if not probabilities:
        raise AnalysisError("no image to segment: give a T1 or a T2")
    shapes = {p.shape for p in probabilities}
    if len(shapes) != 1:
        raise AnalysisError(f"probabilities to fuse must share a grid; got shapes {sorted(shapes)}")
    total = np.array(probabilities[0], dtype=np.float32, copy=True)
    for p in probabilities[1:]:
        total += p
    return total / len(probabilities)


def label_classes(mapping: Mapping[int, str]) -> dict[int, SegClass]:
    """The class of each label value of ``mapping`` (:func:`probabilities_from_labels`), checked.

    Raises:
        ConfigError: a class name that is not one of :data:`CLASS_KEYS`, or a key that is not an integer.
    """
    unknown = sorted({str(name) for name in mapping.values()} - set(CLASS_KEYS))
    if unknown:
        raise ConfigError(f"label mapping names {unknown}; use {', '.join(CLASS_KEYS)}")
    bad = [value for value in mapping if isinstance(value, bool) or not isinstance(value, (int, np.integer))]
    if bad:
        raise ConfigError(f"label mapping keys {bad!r} are not integer label values; give e.g. {{41: 'vertebral_body'}}")
    return {int(value): CLASS_KEYS[str(name)] for value, name in mapping.items()}


def probabilities_from_labels(labels: Volume, mapping: Mapping[int, str], *, like: Volume) -> np.ndarray:
    """Class probabilities ``(C, *like.shape)`` (0 or 1) from an integer label map and what its labels mean.

    Args:
        labels: the label map (any grid covering ``like``; resampled to it by
            nearest neighbour when the grids differ).
        mapping: label value -> ``"vertebral_body"``, ``"disc"``, ``"s1"`` or
            ``"background"``. Give every lumbar (and lower thoracic) vertebral
            body, every disc between them and the S1 body (or the whole sacrum:
            its top is S1's superior endplate); labels not in the mapping (spinal
            canal, cord, posterior elements) become background.
        like: the image the probabilities are for (a volume of
            :func:`modic.pipeline.segmentation_inputs`).

    Raises:
        ConfigError: a class name or label value in ``mapping`` that is not understood.
    """
    classes_of = label_classes(mapping)
    if labels.shape != like.shape or not np.allclose(labels.affine, like.affine, atol=1e-3):
        labels = resample_to(labels, like, interpolation="nearest")
    values = np.rint(labels.array).astype(np.int64)
    classes = np.full(values.shape, int(SegClass.BACKGROUND), dtype=np.int64)
    for value, seg_class in classes_of.items():
        classes[values == value] = int(seg_class)
    return np.eye(N_CLASSES, dtype=np.float32)[classes].transpose(3, 0, 1, 2).copy()
