"""MONAI transform pipelines for training the segmentation network.

Augmentations model what differs between sites and sequences: bias field,
contrast (T1, T2, TIRM, SPACE, chemical-shift), 8-bit display windows that clip
and quantise, noise, blur from thick slices, coarser in-plane resolution
(down- and up-sampling), pixel spacing (scale), patient position and lordosis
(rotation, shear, translation).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
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
    RandSimulateLowResolutiond,
    RandomizableTransform,
    ScaleIntensityRangePercentilesd,
    SpatialPadd,
)

from modic.training.settings import AugmentationSettings

KEYS = ("image", "label")


class RandWindow8Bitd(RandomizableTransform):
    """Render an image in [0, 1] as an 8-bit display window would: clip, then quantise to 256 levels.

    Clinical archives and public derivatives often hold 8-bit renderings whose window cut
    off the brightest tissue (fat, CSF) or the darkest; the network must not depend on
    the intensities above or below such a window.

    Args:
        keys: image keys to transform.
        prob: probability of applying the window.
        max_clip_low: largest fraction of the intensity range cut off at the dark end.
        max_clip_high: largest fraction of the intensity range cut off at the bright end.
    """

    def __init__(
        self, keys: Hashable, *, prob: float, max_clip_low: float = 0.05, max_clip_high: float = 0.3
    ) -> None:
        if not 0.0 <= max_clip_low < 0.5 or not 0.0 <= max_clip_high < 0.5:
            raise ValueError(
                f"max_clip_low {max_clip_low} and max_clip_high {max_clip_high} must each lie in [0, 0.5)"
            )
        RandomizableTransform.__init__(self, prob)
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.max_clip_low = max_clip_low
        self.max_clip_high = max_clip_high
        self._window = (0.0, 1.0)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._window = (
            float(self.R.uniform(0.0, self.max_clip_low)),
            float(1.0 - self.R.uniform(0.0, self.max_clip_high)),
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        result = dict(data)
        self.randomize()
        if not self._do_transform:
            return result
        low, high = self._window
        for key in self.keys:
            image = torch.as_tensor(result[key])
            windowed = ((image - low) / (high - low)).clamp(0.0, 1.0)
            result[key] = torch.round(windowed * 255.0) / 255.0
        return result


def intensity_normalisation(*, lower: float, upper: float) -> ScaleIntensityRangePercentilesd:
    """Per-slice robust scaling to [0, 1], the same as :func:`modic.preprocessing.normalize_slices`."""
    return ScaleIntensityRangePercentilesd(keys="image", lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True)


def training_transforms(aug: AugmentationSettings, *, lower: float, upper: float) -> Compose:
    """Augmenting pipeline for 2D samples ``{"image", "label", "labelled"}`` (see the training config)."""
    crop = aug.crop_size
    context = aug.context_size if aug.context_size is not None else round(crop * 1.4)
    return Compose(
        [
            RandBiasFieldd(keys="image", prob=aug.bias_field_prob, coeff_range=aug.bias_field_coeff),
            intensity_normalisation(lower=lower, upper=upper),
            SpatialPadd(keys=KEYS, spatial_size=(context, context)),
            RandCropByPosNegLabeld(
                keys=KEYS,
                label_key="label",
                spatial_size=(context, context),
                pos=aug.positive_ratio,
                neg=1.0,
                num_samples=1,
                allow_smaller=True,
            ),
            RandAffined(
                keys=KEYS,
                mode=("bilinear", "nearest"),
                prob=aug.affine_prob,
                rotate_range=aug.rotate_rad,
                scale_range=aug.scale,
                shear_range=aug.shear,
                translate_range=aug.translate_px,
                spatial_size=(crop, crop),
                padding_mode="zeros",
            ),
            RandGaussianSmoothd(keys="image", prob=aug.smooth_prob, sigma_x=(0.25, 1.2), sigma_y=(0.25, 1.2)),
            RandGaussianNoised(keys="image", prob=aug.noise_prob, std=aug.noise_std),
            RandAdjustContrastd(keys="image", prob=aug.gamma_prob, gamma=aug.gamma),
            RandScaleIntensityd(keys="image", prob=aug.scale_intensity_prob, factors=aug.scale_intensity),
            RandHistogramShiftd(keys="image", prob=aug.histogram_shift_prob, num_control_points=(4, 10)),
            RandSimulateLowResolutiond(
                keys="image",
                prob=aug.low_resolution_prob,
                upsample_mode="bilinear",
                zoom_range=aug.low_resolution_zoom,
            ),
            RandWindow8Bitd(keys="image", prob=aug.window_8bit_prob),
        ]
    )
