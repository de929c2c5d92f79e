"""Train the orientation network (``modic train orientation``): upright or upside down.

Labels come from flipping: every training picture (:mod:`modic.training.orientation_data`)
gives an upright sample and its copy flipped head to foot. MONAI augmentation
covers what clinical images differ in: front-back mirror (another check's
business), small rotations, scale, shift and field of view, contrast (gamma,
coil bias, intensity gain with saturation as a narrow 8-bit window does)
and noise (the area resize and the affine interpolation blur). Patient-level
cross-validation on the training half gives out-of-fold scores, on which the refusal threshold is chosen: the lowest
candidate above every real upright picture's out-of-fold score (no false
refusal out of fold). The network is then fitted on the whole training half
and written as a MONAI bundle; the held-out half is never read here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modic import __version__, atomic
from modic.bundles import build_network, write_bundle
from modic.orientation.model import upside_down_scores
from modic.settings.build import to_dict
from modic.training.orientation_data import Picture, collect
from modic.training.settings import (
    OrientationDataSettings,
    OrientationTrainingSchedule,
    OrientationTrainSettings,
    load_orientation_train_settings,
)

log = logging.getLogger("modic.train")


def augmentation(*, side: int, size: int, seed: int) -> Any:
    """MONAI transforms from a ``(1, side, side)`` training picture to a ``(1, size, size)`` network input."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandBiasField,
        RandFlip,
        RandGaussianNoise,
        RandScaleIntensity,
        RandSpatialCrop,
        Resize,
        ThresholdIntensity,
    )

    transform = Compose(
        [
            RandFlip(prob=0.5, spatial_axis=1),
            RandAffine(prob=0.9, rotate_range=0.26, scale_range=(0.25, 0.25), translate_range=(0.1 * side, 0.1 * side),
                       padding_mode="zeros"),
            RandSpatialCrop(roi_size=(round(0.75 * side),) * 2, max_roi_size=(side, side), random_size=True),
            Resize(spatial_size=(size, size), mode="area"),
            RandAdjustContrast(prob=0.5, gamma=(0.6, 1.6)),
            RandBiasField(prob=0.3, coeff_range=(0.0, 0.3)),
            RandScaleIntensity(factors=(0.0, 0.8), prob=0.3),
            ThresholdIntensity(threshold=1.0, above=False, cval=1.0),
            RandGaussianNoise(prob=0.3, std=0.03),
        ]
    )
    transform.set_random_state(seed=seed)
    return transform


