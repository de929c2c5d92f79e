"""Segmentation training inputs: the partial-label loss, lumbar_seg cases, slab sampling and augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.segmentation import FAKE_CASES, SMOKE_CONFIG, write_lumbar_seg

from modic.errors import ConfigError, InputError
from modic.segmentation.classes import N_CLASSES, SegClass
from modic.datasets.lumbar_seg import LumbarSegCase, read_cases_csv, semantic_from_instances
from modic.training.segmentation_data import SegCase, extract_slab, load_lumbar_seg, sample_specs, synthetic_cases
from modic.training.losses import MarginalDiceCELoss
from modic.training.segmentation import case_weights
from modic.training.settings import load_train_config
from modic.training.transforms import training_transforms

BG, VB, DISC, S1 = (int(c) for c in SegClass)

# --- MarginalDiceCELoss -------------------------------------------------------------------------------------------


def _scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1x16x16 label map with a vertebral body, and a mask of a disc-shaped region that the label calls 0."""
    target = torch.zeros(1, 1, 16, 16, dtype=torch.long)
    target[0, 0, 2:7, 3:13] = VB
    disc_region = torch.zeros(16, 16, dtype=torch.bool)
    disc_region[8:11, 3:13] = True
    return target, disc_region


def _confident_logits(classes: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    """Logits ``(1, C, H, W)`` that put almost all probability on ``classes`` ``(H, W)``."""
    return scale * torch.nn.functional.one_hot(classes, N_CLASSES).movedim(-1, 0)[None].float()


def _labelled(*classes: int) -> torch.Tensor:
    mask = torch.zeros(1, N_CLASSES, dtype=torch.bool)
    mask[0, [BG, *classes]] = True
    return mask


def test_loss_is_low_for_a_perfect_prediction_and_high_for_a_wrong_one() -> None:
    loss_fn = MarginalDiceCELoss()
    target, _ = _scene()
    labelled = _labelled(VB)
    perfect = loss_fn(_confident_logits(target[0, 0]), target, labelled)
    all_background = loss_fn(_confident_logits(torch.zeros(16, 16, dtype=torch.long)), target, labelled)
    swapped = target[0, 0].clone()
    swapped[swapped == VB] = S1  # right place, wrong class (S1 counts as unlabelled here, i.e. background)
    wrong_class = loss_fn(_confident_logits(swapped), target, labelled)
    assert float(perfect) < 0.01
    assert float(all_background) > 1.0
    assert float(wrong_class) > 1.0


def test_predicting_an_unlabelled_structure_is_not_penalised() -> None:
    """Discs predicted where a vertebral-body-only label says 0 cost nothing more than background there.

    When the same volume's discs are labelled, the same prediction is an error. Predicting a *labelled*
    class (vertebral body) in that region is an error either way.
    """
    loss_fn = MarginalDiceCELoss()
    target, disc_region = _scene()
    correct = target[0, 0].clone()
    with_discs = correct.clone()
    with_discs[disc_region] = DISC
    with_bodies = correct.clone()
    with_bodies[disc_region] = VB

    def losses(labelled: torch.Tensor) -> tuple[float, float, float]:
        return tuple(float(loss_fn(_confident_logits(m), target, labelled)) for m in (correct, with_discs, with_bodies))

    base, discs, bodies = losses(_labelled(VB))
    assert discs == pytest.approx(base, abs=1e-6)
    assert bodies > base + 0.1

    base, discs, _ = losses(_labelled(VB, DISC))
    assert discs > base + 0.1


def test_loss_ignores_how_background_probability_is_split_with_unlabelled_classes() -> None:
    """For arbitrary logits, swapping the background and disc channels leaves the loss unchanged exactly
    when discs are unlabelled (their probability is merged into background)."""
    loss_fn = MarginalDiceCELoss()
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, N_CLASSES, 12, 12, generator=generator)
    logits[:, DISC] += 3.0  # mostly "disc": swapping with background changes a lot where discs count
    target = torch.zeros(2, 1, 12, 12, dtype=torch.long)
    target[:, 0, 3:8, 2:10] = VB
    swapped = logits[:, [DISC, VB, BG, S1]]
    vb_only = torch.tensor([[True, True, False, False]] * 2)
    vb_and_disc = torch.tensor([[True, True, True, False]] * 2)
    assert float(loss_fn(swapped, target, vb_only)) == pytest.approx(float(loss_fn(logits, target, vb_only)), abs=1e-5)
    assert float(loss_fn(logits, target, vb_and_disc)) > float(loss_fn(swapped, target, vb_and_disc)) + 0.5


