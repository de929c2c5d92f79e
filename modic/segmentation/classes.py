"""Output classes of the segmentation network (the channel order of its output)."""

from __future__ import annotations

from enum import IntEnum


class SegClass(IntEnum):
    """Semantic classes; the values are the network's output channels and label-map values."""

    BACKGROUND = 0
    VERTEBRAL_BODY = 1
    DISC = 2
    S1 = 3


CLASS_NAMES: dict[int, str] = {
    SegClass.BACKGROUND: "background",
    SegClass.VERTEBRAL_BODY: "vertebral body (T/L)",
    SegClass.DISC: "intervertebral disc",
    SegClass.S1: "S1 vertebral body",
}
N_CLASSES = len(SegClass)
BONE_CLASSES = (SegClass.VERTEBRAL_BODY, SegClass.S1)
