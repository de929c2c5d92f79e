"""Translation between the T1 and T2 of a single-slice pair.

Single sagittal slices exported as pictures carry no position, and real
pairs are not always co-registered pixel for pixel (different fields of
view, flipped rendering origins). The pair is aligned by the translation
that best overlays the spine found independently in each image: the
normalised cross-correlation of the two foreground-probability maps,
computed with FFTs and limited to ``max_shift`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Translation:
    """Shift (rows, columns) in pixels that moves the moving image onto the fixed one, and its correlation."""

    rows: int
    cols: int
    correlation: float


def estimate_translation(fixed: np.ndarray, moving: np.ndarray, *, max_shift: int) -> Translation:
    """Integer shift maximising the correlation of two same-shape 2D maps."""
    if fixed.shape != moving.shape or fixed.ndim != 2:
        raise ValueError(f"need two 2D maps of one shape, got {fixed.shape} and {moving.shape}")
    rows, cols = fixed.shape
    size = (2 * rows, 2 * cols)
    a = fixed - fixed.mean()
    b = moving - moving.mean()
    spectrum = np.fft.rfft2(a, size) * np.conj(np.fft.rfft2(b, size))
    correlation = np.fft.irfft2(spectrum, size)
    shifts_r = np.r_[0 : max_shift + 1, -max_shift:0]
    shifts_c = np.r_[0 : max_shift + 1, -max_shift:0]
    window = correlation[np.ix_(shifts_r % size[0], shifts_c % size[1])]
    best = np.unravel_index(int(np.argmax(window)), window.shape)
    norm = float(np.sqrt((a**2).sum() * (b**2).sum())) or 1.0
    return Translation(int(shifts_r[best[0]]), int(shifts_c[best[1]]), float(window[best] / norm))


def shift_image(image: np.ndarray, translation: Translation) -> np.ndarray:
    """``image`` (``(..., rows, cols)``) moved by ``translation``, zero-filled."""
    out = np.zeros_like(image)
    dr, dc = translation.rows, translation.cols
    rows, cols = image.shape[-2:]
    src_r = slice(max(-dr, 0), rows - max(dr, 0))
    dst_r = slice(max(dr, 0), rows - max(-dr, 0))
    src_c = slice(max(-dc, 0), cols - max(dc, 0))
    dst_c = slice(max(dc, 0), cols - max(-dc, 0))
    out[..., dst_r, dst_c] = image[..., src_r, src_c]
    return out
