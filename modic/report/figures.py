"""PNG pictures of an analysis: sagittal T1 and T2 with named structures and Modic-coloured endplate bands.

Each picture shows one sagittal slice in radiological orientation (head up,
anterior on the left, pixels at their physical aspect ratio): the slice
holding the most endplate-band voxels, i.e. the mid-sagittal slice through
the graded vertebrae. Vertebral bodies and discs are outlined and named, each
endplate band is filled with the colour of its Modic type (a mixed band is
striped in the colours of its types), and the research notice sits in the
bottom-left corner. ``montage_t1.png`` shows every slice that holds a band, so
the lateral extent of a change can be seen.

Orientation comes from the Volume affine: of the two in-plane array axes, the
one closest to superior-inferior becomes the rows and is flipped so superior
is at the top, the other becomes the columns and is flipped so anterior is on
the left (small obliquities are shown as acquired, without resampling, so the
label maps stay exact). Matplotlib's Agg canvas is used directly (no pyplot
state), and PNG metadata is fixed, so the same analysis gives the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modic import RESEARCH_NOTICE, atomic
from modic.arrays import bounding_box
from modic.io.volume import Volume
from modic.levels import SpineAnatomy
from modic.results import StudyAnalysis

MODIC_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (120, 200, 120),
    1: (220, 50, 50),
    2: (240, 200, 40),
    3: (60, 110, 230),
}
"""RGB colour of each Modic type (0: no change); the HTML report and the SEG use the same colours."""
MODIC_NAMES = {0: "no change", 1: "type 1", 2: "type 2", 3: "type 3"}
UNDETERMINED_COLOUR = (150, 150, 150)
"""Grey of an endplate whose type the images cannot decide (never the green of "no change")."""
VERTEBRA_COLOUR = (255, 235, 190)
DISC_COLOUR = (120, 200, 255)

SAGITTAL_SIZE_PX = (900, 1000)
"""Width and height of ``sagittal_t1.png`` and ``sagittal_t2.png``."""
MONTAGE_SIZE_PX = (1600, 900)
"""Width and height of ``montage_t1.png``."""
MONTAGE_MAX_SLICES = 8
MONTAGE_MARGIN_MM = 15.0
"""Margin around the spine in the montage panels."""
MONTAGE_GAP_FRACTION = 0.06
"""Gap between montage panels, as a fraction of a panel's larger side."""
DPI = 100
BAND_ALPHA = 0.6
STRIPE_MM = 1.5
"""Width of the stripes of a mixed band."""
LABEL_OFFSET_MM = 4.0
"""Gap between a body or disc and its name."""
PNG_METADATA = {"Software": "modic"}
PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs: level 1 encodes several times faster than the default 6, for files about 15 % larger."""


@dataclass(frozen=True)
class Plane:
    """How a sagittal slice of the label-map grid is displayed.

    ``row_axis``/``col_axis`` are the array axes shown as rows and columns
    (after removing the slice axis), flipped when ``flip_rows``/``flip_cols``.
    """

    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    row_mm: float
    col_mm: float

    @classmethod
    def of(cls, geometry: Volume, slice_axis: int) -> Plane:
        spacing = np.asarray(geometry.spacing)
        directions = geometry.affine[:3, :3] / spacing
        in_plane = [axis for axis in range(3) if axis != slice_axis]
        row_axis = max(in_plane, key=lambda axis: abs(directions[2, axis]))
        col_axis = next(axis for axis in in_plane if axis != row_axis)
        return cls(
            slice_axis=slice_axis,
            row_axis=row_axis,
            col_axis=col_axis,
            flip_rows=bool(directions[2, row_axis] > 0),
            flip_cols=bool(directions[1, col_axis] > 0),
            row_mm=float(spacing[row_axis]),
            col_mm=float(spacing[col_axis]),
        )

    def take(self, array: np.ndarray, index: int) -> np.ndarray:
        """Slice ``index`` of a 3D array on the grid, as displayed (rows: superior first, columns: anterior first)."""
        plane = np.take(array, index, axis=self.slice_axis)
        kept = [axis for axis in range(3) if axis != self.slice_axis]
        if kept.index(self.row_axis) != 0:
            plane = plane.T
        if self.flip_rows:
            plane = plane[::-1, :]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane

    def extent(self, shape: tuple[int, int]) -> tuple[float, float, float, float]:
        """imshow extent in mm (left, right, bottom, top) of a displayed plane of ``shape``."""
        return (0.0, shape[1] * self.col_mm, shape[0] * self.row_mm, 0.0)


def write_figures(analysis: StudyAnalysis, report: Mapping[str, Any], folder: str | Path) -> dict[str, Path]:
    """Write the PNG pictures into ``folder``; returns them by name (``sagittal_t1``, ``sagittal_t2``, ``montage_t1``).

    A picture is left out when its image is missing (no T1 or T2) or, for the montage, when
    fewer than two slices hold an endplate band.
    """
    folder = Path(folder)
    anatomy = analysis.anatomy
    plane = Plane.of(anatomy.geometry, anatomy.slice_axis)
    index = mid_slice(anatomy)
    types = _endplate_types(report)
    level_types = {level["level"]: str(level["mixed"] or level["modic_type"]) for level in report["levels"]}
    pictures: dict[str, Path] = {}
    for role, volume in (("t1", analysis.images.t1), ("t2", analysis.images.t2)):
        if volume is None:
            continue
        figure = _sagittal_figure(
            volume.array, anatomy, plane, index, types=types, level_types=level_types,
            title=f"{role.upper()} sagittal, slice {index + 1} of {anatomy.geometry.shape[plane.slice_axis]}"
            f" - study {report['study']['key']}",
        )
        pictures[f"sagittal_{role}"] = _save(figure, folder / f"sagittal_{role}.png")
    slices = montage_slices(anatomy)
    if analysis.images.t1 is not None and len(slices) > 1:
        figure = _montage_figure(analysis.images.t1.array, anatomy, plane, slices, types=types,
                                 title=f"T1 sagittal slices with endplate bands - study {report['study']['key']}")
        pictures["montage_t1"] = _save(figure, folder / "montage_t1.png")
    return pictures


def mid_slice(anatomy: SpineAnatomy) -> int:
    """Index along the slice axis with the most endplate-band voxels (else vertebra voxels, else the middle)."""
    axis = anatomy.slice_axis
    others = tuple(a for a in range(3) if a != axis)
    for labels in (anatomy.endplate_map, anatomy.vertebra_map):
        counts = (labels > 0).sum(axis=others)
        if counts.any():
            return int(np.argmax(counts))
    return anatomy.geometry.shape[axis] // 2


def montage_slices(anatomy: SpineAnatomy) -> list[int]:
    """Slices holding any endplate band, at most :data:`MONTAGE_MAX_SLICES`, evenly spread."""
    axis = anatomy.slice_axis
    counts = (anatomy.endplate_map > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    present = np.flatnonzero(counts)
    if len(present) <= MONTAGE_MAX_SLICES:
        return present.tolist()
    chosen = np.linspace(0, len(present) - 1, MONTAGE_MAX_SLICES).round().astype(int)
    return present[np.unique(chosen)].tolist()


def _endplate_types(report: Mapping[str, Any]) -> dict[str, tuple[int | None, ...]]:
    """Types to paint per endplate name: one type, the types of a mixed band, or None when undetermined."""
    types: dict[str, tuple[int | None, ...]] = {}
    for level in report["levels"]:
        for endplate in level["endplates"]:
            mixed, modic_type = endplate["mixed"], endplate["modic_type"]
            if mixed:
                types[endplate["endplate"]] = tuple(int(t) for t in mixed.split("/"))
            else:
                types[endplate["endplate"]] = (modic_type if isinstance(modic_type, int) else None,)
    return types


def _new_figure(size_px: tuple[int, int]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI, facecolor="black")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor=figure.get_facecolor(), metadata=PNG_METADATA,
                   pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    atomic.write_bytes(path, buffer.getvalue())
    return path


def _window(image: np.ndarray) -> tuple[float, float]:
    values = image[np.isfinite(image)]
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def _draw_slice(
    axes: Any,
    image: np.ndarray,
    anatomy: SpineAnatomy,
    plane: Plane,
    index: int,
    *,
    types: Mapping[str, tuple[int | None, ...]],
    level_types: Mapping[str, str] | None,
    crop: tuple[slice, slice] | None = None,
    at_mm: tuple[float, float] = (0.0, 0.0),
) -> None:
    """Image, band overlay and outlines of one slice; names when ``level_types`` is given.

    ``crop`` (displayed rows, columns) shows part of the slice, with its top-left corner at
    ``at_mm`` (x, y) in the axes' millimetres; the window is that of the whole slice.
    """
    whole = plane.take(image, index).astype(float)
    low, high = _window(whole)
    crop = crop or (slice(0, whole.shape[0]), slice(0, whole.shape[1]))
    shown = whole[crop]
    extent = (at_mm[0], at_mm[0] + shown.shape[1] * plane.col_mm, at_mm[1] + shown.shape[0] * plane.row_mm, at_mm[1])
    axes.imshow(np.nan_to_num(shown, nan=low), cmap="gray", vmin=low, vmax=high, extent=extent,
                interpolation="bilinear")
    axes.imshow(_band_overlay(anatomy, plane, index, types)[crop], extent=extent, interpolation="nearest")
    for attribute, colour, linewidth in (("vertebra_map", VERTEBRA_COLOUR, 0.8), ("disc_map", DISC_COLOUR, 0.6)):
        # Bodies never touch each other (discs lie between them), nor do discs: one
        # contour of a map's foreground outlines every structure in it.
        labels = plane.take(getattr(anatomy, attribute), index)[crop]
        if labels.any():
            _outline(axes, labels > 0, plane, colour=_rgb(colour), linewidth=linewidth, at_mm=at_mm)
    if level_types is not None:
        _names(axes, anatomy, plane, index, level_types)


def _band_overlay(
    anatomy: SpineAnatomy, plane: Plane, index: int, types: Mapping[str, tuple[int | None, ...]]
) -> np.ndarray:
    """RGBA image of the endplate bands of one slice, a mixed band striped in the colours of its types.

    An undetermined band (type None) is grey.
    """
    labels = plane.take(anatomy.endplate_map, index)
    overlay = np.zeros((*labels.shape, 4), dtype=np.float32)
    rows, cols = np.nonzero(labels)
    values = labels[rows, cols]
    stripe = np.floor((rows * plane.row_mm + cols * plane.col_mm) / STRIPE_MM).astype(int)
    for region in anatomy.endplates:
        inside = values == region.label
        band_types = types.get(region.name, (None,))
        for n, modic_type in enumerate(band_types):
            painted = inside & (stripe % len(band_types) == n)
            colour = np.asarray(MODIC_COLOURS.get(modic_type, UNDETERMINED_COLOUR) if modic_type is not None
                                else UNDETERMINED_COLOUR) / 255
            overlay[rows[painted], cols[painted], :3] = colour
        overlay[rows[inside], cols[inside], 3] = BAND_ALPHA
    return overlay


def _outline(
    axes: Any,
    mask: np.ndarray,
    plane: Plane,
    *,
    colour: tuple[float, float, float],
    linewidth: float,
    at_mm: tuple[float, float] = (0.0, 0.0),
) -> None:
    # Contour only the mask's bounding box (one pixel wider, so outlines close): far less work than the slice.
    rows, cols = bounding_box(mask, 1) or (slice(0, mask.shape[0]), slice(0, mask.shape[1]))
    x = at_mm[0] + (np.arange(cols.start, cols.stop) + 0.5) * plane.col_mm
    y = at_mm[1] + (np.arange(rows.start, rows.stop) + 0.5) * plane.row_mm
    axes.contour(x, y, mask[rows, cols].astype(float), levels=[0.5], colors=[colour], linewidths=linewidth)


def _names(axes: Any, anatomy: SpineAnatomy, plane: Plane, index: int, level_types: Mapping[str, str]) -> None:
    """Vertebra names anterior to each body, disc names (with the level's Modic type) posterior to each disc."""
    for structures, attribute, colour, side in (
        (anatomy.vertebrae, "vertebra_map", VERTEBRA_COLOUR, "anterior"),
        (anatomy.discs, "disc_map", DISC_COLOUR, "posterior"),
    ):
        labels = plane.take(getattr(anatomy, attribute), index)
        for structure in structures:
            where = np.argwhere(labels == structure.label) if structure.label else np.empty((0, 2))
            if not len(where):
                continue
            row_mm = (where[:, 0].mean() + 0.5) * plane.row_mm
            if side == "anterior":
                col_mm, align = where[:, 1].min() * plane.col_mm - LABEL_OFFSET_MM, "right"
                text = structure.name
            else:
                col_mm, align = (where[:, 1].max() + 1) * plane.col_mm + LABEL_OFFSET_MM, "left"
                level = level_types.get(structure.name)
                text = structure.name if level is None else f"{structure.name}  Modic {level}"
            axes.text(col_mm, row_mm, text, color=_rgb(colour), fontsize=10, fontweight="bold", ha=align,
                      va="center", bbox={"facecolor": "black", "alpha": 0.55, "edgecolor": "none", "pad": 1.5})


def _legend(figure: Any) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=_rgb(MODIC_COLOURS[t]), alpha=BAND_ALPHA, label=f"{t}: {MODIC_NAMES[t]}")
               for t in sorted(MODIC_COLOURS)]
    handles.append(Patch(facecolor=_rgb(MODIC_COLOURS[1]), edgecolor=_rgb(MODIC_COLOURS[2]), hatch="////",
                         label="mixed: stripes of its types"))
    handles.append(Patch(facecolor=_rgb(UNDETERMINED_COLOUR), alpha=BAND_ALPHA,
                         label="undetermined: not decidable from these images"))
    figure.legend(handles=handles, loc="upper right", ncol=1, fontsize=9, title="Modic type of endplate band",
                  title_fontsize=9, facecolor="black", edgecolor="gray", labelcolor="white", framealpha=0.8)
    figure.legends[-1].get_title().set_color("white")


