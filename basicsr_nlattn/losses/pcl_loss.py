"""PCL-SR's losses: the multi-positive, multi-negative contrastive loss on embedding features (Eq. 8-10) and the
contrastive discriminator loss that trains the embedding network (Eq. 7).

Paper: Practical Contrastive Learning for Single Image Super-Resolution (PCL-SR), Sec. III-C, III-D.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.losses.loss_util import float32_region, to_float32
from basicsr_nlattn.utils.errors import OptionError


def feature_similarity(anchor: Tensor, other: Tensor) -> Tensor:
    """s of Eq. 9: pixel-wise cosine similarity over channels, averaged over H and W; (..., c, h, w) -> (...)."""
    return F.cosine_similarity(anchor, other, dim=-3).mean(dim=(-2, -1))


def pcl_contrastive_loss(anchor: Sequence[Tensor],
                         positives: Sequence[Tensor],
                         negatives: Sequence[Tensor],
                         tau: float = 1.0) -> Tensor:
    """L_CL of Eq. 8-10.

    For every layer l and sample i, each positive j gives -log(exp(s(f, p_j)/tau) / (exp(s(f, p_j)/tau) +
    sum_k exp(s(f, n_k)/tau))); these are averaged over positives (Eq. 8), then over samples and layers (Eq. 10).

    Args:
        anchor (Sequence[Tensor]): per layer, the SR features f, (b, c, h, w).
        positives (Sequence[Tensor]): per layer, (K_P, b, c, h, w).
        negatives (Sequence[Tensor]): per layer, (K_N, b, c, h, w).
        tau (float): temperature. Default: 1.

    Returns:
        Tensor: scalar loss.
    """
    if not len(anchor) == len(positives) == len(negatives) or not anchor:
        raise ValueError('pcl_contrastive_loss: anchor, positives and negatives need the same, non-zero number of '
                         f'layers, got {len(anchor)}, {len(positives)}, {len(negatives)}')
    if not tau > 0:
        raise ValueError(f'pcl_contrastive_loss.tau must be > 0, got {tau}')
    per_layer = []
    for f, p, n in zip(anchor, positives, negatives):
        positive_logits = feature_similarity(f.unsqueeze(0), p) / tau  # (K_P, b)
        negative_logits = feature_similarity(f.unsqueeze(0), n) / tau  # (K_N, b)
        negative_lse = torch.logsumexp(negative_logits, dim=0)  # (b,)
        per_positive = torch.logaddexp(positive_logits, negative_lse) - positive_logits  # -log softmax
        per_layer.append(per_positive.mean())
    return torch.stack(per_layer).mean()


def contrastive_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Eq. 7 (one-against-a-batch softmax cross-entropy), patch logits flattened across the batch.

    Each real logit r is classified against all fake logits: -log(e^r / (e^r + sum_f e^f)); each fake logit f
    against all real ones with the signs flipped: -log(e^-f / (e^-f + sum_r e^-r)). The two terms are means over
    their logits, summed. (Eq. 7 is written as the quantity to maximise; this is its negative, to minimise.)
    """
    real, fake = real_logits.flatten(), fake_logits.flatten()
    real_term = torch.logaddexp(real, torch.logsumexp(fake, dim=0)) - real
    fake_term = torch.logaddexp(-fake, torch.logsumexp(-real, dim=0)) + fake
    return real_term.mean() + fake_term.mean()


@LOSS_REGISTRY.register()
class PCLContrastiveLoss(nn.Module):
    """PCL-SR contrastive loss (Eq. 8-10) on selected feature layers of the embedding network, weighted by alpha
    (Eq. 12). Called as ``loss(anchor_features, positive_features, negative_features)`` with the full per-stage
    lists of ``HaarDiscriminator.features``; ``layers`` picks the stages.

    Differs from the released scripts: the paper uses the first 4 intermediate layers (``layers: [0, 1, 2, 3]``),
    the scripts one (``layers: [3]``); alpha 0.1 (the scripts 3-5 with other loss forms).

    Args:
        loss_weight (float): alpha (Eq. 12). Default: 0.1.
        layers (Sequence[int]): indices of the feature stages used (L = len(layers)). Default: (0, 1, 2, 3).
        tau (float): temperature. Default: 1.
    """

    def __init__(self, loss_weight: float = 0.1, layers: Sequence[int] = (0, 1, 2, 3), tau: float = 1.0) -> None:
        super().__init__()
        layers = list(layers)
        if not layers or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in layers):
            raise OptionError(f'PCLContrastiveLoss.layers must be a non-empty list of stage indices >= 0, got {layers}')
        if not tau > 0:
            raise OptionError(f'PCLContrastiveLoss.tau must be > 0, got {tau}')
        self.loss_weight, self.layers, self.tau = loss_weight, layers, tau

    def check_layers(self, num_features: int) -> None:
        """Raise when a selected layer does not exist in an embedding network with ``num_features`` stages."""
        unknown = [i for i in self.layers if i >= num_features]
        if unknown:
            raise OptionError(f'PCLContrastiveLoss.layers: unknown feature layer(s) {unknown}; the embedding network '
                              f'has {num_features} (indices 0..{num_features - 1})')

    def forward(self, anchor: Sequence[Tensor], positives: Sequence[Tensor], negatives: Sequence[Tensor]) -> Tensor:
        self.check_layers(len(anchor))
        pick = self.layers
        with float32_region(anchor[0].device):
            return self.loss_weight * pcl_contrastive_loss(
                to_float32([anchor[i]
                            for i in pick]), to_float32([positives[i]
                                                         for i in pick]), to_float32([negatives[i]
                                                                                      for i in pick]), self.tau)


@LOSS_REGISTRY.register()
class ContrastiveDiscriminatorLoss(nn.Module):
    """Eq. 7 as a registered loss: ``loss(real_logits, fake_logits)``.

    Args:
        loss_weight (float): weight. Default: 1.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        with float32_region(real_logits.device):
            return self.loss_weight * contrastive_discriminator_loss(*to_float32([real_logits, fake_logits]))
