"""Cross-validation and training of the patch classifier (part of ``modic train grade``).

Each SPIDER endplate contributes its spine-aligned T1/T2 patch; the two
endplates of a level form a bag labelled "changed" when radiologists graded
the level Modic 1-3 (see :func:`level_bags`). Folds split patients
exactly as for the feature models. At test time an endplate is changed when
the network's probability reaches the threshold (or a strong type 1/3 signal
pattern is kept, see :mod:`modic.classification.patch_model`); its type is
its dominant signal pattern; a level takes its most significant endplate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from modic.bundles import build_network
from modic.training.settings import PatchModelSettings

log = logging.getLogger("modic.train")

PATTERN_SLICE = slice(12, 15)
"""Positions of the type 1/2/3 pattern fractions in the feature vector (see FEATURE_NAMES)."""


def augmentation(seed: int) -> Any:
    from monai.transforms import Compose, RandAffine, RandFlip, RandGaussianNoise, RandScaleIntensity

    transform = Compose(
        [
            RandAffine(prob=0.7, rotate_range=0.15, translate_range=(3, 3), scale_range=(0.1, 0.1), padding_mode="zeros"),
            RandFlip(prob=0.5, spatial_axis=1),
            RandScaleIntensity(factors=0.15, prob=0.5),
            RandGaussianNoise(prob=0.3, std=0.05),
        ]
    )
    transform.set_random_state(seed=seed)
    return transform


def level_bags(samples: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Bag index of every endplate sample (one bag per patient level) and each bag's changed label.

    Radiologists grade a level, not an endplate: a changed level may have only
    one changed endplate. Training on bags (multiple-instance learning, the
    level is changed when its most changed endplate is) avoids teaching the
    network that the unchanged partner of a changed endplate is changed.
    """
    index: dict[tuple[str, str], int] = {}
    bags = np.array([index.setdefault((s.group, s.level), len(index)) for s in samples], dtype=int)
    labels = np.zeros(len(index), dtype=int)
    for sample, bag in zip(samples, bags):
        labels[bag] = max(labels[bag], int(sample.target > 0))
    return bags, labels


def fit_network(
    patches: np.ndarray, bags: np.ndarray, bag_labels: np.ndarray, settings: PatchModelSettings, *, seed: int
) -> torch.nn.Module:
    """Train a fresh network on ``patches`` ``(N, C, H, W)`` grouped into ``bags`` with binary ``bag_labels``.

    A bag's probability is the highest of its patches' probabilities; the loss
    is class-balanced binary cross-entropy on bags.
    """
    torch.manual_seed(seed)
    network = build_network(settings.network_def)
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=float(settings.learning_rate), weight_decay=float(settings.weight_decay)
    )
    present = np.unique(bags)
    counts = np.bincount(bag_labels[present], minlength=2).astype(float)
    class_weight = counts.sum() / np.maximum(2 * counts, 1.0)
    members = {bag: np.flatnonzero(bags == bag) for bag in present}
    transform = augmentation(seed)
    rng = np.random.default_rng(seed)
    batch = settings.batch_size
    network.train()
    for _ in range(settings.epochs):
        order = rng.permutation(present)
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            index = np.concatenate([members[b] for b in chosen])
            owner = torch.as_tensor(np.concatenate([np.full(len(members[b]), i) for i, b in enumerate(chosen)]))
            images = torch.stack([torch.as_tensor(transform(patches[i])).as_subclass(torch.Tensor) for i in index])
            optimiser.zero_grad(set_to_none=True)
            changed = torch.softmax(network(images.float()), dim=1)[:, 1]
            bag_probability = torch.zeros(len(chosen)).scatter_reduce(0, owner, changed, reduce="amax", include_self=False)
            target = torch.as_tensor(bag_labels[chosen], dtype=torch.float32)
            weight = torch.as_tensor(class_weight[bag_labels[chosen]], dtype=torch.float32)
            loss = torch.nn.functional.binary_cross_entropy(bag_probability.clamp(1e-6, 1 - 1e-6), target, weight=weight)
            loss.backward()
            optimiser.step()
    return network.eval()


@torch.no_grad()
def changed_probability(network: torch.nn.Module, patches: np.ndarray) -> np.ndarray:
    if not len(patches):
        return np.zeros(0)
    logits = network(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)))
    return torch.softmax(logits.float(), dim=1)[:, 1].numpy()


def endplate_types(probabilities: np.ndarray, features: np.ndarray, settings: PatchModelSettings) -> np.ndarray:
    """Predicted Modic type per endplate from the network's probability and the pattern fractions."""
    threshold = float(settings.threshold)
    keep_types = list(settings.rules.keep_types)
    keep_fraction = float(settings.rules.keep_fraction)
    fractions = np.nan_to_num(features[:, PATTERN_SLICE], nan=0.0)
    types = np.zeros(len(probabilities), dtype=int)
    for i, (p, f) in enumerate(zip(probabilities, fractions)):
        kept = [t for t in keep_types if f[t - 1] >= keep_fraction]
        if p >= threshold:
            types[i] = int(np.argmax(f)) + 1 if f.max() > 0 else 2
        elif kept:
            types[i] = max(kept, key=lambda t: f[t - 1])
    return types


def cross_validate_patches(
    patches: np.ndarray,
    samples: Sequence[Any],
    settings: PatchModelSettings,
    *,
    folds: int,
    repeats: int,
    seed: int,
    evaluate: Any,
) -> tuple[dict[str, Any], np.ndarray]:
    """Patient-level CV of the patch network; returns the summary and the first repeat's probabilities."""
    groups = np.array([s.group for s in samples])
    bags, bag_labels = level_bags(samples)
    features = np.array([s.features for s in samples])
    runs = []
    first = np.zeros(len(samples))
    for repeat in range(repeats):
        shuffled = np.random.default_rng([seed, repeat]).permutation(np.unique(groups))
        fold_of = {g: i % folds for i, g in enumerate(shuffled)}
        probabilities = np.zeros(len(samples))
        for fold in range(folds):
            test = np.array([fold_of[g] == fold for g in groups])
            network = fit_network(
                patches[~test], bags[~test], bag_labels, settings, seed=seed + 100 * repeat + fold
            )
            probabilities[test] = changed_probability(network, patches[test])
            log.info("patch CV repeat %d fold %d done", repeat + 1, fold + 1)
        if repeat == 0:
            first = probabilities
        runs.append(evaluate(endplate_types(probabilities, features, settings)))
    return runs, first
