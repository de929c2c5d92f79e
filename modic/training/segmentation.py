"""Train the segmentation network (``modic train seg --config ...``).

Seeded and resumable: ``<output>/last.pt`` holds model, optimiser, scheduler
and epoch, and a rerun continues from it. Every epoch appends to
``<output>/metrics.csv`` (and TensorBoard when installed); every
``validate_every`` epochs the held-out real cases are segmented with the
production inference path and their Dice recorded; the best checkpoint is
exported as a MONAI bundle.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modic import __version__, atomic
from modic.errors import ConfigError, InputError
from modic.progress import progress
from modic.segmentation.bundle import load_bundle, network_input_channels, save_bundle
from modic.segmentation.classes import CLASS_NAMES, N_CLASSES, SegClass
from modic.training.segmentation_data import (
    SegCase,
    extract_slab,
    load_lumbar_seg,
    load_spider_t2space,
    sample_specs,
    synthetic_cases,
)
from modic.segmentation.infer import SegmentationModel
from modic.datasets.lumbar_seg import read_cases_csv
from modic.datasets.spider_t2space import SOURCE as SPIDER_SOURCE
from modic.datasets.spider_t2space import read_patients
from modic.training.losses import MarginalDiceCELoss
from modic.bundles import build_network
from modic.training.settings import SegDataSettings, TrainConfig
from modic.training.transforms import training_transforms

log = logging.getLogger("modic.train")

METRIC_FIELDS = ("epoch", "lr", "train_loss", "val_dice_vertebral_body", "val_dice_disc", "val_score", "seconds")


def seed_everything(seed: int) -> None:
    from monai.utils import set_determinism

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    set_determinism(seed=seed)


def load_cases(config: TrainConfig) -> tuple[list[SegCase], list[SegCase]]:
    """Training and validation cases; validation cases are real and never trained on."""
    data = config.settings.data
    spacing = config.settings.preprocessing.spacing_mm
    folder = data.lumbar_seg
    if folder is None:
        raise ConfigError(
            f"{config.path}: data.lumbar_seg must be a folder path, not {folder!r}; "
            "for synthetic-only training point it at a folder holding only a cases.csv header"
        )
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"training data folder '{root}' not found; set data.lumbar_seg or pass --lumbar-seg DIR")
    available = [c.case for c in read_cases_csv(root)]
    validation = list(data.validation_cases)
    unknown = sorted(set(validation) - set(available))
    if unknown:
        raise ConfigError(f"{config.path}: validation cases {unknown} are not in {root / 'cases.csv'}")
    limit = data.max_training_cases
    training_names = [c for c in available if c not in set(validation)][:limit]
    log.info("loading %d training and %d validation real cases from %s", len(training_names), len(validation), root)
    train = load_lumbar_seg(root, names=training_names, spacing_mm=spacing)
    val = load_lumbar_seg(root, names=validation, spacing_mm=spacing) if validation else []
    train_spider, val_spider = _spider_t2space_cases(config, data, spacing)
    train += train_spider
    val += val_spider
    synthetic = data.synthetic
    if synthetic is not None and synthetic.count > 0:
        seeds = range(synthetic.seed_start, synthetic.seed_start + synthetic.count)
        log.info("generating %d synthetic studies (config %s)", len(seeds), synthetic.config)
        train += synthetic_cases(seeds=list(seeds), config=synthetic.config, spacing_mm=spacing)
    return train, val


def _spider_t2space_cases(
    config: TrainConfig, data: SegDataSettings, spacing: float
) -> tuple[list[SegCase], list[SegCase]]:
    """Training and held-out patients of ``data.spider_t2space`` (none when the key is absent)."""
    folder = data.spider_t2space
    if not folder:
        return [], []
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"training data folder '{root}' not found; set data.spider_t2space in {config.path}")
    held_out = list(data.spider_t2space_validation)
    patients = [p for p in read_patients(root) if p not in set(held_out)]
    log.info("loading %d training and %d validation spider_t2space patients from %s", len(patients), len(held_out), root)
    return (
        load_spider_t2space(root, names=patients, spacing_mm=spacing),
        load_spider_t2space(root, names=held_out, spacing_mm=spacing),
    )


def case_weights(cases: Sequence[SegCase], shares: Mapping[str, float]) -> list[float]:
    """Per-case sampling weight so each source gets its configured share of samples."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.source] = counts.get(case.source, 0) + 1
    missing = sorted(set(counts) - set(shares))
    if missing:
        raise ConfigError(f"data.source_share has no share for sources {missing}; sources present: {sorted(counts)}")
    return [float(shares[c.source]) / counts[c.source] for c in cases]