def training_samples(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each upright picture and its copy flipped head to foot, with labels 0 (upright) and 1 (upside down)."""
    flipped = np.ascontiguousarray(views[:, ::-1])
    return np.concatenate([views, flipped]), np.concatenate([np.zeros(len(views)), np.ones(len(views))]).astype(int)


def fit(views: np.ndarray, settings: OrientationTrainingSchedule, *, size: int, seed: int) -> torch.nn.Module:
    """A fresh network trained on ``views`` ``(N, S, S)`` (upright) and their flipped copies."""
    torch.manual_seed(seed)
    network = build_network(settings.network_def)
    optimiser = torch.optim.AdamW(network.parameters(), lr=float(settings.learning_rate),
                                  weight_decay=float(settings.weight_decay))
    epochs, batch = int(settings.epochs), int(settings.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=float(settings.learning_rate), total_steps=epochs * -(-2 * len(views) // batch)
    )
    pictures, labels = training_samples(views)
    transform = augmentation(side=views.shape[-1], size=size, seed=seed)
    rng = np.random.default_rng(seed)
    loss_function = torch.nn.CrossEntropyLoss()
    network.train()
    for epoch in range(epochs):
        order = rng.permutation(len(pictures))
        total = 0.0
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            inputs = torch.stack([
                torch.as_tensor(transform(pictures[i][None])).as_subclass(torch.Tensor).float() for i in chosen
            ])
            optimiser.zero_grad(set_to_none=True)
            loss = loss_function(network(inputs), torch.as_tensor(labels[chosen]))
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(chosen)
        log.info("epoch %d/%d loss %.4f", epoch + 1, epochs, total / len(order))
    return network.eval()


def network_inputs(views: np.ndarray, *, size: int) -> np.ndarray:
    """Training pictures ``(N, S, S)`` reduced to the network's ``(N, size, size)`` (area averaging)."""
    from monai.transforms import Resize

    resized = Resize(spatial_size=(size, size), mode="area")(torch.from_numpy(np.ascontiguousarray(views)))
    return torch.as_tensor(resized).as_subclass(torch.Tensor).numpy()


def cross_validate(
    pictures: Sequence[Picture], settings: OrientationTrainingSchedule, *, folds: int, size: int, seed: int
) -> np.ndarray:
    """Out-of-fold upside-down score of every picture as given (upright); folds split groups (patients)."""
    groups = np.array([p.group for p in pictures])
    shuffled = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of = {g: i % folds for i, g in enumerate(shuffled)}
    views = np.stack([p.view for p in pictures])
    scores = np.zeros(len(pictures))
    for fold in range(folds):
        test = np.array([fold_of[g] == fold for g in groups])
        network = fit(views[~test], settings, size=size, seed=seed + fold + 1)
        scores[test] = upside_down_scores(network, network_inputs(views[test], size=size))
        log.info("fold %d/%d: %d test pictures", fold + 1, folds, int(test.sum()))
    return scores


def choose_threshold(upright_scores: np.ndarray, candidates: Sequence[float]) -> float:
    """The lowest candidate above every score of a correctly oriented picture (else the highest candidate)."""
    above = [float(c) for c in sorted(candidates) if c > float(np.max(upright_scores, initial=0.0))]
    return above[0] if above else float(max(candidates))


def out_of_fold_figures(pictures: Sequence[Picture], scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Per source: pictures refused as given (false) and flipped pictures caught, at ``threshold``.

    A flipped picture scores ``1 - score`` (the score is symmetric under flips).
    """
    figures: dict[str, Any] = {}
    sources = np.array([p.source for p in pictures])
    for source in sorted(set(sources)):
        chosen = scores[sources == source]
        figures[source] = {
            "pictures": int(len(chosen)),
            "upright_refused": int((chosen >= threshold).sum()),
            "flipped_caught": int((1.0 - chosen >= threshold).sum()),
            "highest_upright_score": round(float(chosen.max()), 4),
        }
    return figures


def cached_pictures(data: OrientationDataSettings, *, size: int, cache: Path, reuse: bool) -> list[Picture]:
    """The training pictures, read once and kept in ``cache`` (an ``.npz``) for later runs.

    The cache records the ``data`` section as plain data (:func:`~modic.settings.build.to_dict`), so a
    cache written from the raw YAML mapping before the settings were typed is still recognised.
    """
    recorded = to_dict(data)
    if reuse and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            if meta["size"] == size and meta["data"] == json.loads(json.dumps(recorded)):
                log.info("reusing %d pictures from %s", len(meta["pictures"]), cache)
                return [Picture(*row, view=view) for row, view in zip(meta["pictures"], stored["views"])]
    pictures = collect(data, part="training", size=size)
    meta = {"size": size, "data": recorded, "pictures": [[p.group, p.source, p.name] for p in pictures]}
    with atomic.temporary_path(cache) as tmp:
        np.savez_compressed(tmp, views=np.stack([p.view for p in pictures]), meta=np.array(json.dumps(meta)))
    return pictures


def train_orientation(
    config_path: str | Path, *, output_dir: str | Path | None = None, export_bundle: str | Path | None = None,
    reuse_pictures: bool = True,
) -> dict[str, Any]:
    """Cross-validate, choose the threshold, fit on the training half and export the bundle (module docstring).

    Raises:
        ConfigError: one line naming the file and the dotted key, for a config that does not check out.
    """
    config = load_orientation_train_settings(config_path)
    seed = int(config.seed)
    out = Path(output_dir or config.output_dir or "runs/modic_orientation")
    out.mkdir(parents=True, exist_ok=True)
    view, settings = config.view, config.training
    torch.set_num_threads(int(settings.threads))
    size, side = int(view.size), int(view.training_size)
    pictures = cached_pictures(config.data, size=side, cache=out / "pictures.npz", reuse=reuse_pictures)
    scores = cross_validate(pictures, settings, folds=int(config.cross_validation.folds), size=size, seed=seed)
    real = np.array([p.source != "synthetic" for p in pictures])
    threshold = choose_threshold(scores[real], config.threshold_candidates)
    summary = {
        "threshold": threshold,
        "out_of_fold": out_of_fold_figures(pictures, scores, threshold),
        "groups": len({p.group for p in pictures}),
        "pictures": len(pictures),
    }
    atomic.write_text(out / "cv_metrics.json", json.dumps(summary, indent=2) + "\n")
    log.info("threshold %.2f; out of fold: %s", threshold, summary["out_of_fold"])
    bundle = export_bundle or (config.export.bundle_dir if config.export else None)
    if bundle:
        network = fit(np.stack([p.view for p in pictures]), settings, size=size, seed=seed)
        export(Path(bundle), network=network, config=config, summary=summary, size=size)
        summary["bundle"] = str(bundle)
    return summary


def export(root: Path, *, network: torch.nn.Module, config: OrientationTrainSettings, summary: Mapping[str, Any],
           size: int) -> None:
    """Write the orientation network as a MONAI bundle."""
    write_bundle(
        root,
        network=network,
        network_def=config.training.network_def,
        settings={"view_size": size, "cross_validated_threshold": summary["threshold"]},
        metadata={
            "version": __version__,
            "task": "Whether a sagittal lumbar spine MR image is upside down (pixels head to foot against its "
                    "geometry), from its middle sagittal slice",
            "training_data": "training half (even positions of the patients sorted by ID) of SPIDER mid-sagittal "
                             "T1/T2 and 3D T2 SPACE (van der Graaf et al., Sci Data 2024, CC BY 4.0) and of "
                             "lumbar_seg (Chu et al. 2015, Zukic et al. 2014, Burian et al. 2019, Menezes-Reis "
                             "et al. 2016); synthetic studies (modic synth)",
            "n_training_pictures": summary["pictures"],
            "n_training_groups": summary["groups"],
            "cross_validation": {"threshold": summary["threshold"], "out_of_fold": summary["out_of_fold"]},
            "intended_use": "Research only. An input check, not a diagnostic model.",
            "network_data_format": {
                "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [size, size],
                                     "channel_def": {"0": "sagittal slice, rows head to foot and columns front "
                                                          "to back by the geometry, scaled to [0, 1]"}}},
                "outputs": {"pred": {"type": "probabilities", "num_channels": 2,
                                     "channel_def": {"0": "upright", "1": "upside down"}}},
            },
        },
    )
