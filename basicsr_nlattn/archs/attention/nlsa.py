"""NLSA: Non-Local Sparse Attention with spherical LSH buckets.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Eq. 7-11.
Official code: https://github.com/HarukiYqM/Non-Local-Sparse-Attention.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn


def num_hash_buckets(num_positions: int, chunk_size: int, max_buckets: int = 128) -> int:
    """m = min(L // c + (L // c) % 2, max_buckets): an even number of buckets, about one chunk each."""
    chunks = num_positions // chunk_size
    return max(2, min(chunks + chunks % 2, max_buckets))


def spherical_hash(embed: Tensor, rotations: Tensor) -> Tensor:
    """h(x) = argmax [x R, -x R] (Eq. 7): the nearest vertex of a randomly rotated cross-polytope.

    Args:
        embed (Tensor): (b, n, c) embeddings (their norm does not change the argmax).
        rotations (Tensor): (c, rounds, m / 2) Gaussian rotation, one per hashing round.

    Returns:
        Tensor: (b, rounds, n) bucket codes in [0, m).
    """
    rotated = torch.einsum('bnc,crm->brnm', embed, rotations)
    return torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)


def combine_rounds(outputs: Tensor, logsumexp: Tensor) -> Tensor:
    """Eq. 11: weight round r by sum_j f(x_i, x_j) over its bucket, normalised over rounds: softmax of the logsumexp.

    Args:
        outputs (Tensor): (b, rounds, n, c) single-round attention outputs Att(x_i, delta_{r,i}) (Eq. 10).
        logsumexp (Tensor): (b, rounds, n) log sum_j f(x_i, x_j) of each round.

    Returns:
        Tensor: (b, n, c).
    """
    weights = torch.softmax(logsumexp, dim=1).unsqueeze(-1)
    return (weights * outputs).sum(dim=1)


def _with_neighbours(chunks: Tensor) -> Tensor:
    """(b, r, k, s, c) chunks -> (b, r, k, 3s, c): each chunk with the previous and the next one (cyclic)."""
    num_chunks = chunks.shape[2]
    if num_chunks == 1:
        return chunks
    if num_chunks == 2:  # previous and next are the same chunk: attend to it once
        return torch.cat([chunks, chunks.roll(1, dims=2)], dim=3)
    return torch.cat([chunks, chunks.roll(1, dims=2), chunks.roll(-1, dims=2)], dim=3)


def bucketed_attention(query: Tensor, key: Tensor, value: Tensor, codes: Tensor,
                       chunk_size: int) -> Tuple[Tensor, Tensor]:
    """Sort positions by bucket (Eq. 8-9), attend within each chunk and its neighbours (Eq. 10), undo the sort.

    Memory is O(rounds x n x 3 chunk_size): no n x n tensor. When n is not a multiple of ``chunk_size``, each
    round's sorted sequence is padded by repeating its tail (the padded queries are dropped); when n is at most one
    chunk, that one chunk of n positions is exact attention.

    Args:
        query (Tensor): (b, n, c') queries.
        key (Tensor): (b, n, c') keys.
        value (Tensor): (b, n, c) values.
        codes (Tensor): (b, rounds, n) bucket codes.
        chunk_size (int): positions per chunk k.

    Returns:
        (Tensor, Tensor): outputs (b, rounds, n, c) and their logsumexp (b, rounds, n).
    """
    b, n, _ = query.shape
    rounds = codes.shape[1]
    chunk = min(chunk_size, n)
    positions = torch.arange(n, device=codes.device)
    order = torch.argsort(codes * n + positions, dim=-1)  # (b, r, n): by bucket, then by position
    padding = (-n) % chunk
    if padding:
        order = torch.cat([order, order[..., n - padding:]], dim=-1)
    num_chunks = order.shape[-1] // chunk

    def gather(tensor: Tensor) -> Tensor:  # (b, n, d) -> (b, r, k, s, d) in sorted order
        flat = order.reshape(b, -1, 1).expand(-1, -1, tensor.shape[-1])
        return tensor.gather(1, flat).view(b, rounds, num_chunks, chunk, tensor.shape[-1])

    query_chunks = gather(query)
    key_context, value_context = _with_neighbours(gather(key)), _with_neighbours(gather(value))
    logits = torch.einsum('brkic,brkjc->brkij', query_chunks, key_context)  # (b, r, k, s, <=3s)
    logsumexp = torch.logsumexp(logits, dim=-1, keepdim=True)
    attended = torch.einsum('brkij,brkjc->brkic', torch.exp(logits - logsumexp), value_context)
    attended = attended.reshape(b, rounds, -1, value.shape[-1])[:, :, :n]  # (b, r, n, c), sorted order
    logsumexp = logsumexp.reshape(b, rounds, -1)[:, :, :n]
    undo = torch.argsort(order[..., :n], dim=-1)  # sorted position of each original position
    attended = attended.gather(2, undo.unsqueeze(-1).expand(-1, -1, -1, value.shape[-1]))
    return attended, logsumexp.gather(2, undo)


