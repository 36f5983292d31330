"""ENLCA's contrastive loss on the attention embeddings (Eq. 8-10).

Paper: Efficient Non-Local Contrastive Attention for Image Super-Resolution (Xia et al., AAAI 2022), Sec. 3.2.
Official code: https://github.com/Zj-BinXia/ENLCA.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.losses.loss_util import Amount, check_amount_type, float32_region, resolve_count, to_float32
from basicsr_nlattn.utils.errors import OptionError

# Queries per chunk are chosen so that one chunk's similarity holds at most this many elements (16 MB in float32).
_SIMILARITY_ELEMENTS_PER_CHUNK = 1 << 22


def check_amounts(n1: Amount, n2: Amount, where: str = 'enlca_contrastive_loss') -> None:
    """Validate n1, n2: a float in (0, 1) is a fraction of N, an int a count (n2 may be 0)."""
    for name, value, low in (('n1', n1, 1), ('n2', n2, 0)):
        check_amount_type(value, f'{where}.{name}')
        if isinstance(value, float) and not 0 < value < 1:
            raise OptionError(f'{where}.{name} as a fraction must be in (0, 1), got {value}')
        if isinstance(value, int) and value < low:
            raise OptionError(f'{where}.{name} as a count must be >= {low}, got {value}')
    if isinstance(n1, float) and isinstance(n2, float) and n1 + n2 > 1:
        raise OptionError(f'{where}: fractions n1 + n2 must be <= 1, got n1={n1}, n2={n2}')


class _ChosenEntries(torch.autograd.Function):
    """``similarity.gather(-1, index)`` whose backward keeps only ``index``: autograd's gather keeps the whole
    similarity row block for its backward (and indexing's backward is slow on the CPU), which would hold B x N x N
    elements over all chunks."""

    @staticmethod
    def forward(ctx, similarity: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.similarity_shape = similarity.shape
        return similarity.gather(-1, index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, = ctx.saved_tensors
        return grad.new_zeros(ctx.similarity_shape).scatter_add_(-1, index, grad), None


def enlca_contrastive_loss(query: Tensor,
                           key: Tensor,
                           n1: Amount,
                           n2: Amount,
                           margin: float,
                           amplification: float,
                           hinge: bool = True) -> Tensor:
    """L_cl of Eq. 8-10 for one attention block.

    T = amplification * Q K^T on unit vectors (Eq. 8); per query, the row sorted descending (Eq. 9); positives are
    its top n1 entries, negatives the n1 entries starting at rank n2 (0-based). Per query,
    l_i = -log(mean exp(positives) / mean exp(negatives)) + margin, clamped at 0 when ``hinge`` (the official
    code); the result is the mean over queries and batch. ``hinge=False`` is the literal Eq. 10, where the margin
    only shifts the value.

    Computed per chunk of queries: the chunk's similarity row block (with autograd), the ranks of each row by
    ``topk`` without autograd, then the 2 n1 chosen entries gathered with autograd; the same value and gradient as
    sorting the full N x N similarity, without any tensor of B x N x N elements, and the backward keeps only the
    2 n1 chosen indices per query (not the n1 + n2 ranks of ``topk``).

    Args:
        query (Tensor): (B, N, C) unit query embeddings.
        key (Tensor): (B, N, C) unit key embeddings.
        n1 (int | float): size of the positive and negative sets; a float in (0, 1) is a fraction of N.
        n2 (int | float): rank where the negatives start; a float in (0, 1) is a fraction of N.
        margin (float): b of Eq. 10.
        amplification (float): k of Eq. 8, > 0.
        hinge (bool): clamp each query's term at 0 (official code). Default: True.

    Returns:
        Tensor: scalar loss.
    """
    check_amounts(n1, n2)
    if not amplification > 0:
        raise ValueError(f'enlca_contrastive_loss.amplification must be > 0, got {amplification}')
    if query.dim() != 3 or query.shape != key.shape:
        raise ValueError(f'enlca_contrastive_loss: query and key must both be (B, N, C), got {tuple(query.shape)} '
                         f'and {tuple(key.shape)}')
    batch, num_positions, _ = query.shape
    num_pos, negative_start = resolve_count(n1, num_positions), resolve_count(n2, num_positions)
    ranks_needed = max(num_pos, negative_start + num_pos)
    if ranks_needed > num_positions:
        raise ValueError(f'enlca_contrastive_loss: n1={n1}, n2={n2} need {ranks_needed} ranks but the input has '
                         f'only N={num_positions} positions (n1 + n2 must be <= N)')
    chunk = max(1, _SIMILARITY_ELEMENTS_PER_CHUNK // (batch * num_positions))
    total = query.new_zeros(())
    for start in range(0, num_positions, chunk):
        similarity = torch.einsum('bqc,bkc->bqk', amplification * query[:, start:start + chunk], key)
        with torch.no_grad():  # which keys: the ranks alone, without keeping topk's indices for the backward
            ranks = similarity.topk(ranks_needed, dim=-1, sorted=True).indices  # (B, q, ranks_needed), descending
        chosen = torch.cat([ranks[..., :num_pos], ranks[..., negative_start:negative_start + num_pos]], dim=-1)
        values = _ChosenEntries.apply(similarity, chosen)  # (B, q, 2 n1), with autograd
        positives, negatives = values[..., :num_pos], values[..., num_pos:]
        # log(mean exp(p) / mean exp(n)): the 1/n1 factors cancel
        per_query = -(torch.logsumexp(positives, dim=-1) - torch.logsumexp(negatives, dim=-1)) + margin
        if hinge:
            per_query = F.relu(per_query)
        total = total + per_query.sum()
    return total / (batch * num_positions)


@LOSS_REGISTRY.register()
class ENLCAContrastiveLoss(nn.Module):
    """ENLCA contrastive loss (Eq. 8-10), averaged over the ENLCA blocks of a network (the official code's mean),
    then weighted by lambda_cl (Eq. 12).

    Used by ``ContrastiveSRModel`` through ``train.contrastive_opt``; called as ``loss(blocks)`` on the blocks of a
    network, it reads the unit embeddings each ENLCA block recorded in its last training forward.

    Differs from the official code: the paper gives n1, n2 as fractions of N (2 %, 8 %), the code as counts (top
    15, ranks 50..64: ``n1: 15, n2: 50``); ``hinge: true`` is the code's per-query hinge, ``hinge: false`` the
    literal Eq. 10.

    Args:
        loss_weight (float): lambda_cl (Eq. 12). Default: 1e-3.
        n1 (int | float): positives and negatives per query; fraction of N or count. Default: 0.02.
        n2 (int | float): start rank of the negatives; fraction of N or count. Default: 0.08.
        margin (float): b of Eq. 10. Default: 1.
        hinge (bool): per-query hinge of the official code. Default: True.
    """
    block_type = ENLCA

    def __init__(self,
                 loss_weight: float = 1e-3,
                 n1: Amount = 0.02,
                 n2: Amount = 0.08,
                 margin: float = 1.0,
                 hinge: bool = True) -> None:
        super().__init__()
        check_amounts(n1, n2, where='ENLCAContrastiveLoss')
        self.loss_weight = loss_weight
        self.n1, self.n2, self.margin, self.hinge = n1, n2, margin, hinge

    def forward(self, blocks: Sequence[nn.Module]) -> Tensor:
        recorded = [block for block in blocks if isinstance(block, ENLCA) and block.recorded is not None]
        if not recorded:
            raise ValueError('ENLCAContrastiveLoss: no ENLCA block recorded embeddings (is the network in training '
                             'mode, with recording on?)')
        with float32_region(recorded[0].recorded[0].device):
            losses = [
                enlca_contrastive_loss(*to_float32(block.recorded), self.n1, self.n2, self.margin, block.amplification,
                                       self.hinge) for block in recorded
            ]
            return self.loss_weight * torch.stack(losses).mean()
