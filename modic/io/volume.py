"""The image model every stage shares: a 3D array with a RAS+ affine.

Conventions (those of NIfTI, nibabel and MONAI):

* ``array[i, j, k]`` where, for data read from DICOM, ``i`` is the column
  index (moves along the first ImageOrientationPatient vector), ``j`` is the
  row index (moves along the second) and ``k`` is the slice index (moves along
  the slice normal, sorted by position).
* ``affine`` maps a voxel index ``(i, j, k, 1)`` to RAS+ millimetres. DICOM's
  LPS patient coordinates are converted to RAS exactly once, in
  :func:`lps_to_ras`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """Convert a voxel-to-LPS affine (DICOM patient space) to voxel-to-RAS (NIfTI)."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=float)


@dataclass(frozen=True)
class Volume:
    """A scalar 3D image with its geometry and provenance.

    Attributes:
        array: voxel values, float32, shape ``(I, J, K)``.
        affine: 4x4 voxel-index to RAS+ millimetre transform.
        info: provenance (``source``, ``series_uid``, ``series_description``,
            ``weighting`` ...), free-form and JSON-serialisable.
    """

    array: np.ndarray
    affine: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Volume array must be 3D, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"Volume affine must be 4x4, got shape {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def axcodes(self) -> tuple[str, str, str]:
        """Closest anatomical direction of each array axis, e.g. ``('P', 'I', 'L')``."""
        import nibabel as nib

        return tuple(nib.aff2axcodes(self.affine))  # type: ignore[return-value]

    @property
    def lateral_axis(self) -> int:
        """Array axis closest to the patient's left-right direction (RAS x): the one across sagittal slices."""
        return int(np.argmax(np.abs(self.affine[0, :3]) / np.asarray(self.spacing)))

    def with_array(self, array: np.ndarray, **info: Any) -> Volume:
        """Same geometry, new voxel values (e.g. a label map), optionally updated info."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from volume shape {self.array.shape}")
        return replace(self, array=array, info={**self.info, **info})

    def slice_at(self, k: int) -> Volume:
        """Slice ``k`` of the third array axis as a one-slice volume at the same place in the world."""
        if not 0 <= k < self.shape[2]:
            raise ValueError(f"slice {k} is outside the volume's {self.shape[2]} slices (0 to {self.shape[2] - 1})")
        shift = np.eye(4)
        shift[2, 3] = k
        return Volume(array=self.array[:, :, k : k + 1].copy(), affine=self.affine @ shift, info=dict(self.info))

    def world_coordinates(self, index: np.ndarray) -> np.ndarray:
        """RAS mm of voxel indices given as an ``(N, 3)`` array."""
        index = np.atleast_2d(np.asarray(index, dtype=float))
        return index @ self.affine[:3, :3].T + self.affine[:3, 3]
