"""The official ENLCA and NLSA blocks and the official chop, written from the official formulas: the test oracles.

Sources (read, not imported): the ENLCA repository (https://github.com/Zj-BinXia/ENLCA, ``src/model/ENLA.py``
``softmax_kernel`` and ``linear_attention``, ``src/model/attention.py`` ``ENLCA``), the NLSN repository
(https://github.com/HarukiYqM/Non-Local-Sparse-Attention, ``src/model/attention.py``
``NonLocalSparseAttention``) and their common ``forward_chop`` (``src/model/__init__.py``).

Nothing here comes from ``basicsr_nlattn``, and no numerical choice of the package is reused: the kernel has no
stabiliser, the normalisations use the official eps, the NLSA steps are the official ones one after the other
(round offsets and one sort, padding by the sorted tail, own + previous + next chunk, softmax over rounds of the
logsumexp), and the chop slices and rounds as the official code does (including where that breaks).
"""
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

OFFICIAL_KERNEL_EPS = 1e-4
OFFICIAL_NORMALIZE_EPS = 5e-5


def official_softmax_kernel(data: Tensor, projection: Tensor) -> Tensor:
    """phi(x) = m^-1/2 (exp(x F^T - |x|^2 / 2) + 1e-4): (b, n, d), (m, d) -> (b, n, m)."""
    data_dash = torch.einsum('bnd,md->bnm', data, projection)
    diag_data = (data**2).sum(dim=-1, keepdim=True) / 2.0
    return projection.shape[0]**-0.5 * (torch.exp(data_dash - diag_data) + OFFICIAL_KERNEL_EPS)


def official_linear_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """out_n = (q_n . sum_j k_j v_j^T) / (q_n . sum_j k_j): features (b, n, m), values (b, n, e) -> (b, n, e)."""
    k_sum = k.sum(dim=-2)  # (b, m)
    d_inv = 1.0 / torch.einsum('bnm,bm->bn', q, k_sum)
    context = torch.einsum('bnm,bne->bme', k, v)
    return torch.einsum('bme,bnm,bn->bne', context, q, d_inv)


def official_enlca(x: Tensor,
                   match1: tuple,
                   match2: tuple,
                   assembly: tuple,
                   projection: Tensor,
                   amplification: float = 6.0,
                   res_scale: float = 0.1) -> Tensor:
    """The official ENLCA forward (b, c, h, w) -> (b, c, h, w); ``match1``, ``match2``, ``assembly`` are the
    (weight, bias) of the 1x1 convolutions ``conv_match1``, ``conv_match2``, ``conv_assembly``."""
    embed_1 = F.conv2d(x, *match1)
    embed_2 = F.conv2d(x, *match2)
    assembled = F.conv2d(x, *assembly)
    k = math.sqrt(amplification)
    embed_2 = F.normalize(embed_2, p=2, dim=1, eps=OFFICIAL_NORMALIZE_EPS) * k
    embed_1 = F.normalize(embed_1, p=2, dim=1, eps=OFFICIAL_NORMALIZE_EPS) * k
    n, c, h, w = embed_1.shape
    queries = embed_1.permute(0, 2, 3, 1).reshape(n, h * w, c)
    keys = embed_2.permute(0, 2, 3, 1).reshape(n, h * w, c)
    values = assembled.permute(0, 2, 3, 1).reshape(n, h * w, -1)
    out = official_linear_attention(
        official_softmax_kernel(queries, projection), official_softmax_kernel(keys, projection), values)
    return out.permute(0, 2, 1).reshape(n, -1, h, w) * res_scale + x