def test_loss_labelled_mask_is_per_sample() -> None:
    """In a batch of a vertebral-body case and a disc case, each sample's own unlabelled class is free."""
    loss_fn = MarginalDiceCELoss()
    target, disc_region = _scene()
    disc_target = torch.zeros_like(target)
    disc_target[0, 0][disc_region] = DISC
    targets = torch.cat([target, disc_target])
    labelled = torch.cat([_labelled(VB), _labelled(DISC)])
    # Both samples show the full anatomy (bodies and discs): each is right about its labelled class.
    anatomy = target[0, 0].clone()
    anatomy[disc_region] = DISC
    full = torch.cat([_confident_logits(anatomy)] * 2)
    assert float(loss_fn(full, targets, labelled)) < 0.01
    # Labelling both samples as vertebral-body cases makes the second sample's discs wrong.
    assert float(loss_fn(full, targets, torch.cat([_labelled(VB)] * 2))) > 0.5


def test_loss_gradient_is_finite_and_flows_to_every_class() -> None:
    loss_fn = MarginalDiceCELoss(lambda_dice=1.0, lambda_ce=0.5)
    target, _ = _scene()
    extreme = _confident_logits(target[0, 0], scale=200.0)  # saturated softmax: log must stay finite
    for logits in (torch.randn(1, N_CLASSES, 16, 16), extreme):
        logits = logits.clone().requires_grad_(True)
        loss = loss_fn(logits, target, _labelled(VB))
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(logits.grad).all()
    random_logits = torch.randn(1, N_CLASSES, 16, 16, requires_grad=True)
    loss_fn(random_logits, target, _labelled(VB)).backward()
    assert (random_logits.grad.abs().sum(dim=(0, 2, 3)) > 0).all()


# --- lumbar_seg cases ---------------------------------------------------------------------------------------------


def test_semantic_from_instances_vertebral_bodies_with_s1() -> None:
    instances = np.array([[0, 1, 1], [2, 3, 0], [4, 0, 2]], dtype=np.int32)
    semantic, labelled = semantic_from_instances(instances, LumbarSegCase("c", "VB1", "vertebral_body", ("S1", "L5")))
    np.testing.assert_array_equal(semantic, [[BG, S1, S1], [VB, VB, BG], [VB, BG, VB]])
    assert semantic.dtype == np.uint8
    np.testing.assert_array_equal(labelled, [True, True, False, True])


def test_semantic_from_instances_vertebral_bodies_without_s1() -> None:
    """When the lowest labelled body is L5, label 1 is an ordinary body and S1 stays unlabelled."""
    instances = np.array([[0, 1], [2, 3]], dtype=np.int32)
    semantic, labelled = semantic_from_instances(instances, LumbarSegCase("c", "VB3", "vertebral_body", ("L5", "L4")))
    np.testing.assert_array_equal(semantic, [[BG, VB], [VB, VB]])
    np.testing.assert_array_equal(labelled, [True, True, False, False])


def test_semantic_from_instances_discs() -> None:
    instances = np.array([[[0, 1], [2, 0]], [[5, 0], [0, 1]]], dtype=np.int32)
    semantic, labelled = semantic_from_instances(instances, LumbarSegCase("c", "IVD", "disc", ("L5-S1", "L4-L5")))
    np.testing.assert_array_equal(semantic, [[[BG, DISC], [DISC, BG]], [[DISC, BG], [BG, DISC]]])
    np.testing.assert_array_equal(labelled, [True, False, True, False])


