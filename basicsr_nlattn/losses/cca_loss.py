"""CCLNN's losses on the channel weights of Channel Contrastive Attention: contrastive (Eq. 3-4, 6) and the
L1 sparsity of the TSparse ablation (Eq. 7-8).

Paper: Channel Contrastive Attention-based Local-Nonlocal Mutual block for Super-Resolution (IEICE 2024).
"""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.ccln import ChannelContrastiveAttention
from basicsr_nlattn.losses.loss_util import Amount, check_amount_type, float32_region, resolve_count, to_float32
from basicsr_nlattn.utils.errors import OptionError


def check_fraction(n: Amount, where: str) -> None:
    check_amount_type(n, where)
    if isinstance(n, float) and not 0 < n < 0.5:
        raise OptionError(f'{where} as a fraction must be in (0, 0.5) (the top and bottom sets must not overlap), '
                          f'got {n}')
    if isinstance(n, int) and n < 1:
        raise OptionError(f'{where} as a count must be >= 1, got {n}')


def cca_contrastive_loss(weights: Tensor, n: Amount, margin: float) -> Tensor:
    """Eq. 3-4 for one CCA block: per sample, the channel weights sorted descending; positives the top nC,
    negatives the bottom nC; max(0, -log(mean exp(positives) / mean exp(negatives)) + margin); mean over the batch.

    Args:
        weights (Tensor): (B, C) channel weights W^CA.
        n (int | float): size of each set; a float in (0, 0.5) is a fraction of C, an int a count (< C / 2).
        margin (float): b of Eq. 4.

    Returns:
        Tensor: scalar loss.
    """
    check_fraction(n, 'cca_contrastive_loss.n')
    if weights.dim() != 2:
        raise ValueError(f'cca_contrastive_loss: weights must be (B, C), got {tuple(weights.shape)}')
    channels = weights.shape[1]
    count = resolve_count(n, channels)
    if 2 * count > channels:
        raise ValueError(f'cca_contrastive_loss: n={n} gives {count} channels per set, but C={channels} holds fewer '
                         f'than two disjoint sets of that size (n must be < 0.5 of C)')
    ranked = weights.sort(dim=1, descending=True).values
    positives, negatives = ranked[:, :count], ranked[:, channels - count:]
    per_sample = -(torch.logsumexp(positives, dim=1) - torch.logsumexp(negatives, dim=1)) + margin
    return F.relu(per_sample).mean()


def cca_sparsity_loss(weights: Tensor) -> Tensor:
    """Eq. 7: (1 / C) sum_i |W_i^CA|, averaged over the batch."""
    return weights.abs().mean()


def _recorded_weights(blocks: Sequence[nn.Module], loss_name: str) -> List[Tensor]:
    recorded = [
        block.recorded[0] for block in blocks
        if isinstance(block, ChannelContrastiveAttention) and block.recorded is not None
    ]
    if not recorded:
        raise ValueError(f'{loss_name}: no ChannelContrastiveAttention block recorded weights (is the network in '
                         'training mode, with recording on?)')
    return recorded


@LOSS_REGISTRY.register()
class CCAContrastiveLoss(nn.Module):
    """CCLNN's contrastive loss (Eq. 3-4) averaged over the CCA blocks of a network and weighted by lambda (Eq. 6).

    Args:
        loss_weight (float): lambda (Eq. 6). Default: 4e-3.
        n (int | float): fraction of C (or count) in each set: 0.15 at x2 / x3, 0.10 at x4. Default: 0.15.
        margin (float): b (Eq. 4). Default: 1.
    """
    block_type = ChannelContrastiveAttention

    def __init__(self, loss_weight: float = 4e-3, n: Amount = 0.15, margin: float = 1.0) -> None:
        super().__init__()
        check_fraction(n, 'CCAContrastiveLoss.n')
        self.loss_weight, self.n, self.margin = loss_weight, n, margin

    def forward(self, blocks: Sequence[nn.Module]) -> Tensor:
        recorded = _recorded_weights(blocks, 'CCAContrastiveLoss')
        with float32_region(recorded[0].device):
            losses = [cca_contrastive_loss(weights, self.n, self.margin) for weights in to_float32(recorded)]
            return self.loss_weight * torch.stack(losses).mean()


@LOSS_REGISTRY.register()
class CCASparsityLoss(nn.Module):
    """The TSparse ablation (Eq. 7-8): L1 of the CCA channel weights, averaged over blocks, weighted by lambda.

    Args:
        loss_weight (float): lambda (Eq. 8). Default: 4e-3.
    """
    block_type = ChannelContrastiveAttention

    def __init__(self, loss_weight: float = 4e-3) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, blocks: Sequence[nn.Module]) -> Tensor:
        recorded = _recorded_weights(blocks, 'CCASparsityLoss')
        with float32_region(recorded[0].device):
            losses = [cca_sparsity_loss(weights) for weights in to_float32(recorded)]
            return self.loss_weight * torch.stack(losses).mean()