def official_nlsa(x: Tensor,
                  match: tuple,
                  assembly: tuple,
                  n_hashes: int = 4,
                  chunk_size: int = 144,
                  res_scale: float = 1.0,
                  rotations: Optional[Tensor] = None) -> Tensor:
    """The official NonLocalSparseAttention forward (b, c, h, w) -> (b, c, h, w), h * w >= chunk_size.

    ``match`` is the (weight, bias) of the 3x3 ``conv_match``, ``assembly`` of the 1x1 ``conv_assembly``. The
    rotations are drawn as the official ``LSH`` draws them, ``torch.randn((1, c', n_hashes, buckets // 2))`` from
    the global RNG in the embeddings' dtype, unless given as (c', n_hashes, buckets // 2).
    """
    n, _, h, w = x.shape
    x_embed = F.conv2d(x, *match, padding=match[0].shape[-1] // 2).reshape(n, -1, h * w).permute(0, 2, 1)
    y_embed = F.conv2d(x, *assembly).reshape(n, -1, h * w).permute(0, 2, 1)
    length, c = x_embed.shape[-2:]
    value_dim = y_embed.shape[-1]
    hash_buckets = min(length // chunk_size + (length // chunk_size) % 2, 128)

    # LSH: argmax over [xR, -xR], codes offset by round
    if rotations is None:
        rotations = torch.randn((1, c, n_hashes, hash_buckets // 2), dtype=x_embed.dtype, device=x.device)
    else:
        rotations = rotations.unsqueeze(0)
    rotations = rotations.expand(n, -1, -1, -1)
    rotated = torch.einsum('btf,bfhi->bhti', x_embed, rotations)
    codes = torch.argmax(torch.cat([rotated, -rotated], dim=-1), dim=-1)  # (n, n_hashes, L)
    offsets = (torch.arange(n_hashes, device=x.device) * hash_buckets).reshape(1, -1, 1)
    codes = (codes + offsets).reshape(n, -1).detach()

    _, indices = codes.sort(dim=-1)
    _, undo_sort = indices.sort(dim=-1)
    mod_indices = indices % length

    def select(values: Tensor, index: Tensor) -> Tensor:  # values (n, L, d), index (n, k) -> (n, k, d)
        return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))

    x_sorted = select(x_embed, mod_indices).reshape(n, n_hashes, -1, c)
    y_sorted = select(y_embed, mod_indices).reshape(n, n_hashes, -1, value_dim)
    padding = chunk_size - length % chunk_size if length % chunk_size != 0 else 0
    if padding:
        x_sorted = torch.cat([x_sorted, x_sorted[:, :, -padding:, :]], dim=2)
        y_sorted = torch.cat([y_sorted, y_sorted[:, :, -padding:, :]], dim=2)
    x_buckets = x_sorted.reshape(n, n_hashes, -1, chunk_size, c)
    y_buckets = y_sorted.reshape(n, n_hashes, -1, chunk_size, value_dim)
    x_match = F.normalize(x_buckets, p=2, dim=-1, eps=OFFICIAL_NORMALIZE_EPS)

    def add_adjacent(t: Tensor) -> Tensor:  # own chunk, then the previous, then the next (cyclic)
        back = torch.cat([t[:, :, -1:], t[:, :, :-1]], dim=2)
        forward = torch.cat([t[:, :, 1:], t[:, :, :1]], dim=2)
        return torch.cat([t, back, forward], dim=3)

    x_match, y_buckets = add_adjacent(x_match), add_adjacent(y_buckets)
    raw_score = torch.einsum('bhkie,bhkje->bhkij', x_buckets, x_match)
    bucket_score = torch.logsumexp(raw_score, dim=-1, keepdim=True)
    score = torch.exp(raw_score - bucket_score)
    ret = torch.einsum('bukij,bukje->bukie', score, y_buckets).reshape(n, n_hashes, -1, value_dim)
    bucket_score = bucket_score.reshape(n, n_hashes, -1)
    if padding:
        ret, bucket_score = ret[:, :, :-padding], bucket_score[:, :, :-padding]
    ret = select(ret.reshape(n, -1, value_dim), undo_sort).reshape(n, n_hashes, length, value_dim)
    bucket_score = bucket_score.reshape(n, -1).gather(1, undo_sort).reshape(n, n_hashes, length, 1)
    ret = (ret * torch.softmax(bucket_score, dim=1)).sum(dim=1)
    return ret.permute(0, 2, 1).reshape(n, -1, h, w) * res_scale + x


def official_forward_chop(model: Callable[[Tensor], Tensor],
                          x: Tensor,
                          scale: int,
                          shave: int = 10,
                          min_size: int = 120000) -> Tensor:
    """The official ``forward_chop`` with one GPU: quadrants run one at a time; breaks on images whose rounded
    quadrant exceeds them, as the official code does."""
    b, c, h, w = x.shape
    h_half, w_half = h // 2, w // 2
    h_size, w_size = h_half + shave, w_half + shave
    h_size += 4 - h_size % 4
    w_size += 8 - w_size % 8
    lr_list = [
        x[:, :, 0:h_size, 0:w_size], x[:, :, 0:h_size, (w - w_size):w], x[:, :, (h - h_size):h, 0:w_size],
        x[:, :, (h - h_size):h, (w - w_size):w]
    ]
    if w_size * h_size < min_size:
        sr_list = [model(patch) for patch in lr_list]
    else:
        sr_list = [official_forward_chop(model, patch, scale, shave, min_size) for patch in lr_list]
    h, w = scale * h, scale * w
    h_half, w_half = scale * h_half, scale * w_half
    h_size, w_size = scale * h_size, scale * w_size
    output = x.new_zeros(b, c, h, w)
    output[:, :, 0:h_half, 0:w_half] = sr_list[0][:, :, 0:h_half, 0:w_half]
    output[:, :, 0:h_half, w_half:w] = sr_list[1][:, :, 0:h_half, (w_size - w + w_half):w_size]
    output[:, :, h_half:h, 0:w_half] = sr_list[2][:, :, (h_size - h + h_half):h_size, 0:w_half]
    output[:, :, h_half:h, w_half:w] = sr_list[3][:, :, (h_size - h + h_half):h_size, (w_size - w + w_half):w_size]
    return output