def _notice(figure: Any, width_chars: int) -> None:
    figure.text(0.01, 0.01, textwrap.fill(RESEARCH_NOTICE, width_chars), color="white", fontsize=9, ha="left",
                va="bottom", bbox={"facecolor": (0.55, 0.0, 0.0), "alpha": 0.85, "edgecolor": "none", "pad": 4})


def _sagittal_figure(
    image: np.ndarray,
    anatomy: SpineAnatomy,
    plane: Plane,
    index: int,
    *,
    types: Mapping[str, tuple[int | None, ...]],
    level_types: Mapping[str, str],
    title: str,
) -> Any:
    figure = _new_figure(SAGITTAL_SIZE_PX)
    axes = figure.add_axes((0.02, 0.07, 0.96, 0.79))
    axes.set_facecolor("black")
    _draw_slice(axes, image, anatomy, plane, index, types=types, level_types=level_types)
    left, right, bottom, top = plane.extent((anatomy.geometry.shape[plane.row_axis],
                                             anatomy.geometry.shape[plane.col_axis]))
    axes.set_xlim(left, right)
    axes.set_ylim(bottom, top)
    axes.set_axis_off()
    figure.text(0.02, 0.975, title, color="white", fontsize=11, ha="left", va="top")
    figure.text(0.02, 0.95, "head up, anterior left", color="lightgray", fontsize=9, ha="left", va="top")
    _legend(figure)
    _notice(figure, 120)
    return figure