def validation_dice(model: SegmentationModel, cases: Sequence[SegCase]) -> dict[str, float]:
    """Mean Dice of each labelled structure over validation cases (3D, on the network grid)."""
    scores: dict[str, list[float]] = {"vertebral_body": [], "disc": []}
    for case in cases:
        probabilities = model.predict_probabilities(case.as_volume())
        predicted = probabilities.argmax(axis=0)
        if case.labelled[SegClass.DISC]:
            scores["disc"].append(_dice(predicted == SegClass.DISC, case.label == SegClass.DISC))
        if case.labelled[SegClass.VERTEBRAL_BODY]:
            bone = [SegClass.VERTEBRAL_BODY, SegClass.S1] if case.labelled[SegClass.S1] else [SegClass.VERTEBRAL_BODY]
            scores["vertebral_body"].append(_dice(np.isin(predicted, bone), np.isin(case.label, bone)))
    result = {f"val_dice_{k}": float(np.mean(v)) if v else float("nan") for k, v in scores.items()}
    present = [v for v in result.values() if not math.isnan(v)]
    result["val_score"] = float(np.mean(present)) if present else float("nan")
    return result


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return float(2.0 * np.logical_and(prediction, truth).sum() / total) if total else 1.0


def train(
    config: TrainConfig,
    *,
    output_dir: str | Path | None = None,
    device: str = "auto",
    export_bundle: str | Path | None = None,
) -> dict[str, Any]:
    """Run (or resume) training; returns the best validation metrics and the exported bundle path."""
    from monai.data import DataLoader, Dataset

    training = config.settings.training
    seed = config.settings.seed
    seed_everything(seed)
    out = Path(output_dir or config.settings.output_dir or f"runs/{config.name}")
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    settings = config.settings.preprocessing

    train_cases, val_cases = load_cases(config)
    data = config.settings.data
    weights = case_weights(train_cases, data.source_share)
    transforms = training_transforms(
        config.settings.augmentation, lower=settings.percentile_lower, upper=settings.percentile_upper
    )
    transforms.set_random_state(seed=seed)

    network = build_network(config.settings.network_def).to(dev)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=float(training.learning_rate), weight_decay=float(training.weight_decay)
    )
    epochs = training.epochs
    warmup = training.warmup_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda e: min(1.0, (e + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs)),
    )
    loss = config.settings.loss
    loss_fn = MarginalDiceCELoss(lambda_dice=loss.lambda_dice, lambda_ce=loss.lambda_ce) if loss else MarginalDiceCELoss()
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and training.amp)

    start_epoch, best = _resume(out / "last.pt", config, network, optimiser, scheduler)
    if start_epoch == 0 and training.initial_weights:
        _load_initial_weights(network, config)
    metrics_path = out / "metrics.csv"
    writer = _tensorboard(out)
    context = float(data.slice_context_mm)
    iterations = training.iterations_per_epoch
    batch_size = training.batch_size

    for epoch in range(start_epoch, epochs):
        started = time.time()
        rng = np.random.default_rng([seed, epoch])
        # Torch's global state (dropout, and the seed MONAI's DataLoader gives the
        # augmentations) derives from seed and epoch: epochs differ, and a resumed
        # run replays exactly what an uninterrupted one would have done.
        torch.manual_seed(int(np.random.default_rng([seed, epoch, 1]).integers(2**62)))
        specs = sample_specs(
            train_cases,
            n=iterations * batch_size,
            rng=rng,
            case_weights=weights,
            foreground_fraction=float(data.foreground_fraction),
            max_thickness=data.max_slab_thickness,
        )
        dataset = Dataset(
            [extract_slab(train_cases[s.case], s, slice_context_mm=context) for s in specs], transform=transforms
        )
        loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=training.num_workers,
            persistent_workers=False,
        )
        network.train()
        losses = []
        for batch in progress(loader, desc=f"epoch {epoch + 1}/{epochs}", unit="batch", transient=True):
            images = batch["image"].to(dev)
            labels = batch["label"].to(dev)
            labelled = batch["labelled"].to(dev)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.float16, enabled=scaler.is_enabled()):
                logits = network(images)
            loss = loss_fn(logits.float(), labels, labelled)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            losses.append(float(loss.detach()))
        scheduler.step()

        row: dict[str, Any] = {"epoch": epoch + 1, "lr": optimiser.param_groups[0]["lr"], "train_loss": float(np.mean(losses))}
        last_epoch = epoch + 1 == epochs
        if val_cases and ((epoch + 1) % training.validate_every == 0 or last_epoch):
            model = SegmentationModel(
                network, settings=settings, device=dev, batch_size=batch_size, slice_context_mm=context
            )
            row.update(validation_dice(model, val_cases))
            network.train()
            if row["val_score"] > best.get("val_score", -1.0):
                best = {k: row[k] for k in ("epoch", "val_dice_vertebral_body", "val_dice_disc", "val_score")}
                _save_checkpoint(out / "best.pt", config, network, optimiser, scheduler, epoch + 1, best)
        elif not val_cases:
            best = {"epoch": epoch + 1}
            _save_checkpoint(out / "best.pt", config, network, optimiser, scheduler, epoch + 1, best)
        row["seconds"] = round(time.time() - started, 1)
        _append_metrics(metrics_path, row)
        if writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float) and not math.isnan(value):
                    writer.add_scalar(key, value, epoch + 1)
        _save_checkpoint(out / "last.pt", config, network, optimiser, scheduler, epoch + 1, best)
        log.info("epoch %s: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))

    if writer is not None:
        writer.close()
    bundle_path = export_bundle or (config.settings.export.bundle_dir if config.settings.export else None)
    result: dict[str, Any] = {"best": best, "output_dir": str(out)}
    if bundle_path:
        checkpoint = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
        network.load_state_dict(checkpoint["model"])
        save_bundle(
            bundle_path,
            network=network,
            network_def=config.settings.network_def,
            settings=settings,
            metadata=bundle_metadata(config, best, train_cases, val_cases),
            slice_context_mm=context,
        )
        result["bundle"] = str(bundle_path)
    return result


def bundle_metadata(
    config: TrainConfig, best: Mapping[str, Any], train_cases: Sequence[SegCase], val_cases: Sequence[SegCase]
) -> dict[str, Any]:
    """MONAI bundle ``metadata.json`` with data provenance and measured validation metrics."""
    import monai

    settings = config.settings.preprocessing
    context = config.settings.data.slice_context_mm
    sources: dict[str, int] = {}
    for case in train_cases:
        sources[case.source] = sources.get(case.source, 0) + 1
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": __version__,
        "changelog": {__version__: "trained with modic train seg"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {},
        "task": "Sagittal lumbar MRI segmentation of vertebral bodies, intervertebral discs and the S1 body",
        "description": "2D residual UNet applied slice by slice to sagittal T1, T2 or TIRM images at "
        f"{settings.spacing_mm} mm in-plane"
        + (f", each slice with its neighbours {context:g} mm to either side" if context > 0 else "")
        + "; research use only, not a medical device",
        "authors": "modic developers",
        "copyright": "Copyright (c) modic developers",
        "intended_use": "Research only. Not for diagnosis or treatment decisions.",
        "data_source": data_source(sources),
        "training_cases_per_source": sources,
        "validation_cases": [c.name for c in val_cases],
        "validation_metrics": dict(best),
        "training_config_fingerprint": config.fingerprint(),
        "fine_tuned_from": config.settings.training.initial_weights,
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "modality": "MR",
                    "num_channels": network_input_channels(context),
                    "spatial_shape": ["16*n", "16*n"],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": _input_channels(context),
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": N_CLASSES,
                    "spatial_shape": ["16*n", "16*n"],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {str(k): v for k, v in CLASS_NAMES.items()},
                }
            },
        },
    }


