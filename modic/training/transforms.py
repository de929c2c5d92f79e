"""MONAI transform pipelines for training the segmentation network.

Augmentations model what differs between sites and sequences: bias field,
contrast (T1, T2, TIRM, SPACE, chemical-shift), 8-bit display windows that clip
and quantise, noise, blur from thick slices, coarser in-plane resolution
(down- and up-sampling), pixel spacing (scale), patient position and lordosis
(rotation, shear, translation); and what differs between patients: the marrow
signal of single vertebral bodies (fatty, oedematous or sclerotic marrow).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
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

from scipy import ndimage

from modic.segmentation.classes import BONE_CLASSES
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


class RandMarrowSignald(RandomizableTransform):
    """Scale the signal of single vertebral bodies, as fatty, oedematous or sclerotic marrow does.

    Modic changes, fatty involution and sclerosis make one body much brighter or darker
    than its neighbours on T1 and T2; a network that learnt bodies by their usual
    intermediate signal leaves such a body out, and every level name above it shifts.
    Each labelled body (connected component of the body and S1 classes) is, with
    probability ``body_prob``, multiplied by its own factor drawn log-uniformly from
    ``factor_range``; the factor fades in over ``edge_sigma_px`` at the body's outline so
    that no artificial edge marks it. The image is expected in [0, 1] and is clipped there
    (a bright body saturates as in an 8-bit rendering).

    Args:
        keys: image keys to transform.
        label_key: the label map (classes of :mod:`modic.segmentation.classes`).
        prob: probability of transforming a sample at all.
        factor_range: smallest and largest intensity factor.
        body_prob: probability for each body of the sample to be changed.
        edge_sigma_px: Gaussian width of the fade at the body's outline, in pixels.
    """

    def __init__(
        self,
        keys: Hashable,
        *,
        label_key: str = "label",
        prob: float,
        factor_range: tuple[float, float] = (0.5, 2.0),
        body_prob: float = 0.5,
        edge_sigma_px: float = 1.5,
    ) -> None:
        low, high = factor_range
        if not 0.0 < low <= high:
            raise ValueError(f"factor_range {factor_range} must hold two factors 0 < low <= high")
        if not 0.0 <= body_prob <= 1.0:
            raise ValueError(f"body_prob {body_prob} must lie in [0, 1]")
        if edge_sigma_px < 0.0:
            raise ValueError(f"edge_sigma_px {edge_sigma_px} must be >= 0")
        RandomizableTransform.__init__(self, prob)
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.label_key = label_key
        self.log_range = (float(np.log(low)), float(np.log(high)))
        self.body_prob = body_prob
        self.edge_sigma_px = edge_sigma_px

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        result = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return result
        label = np.asarray(torch.as_tensor(result[self.label_key]).detach().cpu())[0]
        components, count = ndimage.label(np.isin(label, [int(c) for c in BONE_CLASSES]))
        if count == 0:
            return result
        gain = np.zeros(label.shape, dtype=np.float32)
        for index in range(1, count + 1):
            if self.R.uniform() < self.body_prob:
                gain[components == index] = float(np.exp(self.R.uniform(*self.log_range))) - 1.0
        if not gain.any():
            return result
        if self.edge_sigma_px > 0:
            gain = ndimage.gaussian_filter(gain, self.edge_sigma_px)
        factor = torch.from_numpy(1.0 + gain)
        for key in self.keys:
            image = torch.as_tensor(result[key])
            result[key] = (image * factor.to(image.dtype)).clamp(0.0, 1.0)
        return result


def intensity_normalisation(*, lower: float, upper: float) -> ScaleIntensityRangePercentilesd:
    """Per-slice robust scaling to [0, 1], the same as :func:`modic.preprocessing.normalize_slices`.

    Channel by channel: the neighbouring slices of a 2.5D sample are scaled on their own,
    as inference scales every slice before it stacks the neighbours.
    """
    return ScaleIntensityRangePercentilesd(
        keys="image", lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True, channel_wise=True
    )


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
            RandMarrowSignald(
                keys="image", prob=aug.marrow_signal_prob, factor_range=aug.marrow_signal_factor
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