def _montage_figure(
    image: np.ndarray,
    anatomy: SpineAnatomy,
    plane: Plane,
    slices: Sequence[int],
    *,
    types: Mapping[str, tuple[int | None, ...]],
    title: str,
) -> Any:
    """Panels of the spine in each of ``slices``, laid out on one axes (one axes per panel draws far slower)."""
    figure = _new_figure(MONTAGE_SIZE_PX)
    crop = _spine_crop(anatomy, plane)
    width = (crop[1].stop - crop[1].start) * plane.col_mm
    height = (crop[0].stop - crop[0].start) * plane.row_mm
    rows, columns = _grid(len(slices), crop_mm=(width, height))
    gap = MONTAGE_GAP_FRACTION * max(width, height)
    axes = figure.add_axes((0.02, 0.08, 0.96, 0.8))
    axes.set_facecolor("black")
    for n, index in enumerate(slices):
        row, column = divmod(n, columns)
        at_mm = (column * (width + gap), row * (height + 2 * gap) + gap)
        _draw_slice(axes, image, anatomy, plane, index, types=types, level_types=None, crop=crop, at_mm=at_mm)
        axes.text(at_mm[0] + width / 2, at_mm[1] - gap / 4, f"slice {index + 1}", color="white", fontsize=9,
                  ha="center", va="bottom")
    axes.set_xlim(-gap / 2, columns * (width + gap) - gap / 2)
    axes.set_ylim(rows * (height + 2 * gap), 0.0)
    axes.set_axis_off()
    figure.text(0.02, 0.975, title, color="white", fontsize=11, ha="left", va="top")
    _legend(figure)
    _notice(figure, 180)
    return figure


