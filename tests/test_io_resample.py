"""Resampling onto a reference grid in physical space."""

from __future__ import annotations

import numpy as np
import pytest

from modic.io.resample import resample_to, same_grid
from modic.io.volume import Volume
from helpers.io import grid_affine, pattern

BOX_RAS = (np.array([-10.0, 2.0, 10.0]), np.array([14.0, 14.0, 24.0]))
"""A physical box (RAS mm) painted in the moving image."""


def painted(shape: tuple[int, int, int], affine: np.ndarray) -> Volume:
    """A volume that is 1000 inside BOX_RAS and 0 elsewhere, judged at voxel centres."""
    index = np.indices(shape).reshape(3, -1).T
    world = index @ affine[:3, :3].T + affine[:3, 3]
    inside = np.all((world >= BOX_RAS[0]) & (world <= BOX_RAS[1]), axis=1).reshape(shape)
    return Volume(np.where(inside, 1000.0, 0.0).astype(np.float32), affine)


def test_identical_grid_is_returned_unchanged() -> None:
    reference = Volume(pattern((6, 5, 4)), grid_affine())
    moving = Volume(pattern((6, 5, 4), seed=3), grid_affine().copy())

    assert same_grid(moving, reference)
    assert resample_to(moving, reference) is moving


def test_integer_voxel_shift_is_exact() -> None:
    affine = grid_affine(spacing=(1.0, 1.0, 3.0))
    reference = Volume(np.zeros((10, 8, 4), np.float32), affine)
    shifted = affine.copy()
    shifted[:3, 3] += affine[:3, 0] * 2  # moving grid starts two columns further
    moving = Volume(pattern((10, 8, 4)), shifted)

    result = resample_to(moving, reference)

    np.testing.assert_allclose(result.array[2:], moving.array[:-2], atol=1e-3)
    assert np.all(result.array[:2] == 0)  # outside the moving field of view
    np.testing.assert_array_equal(result.affine, reference.affine)


def test_shifted_differently_sized_t2_lands_at_the_right_place() -> None:
    t1_affine = grid_affine(spacing=(0.8, 0.8, 3.0), origin=(12.0, -10.0, 40.0))
    t1 = Volume(np.zeros((40, 44, 9), np.float32), t1_affine)
    t2 = painted((30, 36, 7), grid_affine(spacing=(1.1, 1.2, 4.0), origin=(14.5, -13.0, 45.0)))
    assert t2.array.any()

    result = resample_to(t2, t1)

    assert result.shape == t1.shape
    # Away from the box surface (by more than one moving voxel along each RAS axis: x is the 4 mm
    # slice direction), values match the physical box exactly.
    margin = np.array([4.1, 1.2, 1.3])
    index = np.indices(t1.shape).reshape(3, -1).T
    world = (index @ t1.affine[:3, :3].T + t1.affine[:3, 3]).reshape(*t1.shape, 3)
    well_inside = np.all((world >= BOX_RAS[0] + margin) & (world <= BOX_RAS[1] - margin), axis=-1)
    well_outside = np.any((world < BOX_RAS[0] - margin) | (world > BOX_RAS[1] + margin), axis=-1)
    assert well_inside.sum() > 20 and well_outside.sum() > 1000
    np.testing.assert_allclose(result.array[well_inside], 1000.0, atol=1e-3)
    np.testing.assert_allclose(result.array[well_outside], 0.0, atol=1e-3)
    assert result.info["resampled_from"]["shape"] == [30, 36, 7]


def test_nearest_keeps_label_values() -> None:
    affine = grid_affine(spacing=(1.0, 1.0, 3.0))
    labels = np.zeros((10, 10, 4), np.uint8)
    labels[2:6, 3:8, 1:3] = 3
    labels[6:9, 3:8, 1:3] = 7
    moving = Volume(labels, affine)
    other = affine.copy()
    other[:3, :3] *= 0.7
    reference = Volume(np.zeros((14, 14, 6), np.float32), other)

    result = resample_to(moving, reference, interpolation="nearest")

    assert result.array.dtype == np.uint8
    assert set(np.unique(result.array)) == {0, 3, 7}


