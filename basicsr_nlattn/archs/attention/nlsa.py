"""NLSA: Non-Local Sparse Attention with spherical LSH buckets.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Eq. 7-11.
Official code: https://github.com/HarukiYqM/Non-Local-Sparse-Attention.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.utils.errors import OptionError

NORMALIZE_EPS = 5e-5  # the official code's eps of F.normalize for the keys


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
    """(b, r, k, s, c) chunks -> (b, r, k, 3s, c): each chunk, then the previous and the next one (cyclic), as the
    official code; with two chunks the other one appears twice, as previous and as next.

    A single chunk is returned alone: the official code would concatenate it three times, which leaves every
    softmax unchanged and raises every round's logsumexp by the same log 3, so Eq. 11 gives the same output.
    """
    if chunks.shape[2] == 1:
        return chunks
    return torch.cat([chunks, chunks.roll(1, dims=2), chunks.roll(-1, dims=2)], dim=3)


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

    Memory is O(rounds x n x 3 chunk_size): no n x n tensor. When n is not a multiple of ``chunk_size``, each
    round's sorted sequence is padded by repeating its tail (the padded queries are dropped); when n is at most one
    chunk, that one chunk of n positions is exact attention.

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
    b, n, _ = query.shape
    rounds = codes.shape[1]
    order, chunk = chunked_order(codes, num_buckets, chunk_size, ties_by_position=ties_by_position)  # (b, r, k * s)
    num_chunks = order.shape[-1] // chunk

    def gather(tensor: Tensor) -> Tensor:  # (b, n, d) -> (b, r, k, s, d) in sorted order
        flat = order.reshape(b, -1, 1).expand(-1, -1, tensor.shape[-1])
        return tensor.gather(1, flat).view(b, rounds, num_chunks, chunk, tensor.shape[-1])

    query_chunks = gather(query)
    key_context, value_context = _with_neighbours(gather(key)), _with_neighbours(gather(value))
    logits = torch.einsum('brkic,brkjc->brkij', query_chunks, key_context)  # (b, r, k, s, s or 3s)
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
        embed = self.match_conv(x).flatten(2).transpose(1, 2)  # (b, hw, c')
        value = self.value_conv(x).flatten(2).transpose(1, 2)  # (b, hw, c)
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
        attended, logsumexp = bucketed_attention(
            embed, key, value, codes, self.chunk_size, num_buckets, ties_by_position=self.ties_by_position)
        # Eq. 11's softmax over rounds in float32 at least: under autocast the logsumexp arrives in bfloat16/float16.
        core_dtype = torch.promote_types(attended.dtype, torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = combine_rounds(attended.to(core_dtype), logsumexp.to(core_dtype))  # (b, hw, c)
        out = out.to(x.dtype)
        return x + self.res_scale * out.transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f'chunk_size={self.chunk_size}, n_hashes={self.n_hashes}, res_scale={self.res_scale}'
