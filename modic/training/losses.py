"""Loss for partially labelled data.

Each real training volume labels only one structure (vertebral bodies or
discs); the other is unlabelled, not background. Following the marginal loss
of Shi et al. (Med Image Anal 2021, "Marginal loss and exclusion loss for
partially supervised multi-organ segmentation"), the predicted probabilities
of a sample's unlabelled classes are added to its background probability
before Dice and cross-entropy are computed, so predicting an unlabelled
structure where the label says "background" is not penalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss


class MarginalDiceCELoss(torch.nn.Module):
    """Dice + cross-entropy on probabilities with unlabelled classes merged into background.

    Args:
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
    """

    def __init__(self, *, lambda_dice: float = 1.0, lambda_ce: float = 1.0) -> None:
        super().__init__()
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce
        self.dice = DiceLoss(include_background=False, softmax=False, reduction="none", batch=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """
        Args:
            logits: ``(B, C, *spatial)`` raw network outputs.
            target: ``(B, 1, *spatial)`` integer labels; only labelled classes and 0 occur.
            labelled: ``(B, C)`` bool, which classes each sample's label map annotates
                (channel 0, background, is always True).
        """
        n_classes = logits.shape[1]
        labelled = labelled.bool().clone()
        labelled[:, 0] = True
        probs = torch.softmax(logits.float(), dim=1)
        unlabelled = (~labelled).float().view(*labelled.shape, *([1] * (probs.ndim - 2)))
        merged = probs * labelled.float().view_as(unlabelled)
        merged[:, :1] = merged[:, :1] + (probs * unlabelled).sum(dim=1, keepdim=True)

        target_index = target[:, 0].long()
        ce = F.nll_loss(torch.log(merged.clamp_min(1e-7)), target_index)

        one_hot = F.one_hot(target_index, n_classes).movedim(-1, 1).float()
        dice_per_class = self.dice(merged, one_hot).reshape(probs.shape[0], n_classes - 1)
        weight = labelled[:, 1:].float()
        dice = (dice_per_class * weight).sum() / weight.sum().clamp_min(1.0)
        return self.lambda_dice * dice + self.lambda_ce * ce