def test_axis_aligned_fast_path_equals_scipy_affine_transform() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    source = rng.random((23, 19, 7)).astype(np.float32) * 1000
    moving_affine = grid_affine(spacing=(0.9, 0.8, 4.0), origin=(10.0, -5.0, 20.0))
    reference_affine = grid_affine(spacing=(0.7, 1.1, 3.1), origin=(12.3, -3.9, 21.7))
    moving = Volume(source, moving_affine)
    reference = Volume(np.zeros((31, 17, 9), np.float32), reference_affine)

    result = resample_to(moving, reference)

    matrix = np.linalg.inv(moving_affine) @ reference_affine
    assert np.allclose(matrix[:3, :3], np.diag(np.diag(matrix[:3, :3])))  # the fast path is taken
    expected = ndimage.affine_transform(
        source.astype(np.float64),
        matrix[:3, :3],
        offset=matrix[:3, 3],
        output_shape=(31, 17, 9),
        order=1,
        mode="constant",
        cval=0.0,
        prefilter=False,
    )
    assert (expected == 0).sum() > 100 and (expected > 0).sum() > 1000  # both inside and outside samples
    np.testing.assert_allclose(result.array, expected, rtol=1e-5, atol=1e-3)


def test_fast_and_general_paths_agree() -> None:
    source = pattern((20, 16, 6))
    moving = Volume(source, grid_affine(spacing=(0.9, 0.8, 4.0)))
    reference_affine = grid_affine(spacing=(0.7, 1.1, 3.1), origin=(15.1, -19.0, 31.3))
    reference = Volume(np.zeros((24, 14, 8), np.float32), reference_affine)
    nudged = reference_affine.copy()
    nudged[:3, 0] += 1e-3 * reference_affine[:3, 1]  # a tiny shear forces the general path

    fast = resample_to(moving, reference)
    general = resample_to(moving, Volume(reference.array, nudged))

    assert fast.array.any()
    np.testing.assert_allclose(fast.array, general.array, atol=0.05 * float(source.max()))
    assert np.array_equal(fast.array == 0, general.array == 0)


@pytest.mark.parametrize("shear", [0.0, 0.05])
def test_coinciding_edge_slice_survives_header_rounding(shear: float) -> None:
    moving = Volume(pattern((12, 10, 5)) + 1, grid_affine(spacing=(1.0, 1.0, 4.0)))
    reference_affine = grid_affine(spacing=(0.9, 0.9, 4.0))
    reference_affine[:3, 2] *= 1 + 1e-7  # the last slice lands 4e-7 voxel beyond the moving stack
    reference_affine[:3, 0] += shear * reference_affine[:3, 1]
    reference = Volume(np.zeros((12, 10, 5), np.float32), reference_affine)

    result = resample_to(moving, reference)

    assert result.array[:5, :5, -1].min() > 0
    assert result.array[:5, :5, 0].min() > 0


def test_rotated_t2_lands_at_the_right_place() -> None:
    t1 = Volume(np.zeros((40, 44, 9), np.float32), grid_affine(spacing=(0.8, 0.8, 3.0), origin=(12.0, -10.0, 40.0)))
    angle = np.deg2rad(12.0)
    tilt = np.eye(4)
    tilt[:3, :3] = [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    t2_affine = tilt @ grid_affine(spacing=(0.9, 0.9, 4.0), origin=(14.5, -18.0, 36.0))
    t2 = painted((44, 48, 7), t2_affine)

    result = resample_to(t2, t1)

    margin = np.array([4.1, 1.0, 1.0])
    index = np.indices(t1.shape).reshape(3, -1).T
    world = (index @ t1.affine[:3, :3].T + t1.affine[:3, 3]).reshape(*t1.shape, 3)
    well_inside = np.all((world >= BOX_RAS[0] + margin) & (world <= BOX_RAS[1] - margin), axis=-1)
    well_outside = np.any((world < BOX_RAS[0] - margin) | (world > BOX_RAS[1] + margin), axis=-1)
    assert well_inside.sum() > 20 and well_outside.sum() > 1000
    np.testing.assert_allclose(result.array[well_inside], 1000.0, atol=1e-3)
    np.testing.assert_allclose(result.array[well_outside], 0.0, atol=1e-3)
