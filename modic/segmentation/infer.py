"""Run the segmentation network on volumes of any orientation and spacing.

Each volume is brought to the network grid (sagittal slices, 1 mm in-plane by
default), normalised per slice, segmented slice by slice in batches, and the
class probabilities are smoothed across slices (the bundle's
``slice_sigma_mm``) and resampled back onto the volume's own grid. When a
T1 and a T2 on the same grid are given, their probabilities are averaged:
the network is single-channel and contrast-agnostic, so it works from T1
alone, from T2 alone, and fuses both when present. A model may carry a
second one for thin-slice volumes (``thin_slice_model``): volumes of several
slices at most ``thin_slice_max_spacing_mm`` apart are segmented by it, all
others (clinical 3-5 mm series, single slices) by the model itself. A network
may read each slice with its neighbours (``slice_context_mm``, 2.5D): it gets
the slices that far to either side as two more channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from monai.inferers import SimpleInferer
from monai.transforms import DivisiblePad
from scipy import ndimage

from modic.errors import AnalysisError, ConfigError
from modic.io.volume import Volume
from modic.preprocessing.sagittal import (
    NetworkGrid,
    from_network_grid,
    normalize_slices,
    sagittal_slices,
    to_network_grid,
    with_slice_context,
)
from modic.segmentation.bundle import LoadedBundle, PreprocessSettings, load_bundle
from modic.segmentation.probabilities import fuse_probabilities

CPU_PRECISIONS = ("float32", "bfloat16", "auto")


class SegmentationModel:
    """A trained network with its preprocessing, ready for inference.

    Args:
        network: a 2D network mapping ``(B, 1, H, W)`` (``(B, 3, H, W)`` with ``slice_context_mm``) to
            ``(B, C, H, W)`` logits.
        settings: preprocessing that the network was trained with.
        device: where to run it.
        batch_size: slices per forward pass.
        cpu_precision: on a CPU, ``float32``, ``bfloat16`` (mixed precision, about twice as fast
            where the CPU computes bfloat16 natively) or ``auto`` (``bfloat16`` exactly on such CPUs).
            On a GPU the network always runs in float16 mixed precision.
        background_weight: multiplies the background probability before the classes are
            renormalised (the bundle's calibration, :class:`~modic.segmentation.bundle.LoadedBundle`).
        slice_sigma_mm: standard deviation (mm) of the Gaussian applied to the class probabilities
            across slices before they are mapped back (0: none; see :meth:`to_volume_grid`).
        slice_sigma_max_spacing_mm: smooth only volumes whose slices are at most this far apart
            (None: any spacing).
        thin_slice_model: a model for volumes of several slices at most ``thin_slice_max_spacing_mm``
            apart (thin reconstructions); None: this model segments every volume. It must share this
            model's preprocessing; its own background weight and smoothing apply to what it segments.
        thin_slice_max_spacing_mm: the largest slice spacing (mm) that ``thin_slice_model`` is used for.
        slice_context_mm: the network reads each slice with the slices this far (mm) to either side
            (:func:`~modic.preprocessing.sagittal.with_slice_context`); 0: one slice alone.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        settings: PreprocessSettings,
        device: str | torch.device = "cpu",
        batch_size: int = 16,
        cpu_precision: str = "float32",
        background_weight: float = 1.0,
        slice_sigma_mm: float = 0.0,
        slice_sigma_max_spacing_mm: float | None = None,
        thin_slice_model: SegmentationModel | None = None,
        thin_slice_max_spacing_mm: float = 0.0,
        slice_context_mm: float = 0.0,
    ) -> None:
        if cpu_precision not in CPU_PRECISIONS:
            raise ConfigError(
                f"segmentation cpu_precision {cpu_precision!r} is not one of {', '.join(CPU_PRECISIONS)}"
            )
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.settings = settings
        self.batch_size = batch_size
        self.cpu_bfloat16 = cpu_precision == "bfloat16" or (cpu_precision == "auto" and cpu_has_native_bfloat16())
        self.inferer = SimpleInferer()
        self.background_offset = math.log(background_weight)
        self.slice_sigma_mm = slice_sigma_mm
        self.slice_sigma_max_spacing_mm = slice_sigma_max_spacing_mm
        if thin_slice_model is not None and thin_slice_model.settings != settings:
            raise ConfigError(
                f"the thin-slice segmentation model's preprocessing {thin_slice_model.settings} differs from "
                f"the main model's {settings}; both must bring images to the network the same way"
            )
        self.thin_slice_model = thin_slice_model
        self.thin_slice_max_spacing_mm = thin_slice_max_spacing_mm
        if slice_context_mm < 0:
            raise ConfigError(f"segmentation slice_context_mm {slice_context_mm} must be 0 or more millimetres")
        self.slice_context_mm = slice_context_mm

    @classmethod
    def from_bundle(cls, path: str | None = None, *, device: str | torch.device = "cpu") -> SegmentationModel:
        bundle: LoadedBundle = load_bundle(path)
        return cls(bundle.network, settings=bundle.settings, device=device, background_weight=bundle.background_weight,
                   slice_sigma_mm=bundle.slice_sigma_mm, slice_sigma_max_spacing_mm=bundle.slice_sigma_max_spacing_mm,
                   slice_context_mm=bundle.slice_context_mm)

    def network_input(self, volume: Volume) -> tuple[torch.Tensor, NetworkGrid]:
        """The normalised network-grid stack ``(slices, rows, cols)`` of ``volume`` and its grid."""
        if not np.isfinite(volume.array).all():
            raise AnalysisError(f"image '{volume.info.get('source', '?')}' contains NaN or infinite values")
        grid = to_network_grid(volume, spacing_mm=self.settings.spacing_mm)
        normalised = normalize_slices(
            grid.stack, lower=self.settings.percentile_lower, upper=self.settings.percentile_upper
        )
        return normalised, grid

    def model_for(self, grid: NetworkGrid) -> SegmentationModel:
        """The model that segments a volume on ``grid``: the thin-slice model for thin multi-slice volumes, else this."""
        return self._model_for_slices(grid.oriented_shape[0], grid.slice_spacing_mm)

    def uses_thin_slice_model(self, volume: Volume) -> bool:
        """Whether :meth:`predict_probabilities` of ``volume`` runs the thin-slice model."""
        if self.thin_slice_model is None:
            return False
        return self._model_for_slices(*sagittal_slices(volume)) is self.thin_slice_model

    def _model_for_slices(self, count: int, spacing_mm: float) -> SegmentationModel:
        if self.thin_slice_model is None or count < 2 or spacing_mm > self.thin_slice_max_spacing_mm:
            return self
        return self.thin_slice_model

    @torch.no_grad()
    def probabilities_on_grid(self, stack: torch.Tensor, grid: NetworkGrid) -> torch.Tensor:
        """Per-slice class probabilities ``(C, slices, rows, cols)`` for a normalised stack ``(slices, rows, cols)``."""
        return self.probabilities_on_grids([stack], [grid])[0]

    @torch.no_grad()
    def probabilities_on_grids(self, stacks: Sequence[torch.Tensor], grids: Sequence[NetworkGrid]) -> list[torch.Tensor]:
        """:meth:`probabilities_on_grid` of several stacks (e.g. of many studies) in shared forward passes.

        Each stack goes to :meth:`model_for` its grid. Slices whose padded size
        is the same share batches of ``batch_size`` whatever stack they come
        from, so a GPU sees full batches rather than one short study at a time.
        Every slice is padded exactly as on its own (the network normalises
        each slice separately), so each stack's result equals
        :meth:`probabilities_on_grid` of that stack up to floating-point rounding.
        """
        if len(stacks) != len(grids):
            raise ValueError(f"{len(stacks)} stacks but {len(grids)} grids; give each stack its grid")
        models = [self.model_for(grid) for grid in grids]
        results: dict[int, torch.Tensor] = {}
        for model in (self, self.thin_slice_model):
            members = [index for index, m in enumerate(models) if m is model]
            if members:
                own = model._probabilities_of_own_stacks(
                    [stacks[i] for i in members], [grids[i].slice_spacing_mm for i in members]
                )
                results.update(zip(members, own))
        return [results[index] for index in range(len(stacks))]

    def _probabilities_of_own_stacks(
        self, stacks: Sequence[torch.Tensor], spacings_mm: Sequence[float]
    ) -> list[torch.Tensor]:
        """:meth:`probabilities_on_grids` with this model's own network for every stack (slices ``spacings_mm`` apart)."""
        pad = DivisiblePad(k=self.settings.pad_multiple, method="end")
        padded = [torch.as_tensor(pad(stack)).as_subclass(torch.Tensor) for stack in stacks]
        if self.slice_context_mm > 0:
            padded = [
                with_slice_context(stack, spacing_mm=spacing, context_mm=self.slice_context_mm)
                for stack, spacing in zip(padded, spacings_mm)
            ]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, tensor in enumerate(padded):
            groups.setdefault((int(tensor.shape[-2]), int(tensor.shape[-1])), []).append(index)
        results: dict[int, torch.Tensor] = {}
        for members in groups.values():
            slices = torch.cat([padded[index] for index in members]) if len(members) > 1 else padded[members[0]]
            probabilities = self._forward_slices(slices)
            for index, part in zip(members, probabilities.split([padded[i].shape[0] for i in members])):
                rows, cols = stacks[index].shape[-2:]
                results[index] = part[..., :rows, :cols].movedim(1, 0)
        return [results[index] for index in range(len(stacks))]

    def _forward_slices(self, slices: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities ``(n, C, H, W)`` (on the CPU) of padded slices ``(n, H, W)`` (or with their
        neighbours, ``(n, 3, H, W)``), in batches."""
        if self.device.type == "cuda":
            autocast = torch.autocast("cuda", dtype=torch.float16)
        elif self.device.type == "cpu" and self.cpu_bfloat16:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            autocast = nullcontext()
        outputs = []
        for start in range(0, slices.shape[0], self.batch_size):
            batch = slices[start : start + self.batch_size]
            batch = (batch if batch.ndim == 4 else batch[:, None]).to(self.device, non_blocking=True)
            with autocast:
                logits = self.inferer(batch, self.network)
            logits = logits.float()
            if self.background_offset:
                logits[:, 0] += self.background_offset
            outputs.append(torch.softmax(logits, dim=1).cpu())
        return torch.cat(outputs)

    def to_volume_grid(self, probabilities: torch.Tensor, grid: NetworkGrid) -> np.ndarray:
        """Network-grid probabilities ``(C, slices, rows, cols)`` on the source volume's grid ``(C, I, J, K)``.

        With ``slice_sigma_mm`` set, each class is first smoothed by a Gaussian
        across slices (:func:`smooth_across_slices`): each slice is segmented on
        its own, and on thin slices (up to ``slice_sigma_max_spacing_mm`` apart)
        the extent of a structure seen on its neighbours is the better guess of
        where it ends than one slice's taper. Smoothing commutes with the
        in-plane resampling done afterwards. A single slice is left as it is.
        The settings are those of :meth:`model_for` the grid.
        """
        model = self.model_for(grid)
        if model.slice_sigma_mm > 0:
            smoothed = smooth_across_slices(
                probabilities.numpy(),
                sigma_mm=model.slice_sigma_mm,
                spacing_mm=grid.slice_spacing_mm,
                axis=1,
                max_spacing_mm=model.slice_sigma_max_spacing_mm,
            )
            probabilities = torch.as_tensor(smoothed)
        return from_network_grid(probabilities, grid)

    def predict_probabilities(self, volume: Volume) -> np.ndarray:
        """Class probabilities ``(C, I, J, K)`` on ``volume``'s own grid."""
        stack, grid = self.network_input(volume)
        return self.to_volume_grid(self.probabilities_on_grid(stack, grid), grid)

    def predict_fused(self, volumes: Sequence[Volume]) -> np.ndarray:
        """Mean class probabilities of several co-registered volumes (e.g. T1 and T2 on the T1 grid)."""
        if not volumes:
            raise AnalysisError("no image to segment: give a T1 or a T2")
        shapes = {v.shape for v in volumes}
        if len(shapes) != 1:
            raise AnalysisError(f"volumes to fuse must share a grid; got shapes {sorted(shapes)}")
        return fuse_probabilities([self.predict_probabilities(volume) for volume in volumes])


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so mixed precision pays off."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def reweight_background(probabilities: np.ndarray, weight: float) -> np.ndarray:
    """``(C, ...)`` class probabilities with the background (class 0) multiplied by ``weight``, renormalised.

    The same as a :class:`SegmentationModel` built with ``background_weight=weight``
    (a log-weight added to the background logit before the softmax), applied afterwards.
    """
    scaled = np.array(probabilities, dtype=np.float32, copy=True)
    scaled[0] *= weight
    scaled /= np.maximum(scaled.sum(axis=0, keepdims=True), np.finfo(np.float32).tiny)
    return scaled


def smooth_across_slices(
    probabilities: np.ndarray,
    *,
    sigma_mm: float,
    spacing_mm: float,
    axis: int,
    max_spacing_mm: float | None = None,
) -> np.ndarray:
    """Class probabilities smoothed by a Gaussian of ``sigma_mm`` along ``axis`` (slices ``spacing_mm`` apart).

    What :meth:`SegmentationModel.to_volume_grid` applies with the bundle's
    ``slice_sigma_mm``. Returned unchanged when ``sigma_mm`` is 0, when there
    is one slice, or when the slices are further apart than ``max_spacing_mm``.
    The result still sums to 1 over the classes (the filter is linear and its
    weights sum to 1); the edges repeat the last slice.
    """
    too_thick = max_spacing_mm is not None and spacing_mm > max_spacing_mm
    if sigma_mm <= 0 or probabilities.shape[axis] < 2 or too_thick:
        return probabilities
    return ndimage.gaussian_filter1d(probabilities, sigma_mm / spacing_mm, axis=axis, mode="nearest")