def _grid(count: int, *, crop_mm: tuple[float, float]) -> tuple[int, int]:
    """Rows and columns of montage panels (one to three rows) that show a crop of ``crop_mm`` (w, h) largest."""
    best = (0.0, 1, count)
    for rows in range(1, min(3, count) + 1):
        columns = int(np.ceil(count / rows))
        panel_w = 0.96 * MONTAGE_SIZE_PX[0] / columns
        panel_h = 0.76 * MONTAGE_SIZE_PX[1] / rows
        scale = min(panel_w / crop_mm[0], panel_h / crop_mm[1])
        if scale > best[0]:
            best = (scale, rows, columns)
    return best[1], best[2]


def _spine_crop(anatomy: SpineAnatomy, plane: Plane) -> tuple[slice, slice]:
    """Displayed rows and columns around every named body and disc of any slice, with a margin."""
    spine = np.any((anatomy.vertebra_map > 0) | (anatomy.disc_map > 0), axis=plane.slice_axis, keepdims=True)
    shown = plane.take(spine, 0)
    margin = (int(np.ceil(MONTAGE_MARGIN_MM / plane.row_mm)), int(np.ceil(MONTAGE_MARGIN_MM / plane.col_mm)))
    return bounding_box(shown, margin) or (slice(0, shown.shape[0]), slice(0, shown.shape[1]))


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)
