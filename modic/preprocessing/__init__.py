"""Bring images onto the grid and intensity scale the segmentation network expects."""

from modic.preprocessing.sagittal import (
    NETWORK_AXCODES,
    NetworkGrid,
    from_network_grid,
    normalize_slices,
    sagittal_slices,
    to_network_grid,
)

__all__ = ["NETWORK_AXCODES", "NetworkGrid", "from_network_grid", "normalize_slices", "sagittal_slices",
           "to_network_grid"]
