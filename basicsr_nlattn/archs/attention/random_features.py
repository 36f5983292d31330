"""Positive random features for the softmax kernel and the linear attention built on them (ENLCA, Eq. 4-6).

Paper: Efficient Non-Local Contrastive Attention for Image Super-Resolution (Xia et al., AAAI 2022), Eq. 4-6;
the orthogonal random features follow Performer (Choromanski et al., "Rethinking Attention with Performers",
arXiv:2009.14794), whose idea ENLCA's official code reuses.

Pure functions: the module that owns the random matrix (ENLCA) keeps it as a buffer and redraws it.
"""
import math
from typing import Optional

import torch
from torch import Tensor


def orthogonal_gaussian_matrix(num_rows: int,
                               num_cols: int,
                               generator: Optional[torch.Generator] = None,
                               dtype: torch.dtype = torch.float32) -> Tensor:
    """Random matrix F (m x c) whose rows are marginally N(0, I_c) and orthogonal within each block of c rows.

    Each block of c rows is the orthogonal factor of a Gaussian matrix (signs fixed so it is Haar-distributed);
    every row is then scaled by the norm of an independent Gaussian vector (chi distributed with c degrees of
    freedom), so each row has exactly the distribution of a Gaussian vector while the variance of the kernel
    estimate drops (ENLCA Sec. 3.1, after Eq. 7).

    Args:
        num_rows (int): m, the number of random features.
        num_cols (int): c, the embedding width.
        generator (torch.Generator | None): source of randomness (the global RNG when None).
        dtype (torch.dtype): dtype of the result. Default: torch.float32.

    Returns:
        Tensor: (num_rows, num_cols), on the CPU.
    """
    num_blocks = math.ceil(num_rows / num_cols)
    gaussian = torch.randn(num_blocks, num_cols, num_cols, generator=generator, dtype=torch.float64)
    orthogonal, triangular = torch.linalg.qr(gaussian)
    orthogonal = orthogonal * torch.sign(torch.diagonal(triangular, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = orthogonal.transpose(-2, -1).reshape(num_blocks * num_cols, num_cols)[:num_rows]  # (m, c)
    norms = torch.randn(num_rows, num_cols, generator=generator, dtype=torch.float64).norm(dim=1)
    return (rows * norms[:, None]).to(dtype)


def softmax_kernel_features(x: Tensor, projection: Tensor, *, is_query: bool, eps: float = 1e-4) -> Tensor:
    """phi(x) = m^-1/2 (exp(F x - |x|^2 / 2) + eps), so that phi(q)^T phi(k) estimates exp(q^T k) (Eq. 4).

    This is the official kernel (eps = 1e-4 keeps every normaliser positive), computed up to a factor e^s that
    cancels exactly in the attention of Eq. 5-6: with s a detached maximum of the exponent (per row for queries,
    per batch item for keys), the result is m^-1/2 (exp(F x - |x|^2 / 2 - s) + eps e^-s) = e^-s phi(x). A query's
    factor scales its numerator and denominator alike, a batch item's key factor scales every numerator and
    denominator of that item alike, eps included, so the attention equals the literal formula while no
    exponential exceeds 1 (float32 stays finite where exp(F x) alone would overflow).

    Args:
        x (Tensor): (b, n, c) embeddings, amplified (Q or K of Eq. 3).
        projection (Tensor): (m, c) random matrix F.
        is_query (bool): queries are scaled per row, keys per batch item.
        eps (float): added to every unscaled feature, the official code's 1e-4; 0 gives the unbiased estimator.

    Returns:
        Tensor: (b, n, m) non-negative features e^-s phi(x); the scale e^-s cancels in
        :func:`random_feature_attention`, not in a product phi(q)^T phi(k) on its own.
    """
    projected = torch.einsum('bnc,mc->bnm', x, projection)
    exponent = projected - x.pow(2).sum(dim=-1, keepdim=True) / 2
    reduce_dims = (-1, ) if is_query else (-2, -1)
    shift = exponent.detach().amax(dim=reduce_dims, keepdim=True)
    return (torch.exp(exponent - shift) + eps * torch.exp(-shift)) / math.sqrt(projection.shape[0])


def random_feature_attention(query: Tensor,
                             key: Tensor,
                             value: Tensor,
                             projection: Tensor,
                             eps: float = 1e-4) -> Tensor:
    """Y = D^-1 (phi(Q)^T (phi(K) V^T)), D = diag(phi(Q)^T (phi(K) 1_N)) (Eq. 5-6), in O(N m c).

    Keys meet values first, so no N x N tensor exists.

    Args:
        query (Tensor): (b, n, c) amplified queries Q.
        key (Tensor): (b, n, c) amplified keys K.
        value (Tensor): (b, n, c_out) values V.
        projection (Tensor): (m, c) random matrix F.
        eps (float): see :func:`softmax_kernel_features`.

    Returns:
        Tensor: (b, n, c_out) approximate softmax attention output.
    """
    query_features = softmax_kernel_features(query, projection, is_query=True, eps=eps)  # (b, n, m)
    key_features = softmax_kernel_features(key, projection, is_query=False, eps=eps)  # (b, n, m)
    context = torch.einsum('bnm,bnc->bmc', key_features, value)  # (b, m, c_out)
    normaliser = torch.einsum('bnm,bm->bn', query_features, key_features.sum(dim=1))  # diagonal of D
    return torch.einsum('bnm,bmc->bnc', query_features, context) / normaliser.unsqueeze(-1)
