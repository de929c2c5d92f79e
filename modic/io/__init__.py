"""Input: DICOM studies, NIfTI/MHA volumes and single sagittal slices, as :class:`Volume` objects."""

from modic.io.volume import Volume

__all__ = ["Volume"]