def _input_channels(context_mm: float) -> dict[str, str]:
    """``channel_def`` of the network input: one slice, or a slice between its neighbours."""
    slice_ = "sagittal MR slice (T1, T2 or TIRM), percentile-scaled"
    if context_mm <= 0:
        return {"0": slice_}
    return {
        "0": f"the slice {context_mm:g} mm to the left (lower slice index), percentile-scaled",
        "1": slice_,
        "2": f"the slice {context_mm:g} mm to the right (higher slice index), percentile-scaled",
    }


def data_source(sources: Mapping[str, int]) -> str:
    """The citation line of ``metadata.json`` for the sources a bundle was trained on."""
    parts = []
    if set(sources) - {SPIDER_SOURCE, "synthetic"}:
        parts.append(
            "lumbar_seg collection (SpineWeb lumbar MR of Chu et al. 2015 and Zukic et al. 2014, "
            "MyoSegmenTUM spine of Burian et al. 2019, IVD set of Menezes-Reis et al. 2016)"
        )
    if SPIDER_SOURCE in sources:
        parts.append("SPIDER 3D T2 SPACE with manual masks (van der Graaf et al., Sci Data 2024; CC BY 4.0)")
    if "synthetic" in sources:
        parts.append("modic synthetic studies")
    return "; ".join(parts)