@ARCH_REGISTRY.register()
class NLSA(nn.Module):
    """Non-Local Sparse Attention block, (b, c, h, w) -> (b, c, h, w).

    Embeddings from one shared 3x3 convolution (reduction 4) serve as queries and, L2-normalised, as keys; values
    come from a 1x1 convolution. Each of ``n_hashes`` rounds hashes the embeddings with spherical LSH (Eq. 7),
    sorts by bucket, splits into chunks of ``chunk_size`` (Eq. 8-9) and attends within each chunk and its two
    neighbours (Eq. 10); rounds are combined by Eq. 11; the result is added to the input scaled by ``res_scale``.

    Rotations: fresh Gaussian rotations every training forward (global RNG, which BasicSR seeds with
    ``manual_seed``); in eval mode, rotations from a CPU generator seeded with ``eval_seed`` on every call, so the
    same input gives the same output on every call and every machine. ``n_hashes`` may differ between training and
    testing (paper Table 3): it is not part of the state dict.

    Differs from the official code: the official code crashes when h * w < chunk_size; here one chunk of h * w
    positions is exact attention. With exactly two chunks, the official code attends to the other chunk twice
    (as previous and as next); here once. Evaluation in the official code uses fresh random rotations.

    Args:
        num_feat (int): channels of input and output.
        reduction (int): embedding width num_feat // reduction. Default: 4 (256 -> 64).
        chunk_size (int): k, positions per chunk (attention bucket size). Default: 144.
        n_hashes (int): r, hashing rounds. Default: 4.
        res_scale (float): scale of the attention output before the identity path is added. Default: 1.
        max_buckets (int): cap on the number of hash buckets. Default: 128.
        eval_seed (int): seed of the evaluation rotations. Default: 0.
    """

    def __init__(self,
                 num_feat: int,
                 *,
                 reduction: int = 4,
                 chunk_size: int = 144,
                 n_hashes: int = 4,
                 res_scale: float = 1.0,
                 max_buckets: int = 128,
                 eval_seed: int = 0) -> None:
        super().__init__()
        if num_feat < 1 or reduction < 1 or num_feat // reduction < 1:
            raise ValueError(f'NLSA.num_feat // reduction must be >= 1, got num_feat={num_feat}, '
                             f'reduction={reduction}')
        if chunk_size < 1:
            raise ValueError(f'NLSA.chunk_size must be >= 1, got {chunk_size}')
        if max_buckets < 2 or max_buckets % 2:
            raise ValueError(f'NLSA.max_buckets must be an even number >= 2, got {max_buckets}')
        self.chunk_size = chunk_size
        self.n_hashes = n_hashes
        self.res_scale = res_scale
        self.max_buckets = max_buckets
        self.eval_seed = eval_seed
        self.match_conv = nn.Conv2d(num_feat, num_feat // reduction, 3, 1, 1)
        self.value_conv = nn.Conv2d(num_feat, num_feat, 1)

    @property
    def n_hashes(self) -> int:
        return self._n_hashes

    @n_hashes.setter
    def n_hashes(self, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'NLSA.n_hashes must be an int >= 1, got {value!r}')
        self._n_hashes = value

    def rotations(self,
                  embed_dim: int,
                  num_positions: int,
                  device: torch.device,
                  generator: Optional[torch.Generator] = None) -> Tensor:
        """(c', rounds, m / 2) Gaussian rotations: from ``generator``, else seeded in eval, fresh in training."""
        shape = (embed_dim, self.n_hashes, num_hash_buckets(num_positions, self.chunk_size, self.max_buckets) // 2)
        if generator is None and not self.training:
            generator = torch.Generator().manual_seed(self.eval_seed)
        if generator is None:
            return torch.randn(shape, device=device)
        return torch.randn(shape, generator=generator).to(device)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        embed = self.match_conv(x).flatten(2).transpose(1, 2)  # (b, hw, c')
        value = self.value_conv(x).flatten(2).transpose(1, 2)  # (b, hw, c)
        if h * w <= self.chunk_size:  # one chunk: every position attends to all, whatever the buckets
            codes = embed.new_zeros((b, self.n_hashes, h * w), dtype=torch.long)
        else:
            codes = spherical_hash(embed.detach(), self.rotations(embed.shape[-1], h * w, x.device).to(embed.dtype))
        attended, logsumexp = bucketed_attention(embed, F.normalize(embed, dim=-1), value, codes, self.chunk_size)
        out = combine_rounds(attended, logsumexp)  # (b, hw, c)
        return x + self.res_scale * out.transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f'chunk_size={self.chunk_size}, n_hashes={self.n_hashes}, res_scale={self.res_scale}'
