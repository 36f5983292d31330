"""ENLCA's contrastive loss (Eq. 8-10) the slow, obvious way: the test oracle of ``enlca_contrastive_loss``.

Written from the paper's equations, not from ``basicsr_nlattn``: per image, the whole N x N similarity matrix; per
query, its row put in descending order with ``argsort`` and ``gather``; the positive and negative sets read off by
rank; the mean of exponentials taken as written (no logsumexp); the hinge as ``clamp``.
"""
import torch
from torch import Tensor


def full_sort_contrastive_loss(query: Tensor,
                               key: Tensor,
                               num_pos: int,
                               negative_start: int,
                               margin: float,
                               amplification: float,
                               hinge: bool = True) -> Tensor:
    """L_cl for one block from (B, N, C) unit query and key embeddings, with n1 = ``num_pos`` and n2 =
    ``negative_start`` already counts: per query, -log(mean exp(top n1) / mean exp(ranks n2 .. n2 + n1 - 1)) +
    margin, clamped at 0 when ``hinge``; the mean over every query of every image."""
    per_query = []
    for image_query, image_key in zip(query, key):
        similarity = amplification * torch.mm(image_query, image_key.t())  # (N, N): row i is query i
        order = torch.argsort(similarity, dim=1, descending=True)
        ranked = torch.gather(similarity, 1, order)
        positive = torch.exp(ranked[:, :num_pos]).mean(dim=1)
        negative = torch.exp(ranked[:, negative_start:negative_start + num_pos]).mean(dim=1)
        term = margin - torch.log(positive) + torch.log(negative)
        per_query.append(term.clamp(min=0) if hinge else term)
    return torch.cat(per_query).mean()