def test_read_cases_csv_rejects_an_unknown_structure(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text("case,source_set,structure,levels_caudal_first\nx1,VB1,ribs,S1;L5\n")
    with pytest.raises(InputError, match="ribs"):
        read_cases_csv(tmp_path)
    with pytest.raises(InputError, match="cases.csv"):
        read_cases_csv(tmp_path / "missing")


def test_load_lumbar_seg_maps_labels_on_the_network_grid(tmp_path: Path) -> None:
    root = write_lumbar_seg(tmp_path / "lumbar_seg")
    cases = {case.name: case for case in load_lumbar_seg(root, spacing_mm=2.0)}
    assert set(cases) == set(FAKE_CASES)
    for case in cases.values():
        assert case.image.shape == case.label.shape
        assert case.image.shape[0] == 10  # the slice axis keeps its native positions
        assert case.image.dtype == np.float32 and case.label.dtype == np.uint8
    assert set(np.unique(cases["vb1_fake"].label)) == {BG, VB, S1}
    np.testing.assert_array_equal(cases["vb1_fake"].labelled, [True, True, False, True])
    assert set(np.unique(cases["vb3_fake"].label)) == {BG, VB}
    assert set(np.unique(cases["ivd_fake"].label)) == {BG, DISC}
    np.testing.assert_array_equal(cases["ivd_fake"].labelled, [True, False, True, False])
    # Rows run superior -> inferior: the S1 body (instance 1, the lowest) lies below the other bodies.
    s1_rows = np.nonzero(cases["vb1_fake"].label == S1)[1]
    vb_rows = np.nonzero(cases["vb1_fake"].label == VB)[1]
    assert s1_rows.min() > vb_rows.max()
    with pytest.raises(InputError, match="nope"):
        load_lumbar_seg(root, names=["vb1_fake", "nope"], spacing_mm=2.0)


def test_synthetic_cases_are_fully_labelled_t1_and_t2() -> None:
    cases = synthetic_cases(seeds=[4], config="tiny", spacing_mm=2.0)
    assert [c.name for c in cases] == ["synth4_t1", "synth4_t2"]
    for case in cases:
        assert case.source == "synthetic"
        assert case.labelled.all()
        assert case.image.shape == case.label.shape
        assert {BG, VB, DISC} <= set(np.unique(case.label)) <= {BG, VB, DISC, S1}
        assert case.foreground_slices.size > 0


# --- sampling -----------------------------------------------------------------------------------------------------


def _toy_case(name: str, source: str, foreground: list[int], n_slices: int = 12) -> SegCase:
    image = np.arange(n_slices, dtype=np.float32)[:, None, None] * np.ones((1, 8, 8), dtype=np.float32)
    label = np.zeros((n_slices, 8, 8), dtype=np.uint8)
    label[foreground, 2:5, 2:5] = VB
    labelled = np.array([True, True, False, False])
    return SegCase(name, image, label, labelled, source, np.eye(4))


def test_sample_specs_is_deterministic_for_a_fixed_rng() -> None:
    cases = [_toy_case("a", "VB1", [3, 4]), _toy_case("b", "IVD", [7])]
    kwargs = dict(n=50, case_weights=[1.0, 1.0], foreground_fraction=0.5, max_thickness=3)
    first = sample_specs(cases, rng=np.random.default_rng([7, 2]), **kwargs)
    again = sample_specs(cases, rng=np.random.default_rng([7, 2]), **kwargs)
    other = sample_specs(cases, rng=np.random.default_rng([7, 3]), **kwargs)
    assert first == again
    assert first != other
    assert len(first) == 50
    assert {s.case for s in first} == {0, 1}
    assert all(1 <= s.thickness <= 3 for s in first)
    assert all(0 <= s.centre < 12 for s in first)


def test_sample_specs_follows_weights_and_foreground_fraction() -> None:
    cases = [_toy_case("a", "VB1", [3, 4]), _toy_case("b", "IVD", [7])]
    specs = sample_specs(
        cases, n=200, rng=np.random.default_rng(0), case_weights=[0.0, 2.0], foreground_fraction=1.0, max_thickness=1
    )
    assert {s.case for s in specs} == {1}
    assert {s.centre for s in specs} == {7}
    assert {s.thickness for s in specs} == {1}


def test_extract_slab_averages_adjacent_slices_and_keeps_the_centre_label() -> None:
    from modic.training.segmentation_data import SlabSpec

    case = _toy_case("a", "VB1", [5])
    sample = extract_slab(case, SlabSpec(case=0, centre=5, thickness=3))
    assert sample["image"].shape == (1, 8, 8) and sample["label"].shape == (1, 8, 8)
    assert float(sample["image"][0, 0, 0]) == pytest.approx(5.0)  # mean of slices 4, 5, 6
    assert int(sample["label"].max()) == VB
    np.testing.assert_array_equal(sample["labelled"].numpy(), case.labelled)
    edge = extract_slab(case, SlabSpec(case=0, centre=0, thickness=3))
    assert float(edge["image"][0, 0, 0]) == pytest.approx(0.5)  # slices 0 and 1 (no slice -1)
    assert int(edge["label"].max()) == BG


def test_case_weights_give_each_source_its_share() -> None:
    cases = [_toy_case("a", "VB1", [1]), _toy_case("b", "synthetic", [1]), _toy_case("c", "synthetic", [1])]
    weights = case_weights(cases, {"VB1": 0.5, "synthetic": 0.5, "IVD": 0.3})
    assert weights == pytest.approx([0.5, 0.25, 0.25])
    with pytest.raises(ConfigError, match="synthetic"):
        case_weights(cases, {"VB1": 1.0})


# --- augmentation -------------------------------------------------------------------------------------------------


def test_training_transforms_crop_to_size_and_keep_labels_discrete() -> None:
    aug = load_train_config(SMOKE_CONFIG).settings.augmentation
    transforms = training_transforms(aug, lower=0.5, upper=99.5)
    transforms.set_random_state(seed=0)
    case = _toy_case("a", "VB1", [5], n_slices=8)
    image = np.random.default_rng(0).normal(200.0, 50.0, (1, 50, 70)).astype(np.float32)
    label = np.zeros((1, 50, 70), dtype=np.uint8)
    label[0, 10:30, 20:40] = VB
    label[0, 32:36, 20:40] = DISC
    for _ in range(5):
        out = transforms({"image": torch.from_numpy(image), "label": torch.from_numpy(label),
                          "labelled": torch.from_numpy(case.labelled)})
        out = out[0] if isinstance(out, list) else out
        crop = aug.crop_size
        assert tuple(out["image"].shape) == (1, crop, crop)
        assert tuple(out["label"].shape) == (1, crop, crop)
        assert set(np.unique(np.asarray(out["label"]))) <= {BG, VB, DISC}
        assert np.isfinite(np.asarray(out["image"])).all()
