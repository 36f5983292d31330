"""NLSA: Non-Local Sparse Attention with spherical LSH buckets.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Eq. 7-11.
Official code: https://github.com/HarukiYqM/Non-Local-Sparse-Attention.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.bucket_attention import attend_in_sorted_order, sparse_attention
from basicsr_nlattn.archs.attention.pointwise import pointwise_rows
from basicsr_nlattn.utils.errors import OptionError

NORMALIZE_EPS = 5e-5  # the official code's eps of F.normalize for the keys
HASH_BLOCK_ELEMENTS = 1 << 20  # elements of x R computed at once by spherical_hash


def num_hash_buckets(num_positions: int, chunk_size: int, max_buckets: int = 128) -> int:
    """m = min(L // c + (L // c) % 2, max_buckets): an even number of buckets, about one chunk each."""
    chunks = num_positions // chunk_size
    return max(2, min(chunks + chunks % 2, max_buckets))


def spherical_hash(embed: Tensor, rotations: Tensor) -> Tensor:
    """h(x) = argmax [x R, -x R] (Eq. 7): the nearest vertex of a randomly rotated cross-polytope.

    Computed without the (b, rounds, n, m) concatenation: the maximum of [x R, -x R] is max(x R) unless -min(x R)
    is larger, and its first index is the smallest index where x R equals that maximum (or that minimum), which
    ``amin`` finds faster than ``argmax`` does.

    Args:
        embed (Tensor): (b, n, c) embeddings (their norm does not change the argmax).
        rotations (Tensor): (c, rounds, m / 2) Gaussian rotation, one per hashing round.

    Returns:
        Tensor: (b, rounds, n) bucket codes in [0, m).
    """
    half = rotations.shape[-1]
    indices = torch.arange(half, device=embed.device, dtype=embed.dtype)
    block = max(1, HASH_BLOCK_ELEMENTS // (embed.shape[0] * rotations.shape[1] * half))
    codes = []
    for start in range(0, embed.shape[1], block):  # positions in blocks: x R of a block stays in the caches
        rotated = torch.einsum('bnc,crm->brnm', embed[:, start:start + block], rotations)
        high, low = rotated.amax(dim=-1, keepdim=True), rotated.amin(dim=-1, keepdim=True)
        positive = high >= -low
        first = torch.where(rotated == torch.where(positive, high, low), indices, half).amin(dim=-1, keepdim=True)
        codes.append((first.long() + half * (~positive).long()).squeeze(-1))
    return torch.cat(codes, dim=-1)


def sort_by_bucket(codes: Tensor, num_buckets: int, *, ties_by_position: bool = False) -> Tensor:
    """Eq. 8-9: the order that groups each round's positions by bucket, (b, r, n) codes -> (b, r, n) positions.

    As the official code: round r's codes are offset by r * num_buckets and all rounds are sorted together by one
    ``torch.sort`` (not stable), so positions that share a bucket keep the order that sort gives them; with the
    official block's codes, the chunks are the official chunks. ``ties_by_position`` orders the positions of a
    bucket by index instead (the order of ONNX's TopK, used for export): one sort of unique keys, round-offset
    code * r n + flat position, since the exporter has no stable sort.
    """
    b, rounds, n = codes.shape
    offsets = torch.arange(rounds, device=codes.device).view(1, rounds, 1) * num_buckets
    keys = (codes + offsets).view(b, rounds * n)  # round r fills [r n, (r + 1) n)
    if ties_by_position:
        keys = keys * (rounds * n) + torch.arange(rounds * n, device=codes.device)
    _, flat_order = keys.sort(dim=-1)
    return (flat_order % n).view(b, rounds, n)


def chunked_order(codes: Tensor,
                  num_buckets: int,
                  chunk_size: int,
                  *,
                  ties_by_position: bool = False) -> Tuple[Tensor, int]:
    """The sorted positions of each round, padded by repeating the sorted tail to whole chunks (Eq. 8-9).

    Args:
        codes (Tensor): (b, rounds, n) bucket codes in [0, num_buckets).
        num_buckets (int): m, the number of hash buckets.
        chunk_size (int): positions per chunk; a sequence shorter than that is one chunk of n.
        ties_by_position (bool): order a bucket's positions by index (see ``sort_by_bucket``). Default: False.

    Returns:
        (Tensor, int): positions (b, rounds, k * s) whose chunk j is [j s, (j + 1) s), and the chunk size s.
    """
    n = codes.shape[-1]
    chunk = min(chunk_size, n)
    order = sort_by_bucket(codes, num_buckets, ties_by_position=ties_by_position)  # (b, r, n)
    padding = (-n) % chunk
    if padding:
        order = torch.cat([order, order[..., n - padding:]], dim=-1)
    return order, chunk


def bucketed_attention(query: Tensor,
                       key: Tensor,
                       value: Tensor,
                       codes: Tensor,
                       chunk_size: int,
                       num_buckets: int,
                       *,
                       ties_by_position: bool = False) -> Tuple[Tensor, Tensor]:
    """Sort positions by bucket (Eq. 8-9), attend within each chunk and its neighbours (Eq. 10), undo the sort.

    Logits exist for a group of chunks at a time (``chunk_attention``): no n x n tensor, and none of rounds x n x
    3 chunk_size. When n is not a multiple of ``chunk_size``, each round's sorted sequence is padded by repeating
    its tail (the padded queries are dropped); when n is at most one chunk, that chunk is exact attention.

    Args:
        query (Tensor): (b, n, c') queries.
        key (Tensor): (b, n, c') keys.
        value (Tensor): (b, n, c) values.
        codes (Tensor): (b, rounds, n) bucket codes in [0, num_buckets).
        chunk_size (int): positions per chunk k.
        num_buckets (int): m, the number of hash buckets (sets the official sort's round offsets).
        ties_by_position (bool): order a bucket's positions by index (see ``sort_by_bucket``). Default: False.

    Returns:
        (Tensor, Tensor): outputs (b, rounds, n, c) and their logsumexp (b, rounds, n).
    """
    order, chunk = chunked_order(codes, num_buckets, chunk_size, ties_by_position=ties_by_position)
    return attend_in_sorted_order(query, key, value, order, chunk)


@ARCH_REGISTRY.register()
class NLSA(nn.Module):
    """Non-Local Sparse Attention block, (b, c, h, w) -> (b, c, h, w).

    Embeddings from one shared 3x3 convolution (reduction 4) serve as queries and, L2-normalised, as keys; values
    come from a 1x1 convolution. Each of ``n_hashes`` rounds hashes the embeddings with spherical LSH (Eq. 7),
    sorts by bucket, splits into chunks of ``chunk_size`` (Eq. 8-9) and attends within each chunk and its two
    neighbours (Eq. 10); rounds are combined by Eq. 11; the result is added to the input scaled by ``res_scale``.

    Rotations: in training, one ``torch.randn`` of shape (1, c', n_hashes, m / 2) per forward from the global RNG
    (which BasicSR seeds with ``manual_seed``), in the embeddings' dtype and device, shared by the batch: the
    official block's draw, so with the same ``torch.manual_seed`` both blocks hash, sort (the official
    ``torch.sort`` over round-offset codes), pad (the sorted tail repeated), chunk (own, previous and next chunk;
    with two chunks the other one twice), attend and combine rounds alike, and give the same output. In eval mode,
    rotations from a CPU generator seeded with ``eval_seed`` on every call, so the same input gives the same output
    on every call and every machine. ``n_hashes`` may differ between training and testing (paper Table 3): it is
    not part of the state dict.

    Differs from the official code: it crashes when h * w < chunk_size; here one chunk of h * w positions is
    exact attention, and no rotation is drawn. Its evaluation draws fresh rotations from the global RNG, so the
    same image gives different outputs; here evaluation is seeded (``eval_seed``).

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
        if num_feat < 1:
            raise OptionError(f'NLSA.num_feat must be >= 1, got {num_feat}')
        if not 1 <= reduction <= num_feat:
            raise OptionError(f'NLSA.reduction must be between 1 and num_feat ({num_feat}), got {reduction}')
        if chunk_size < 1:
            raise OptionError(f'NLSA.chunk_size must be >= 1, got {chunk_size}')
        if max_buckets < 2 or max_buckets % 2:
            raise OptionError(f'NLSA.max_buckets must be an even number >= 2, got {max_buckets}')
        self.chunk_size = chunk_size
        self.n_hashes = n_hashes
        self.res_scale = res_scale
        self.max_buckets = max_buckets
        self.eval_seed = eval_seed
        # Set by the ONNX export, whose TopK orders ties by position; torch.sort's order (the official one) otherwise.
        self.ties_by_position = False
        self.match_conv = nn.Conv2d(num_feat, num_feat // reduction, 3, 1, 1)
        self.value_conv = nn.Conv2d(num_feat, num_feat, 1)

    @property
    def n_hashes(self) -> int:
        return self._n_hashes

    @n_hashes.setter
    def n_hashes(self, value: int) -> None:
        if not isinstance(value, int) or value < 1:
            raise OptionError(f'NLSA.n_hashes must be an int >= 1, got {value!r}')
        self._n_hashes = value

    def rotations(self,
                  embed_dim: int,
                  num_positions: int,
                  device: torch.device,
                  dtype: torch.dtype = torch.float32) -> Tensor:
        """(c', rounds, m / 2) Gaussian rotations: the official draw in training, seeded by ``eval_seed`` in eval."""
        shape = (embed_dim, self.n_hashes, num_hash_buckets(num_positions, self.chunk_size, self.max_buckets) // 2)
        if self.training:  # the official (1, c', rounds, m / 2) draw, expanded over the batch there
            return torch.randn((1, ) + shape, dtype=dtype, device=device)[0]
        generator = torch.Generator().manual_seed(self.eval_seed)
        return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)

    def embed_and_hash(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """Queries, unit keys (b, hw, c'), values (b, hw, c), bucket codes (b, rounds, hw) and the bucket count."""
        b, _, h, w = x.shape
        # (b, hw, c') and (b, hw, c), contiguous: the attention gathers their rows once per round
        embed = self.match_conv(x).flatten(2).transpose(1, 2).contiguous()
        value = pointwise_rows(x, self.value_conv.weight, self.value_conv.bias)  # (b, hw, c)
        if h * w < self.chunk_size:  # one chunk: every position attends to all (the official code crashes)
            num_buckets = 1
            codes = embed.new_zeros((b, self.n_hashes, h * w), dtype=torch.long)
        else:
            num_buckets = num_hash_buckets(h * w, self.chunk_size, self.max_buckets)
            codes = spherical_hash(embed.detach(), self.rotations(embed.shape[-1], h * w, x.device, embed.dtype))
        return embed, F.normalize(embed, dim=-1, eps=NORMALIZE_EPS), value, codes, num_buckets

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        embed, key, value, codes, num_buckets = self.embed_and_hash(x)
        order, chunk = chunked_order(codes, num_buckets, self.chunk_size, ties_by_position=self.ties_by_position)
        out = sparse_attention(embed, key, value, order, chunk)  # (b, hw, c), Eq. 10-11
        return torch.add(x, out.to(x.dtype).transpose(1, 2).view(b, c, h, w), alpha=self.res_scale)

    def extra_repr(self) -> str:
        return f'chunk_size={self.chunk_size}, n_hashes={self.n_hashes}, res_scale={self.res_scale}'