def _load_initial_weights(network: torch.nn.Module, config: TrainConfig) -> None:
    """Start from a bundle's weights to fine-tune it.

    ``training.initial_weights`` names a shipped bundle (``spine_seg``) or a bundle folder.

    The bundle's network must be the one ``network_def`` builds and its
    preprocessing the config's, or the weights would be learned for other inputs.
    A one-channel network starts a network that reads each slice with its
    neighbours (``data.slice_context_mm``) as a slab reader (:func:`widen_input_channels`).
    """
    path = config.settings.training.initial_weights
    bundle = load_bundle(path)
    if bundle.settings != config.settings.preprocessing:
        raise ConfigError(
            f"{config.path}: training.initial_weights '{path}' was trained with preprocessing {bundle.settings}, "
            f"not the config's {config.settings.preprocessing}; fine-tune with the bundle's settings"
        )
    state = bundle.network.state_dict()
    if bundle.slice_context_mm == 0 and config.settings.data.slice_context_mm > 0:
        state = widen_input_channels(state, network.state_dict())
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ConfigError(
            f"{config.path}: training.initial_weights '{path}' does not fit network_def "
            f"({' '.join(str(exc).split())[:200]}); use the bundle's network definition"
        ) from None
    log.info("starting from the weights of %s", bundle.path)


def widen_input_channels(
    state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """One-channel convolution weights of ``state`` spread over the three input channels of ``target``'s shapes.

    Every tensor whose shape differs from ``target``'s only by 1 -> 3 input channels
    (axis 1 of a convolution weight) becomes 1/4, 1/2 and 1/4 of its weights on the
    slice before, the slice itself and the slice after: the widened network starts as
    the one-slice network reading a slab of the three, as it was trained to read slabs,
    with the neighbours' weights large enough for training to shape them. (Zero weights
    for the neighbours would start from the exact one-slice output, but training left
    them at a few per cent of the centre's.) Every other tensor is kept as it is.
    """
    widened = dict(state)
    for key, value in state.items():
        wanted = target.get(key)
        if wanted is None or wanted.shape == value.shape:
            continue
        if value.ndim >= 3 and value.shape[1] == 1 and wanted.shape[1] == 3 and (
            value.shape[:1] + value.shape[2:] == wanted.shape[:1] + wanted.shape[2:]
        ):
            widened[key] = torch.cat([0.25 * value, 0.5 * value, 0.25 * value], dim=1)
    return widened


def _resume(
    path: Path, config: TrainConfig, network: torch.nn.Module, optimiser: Any, scheduler: Any
) -> tuple[int, dict[str, Any]]:
    if not path.is_file():
        return 0, {}
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("config_fingerprint") != config.fingerprint():
        raise ConfigError(
            f"checkpoint '{path}' was written with a different config; use a new --output folder or delete it"
        )
    network.load_state_dict(checkpoint["model"])
    optimiser.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    # The saved learning rate came from the schedule of the run that wrote the
    # checkpoint; a changed schedule length must apply from the first resumed epoch.
    for group, base, factor in zip(optimiser.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)
    log.info("resuming from %s at epoch %d", path, checkpoint["epoch"])
    return int(checkpoint["epoch"]), dict(checkpoint.get("best", {}))


def _save_checkpoint(
    path: Path, config: TrainConfig, network: torch.nn.Module, optimiser: Any, scheduler: Any, epoch: int,
    best: Mapping[str, Any],
) -> None:
    with atomic.temporary_path(path) as tmp:
        torch.save(
            {
                "epoch": epoch,
                "model": network.state_dict(),
                "optimizer": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best": dict(best),
                "config_fingerprint": config.fingerprint(),
            },
            tmp,
        )


def _append_metrics(path: Path, row: Mapping[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})


def _tensorboard(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))
