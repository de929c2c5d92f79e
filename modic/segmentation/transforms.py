"""MONAI transform pipelines for training the segmentation network.

Augmentations model what differs between sites and sequences: bias field,
contrast (T1, T2, TIRM, chemical-shift, 8-bit renderings), noise, blur from
thick slices, pixel spacing (scale), patient position and lordosis (rotation,
shear, translation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandCropByPosNegLabeld,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandHistogramShiftd,
    RandScaleIntensityd,
    ScaleIntensityRangePercentilesd,
    SpatialPadd,
)

KEYS = ("image", "label")


def intensity_normalisation(*, lower: float, upper: float) -> ScaleIntensityRangePercentilesd:
    """Per-slice robust scaling to [0, 1], the same as :func:`modic.preprocessing.normalize_slices`."""
    return ScaleIntensityRangePercentilesd(keys="image", lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True)


def training_transforms(aug: Mapping[str, Any], *, lower: float, upper: float) -> Compose:
    """Augmenting pipeline for 2D samples ``{"image", "label", "labelled"}`` (see the training config)."""
    crop = int(aug["crop_size"])
    context = int(aug.get("context_size", round(crop * 1.4)))
    return Compose(
        [
            RandBiasFieldd(keys="image", prob=aug["bias_field_prob"], coeff_range=tuple(aug["bias_field_coeff"])),
            intensity_normalisation(lower=lower, upper=upper),
            SpatialPadd(keys=KEYS, spatial_size=(context, context)),
            RandCropByPosNegLabeld(
                keys=KEYS,
                label_key="label",
                spatial_size=(context, context),
                pos=aug["positive_ratio"],
                neg=1.0,
                num_samples=1,
                allow_smaller=True,
            ),
            RandAffined(
                keys=KEYS,
                mode=("bilinear", "nearest"),
                prob=aug["affine_prob"],
                rotate_range=aug["rotate_rad"],
                scale_range=aug["scale"],
                shear_range=aug["shear"],
                translate_range=aug["translate_px"],
                spatial_size=(crop, crop),
                padding_mode="zeros",
            ),
            RandGaussianSmoothd(keys="image", prob=aug["smooth_prob"], sigma_x=(0.25, 1.2), sigma_y=(0.25, 1.2)),
            RandGaussianNoised(keys="image", prob=aug["noise_prob"], std=aug["noise_std"]),
            RandAdjustContrastd(keys="image", prob=aug["gamma_prob"], gamma=tuple(aug["gamma"])),
            RandScaleIntensityd(keys="image", prob=aug["scale_intensity_prob"], factors=aug["scale_intensity"]),
            RandHistogramShiftd(keys="image", prob=aug["histogram_shift_prob"], num_control_points=(4, 10)),
        ]
    )
