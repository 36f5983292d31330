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

    Evaluated as exp(F x - (|x|^2 / 2 + s + ln(m) / 2)) + eps e^-(s + ln(m) / 2), the same expression with the
    per-row terms gathered before the one pass over the (n, m) exponents, and s taken as the maximum over m of F x
    minus |x|^2 / 2 (then over n for keys): the maximum of the exponent, found without forming it.

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
    squared_norm = x.pow(2).sum(dim=-1, keepdim=True)  # (b, n, 1)
    shift = torch.add(projected.detach().amax(dim=-1, keepdim=True), squared_norm.detach(), alpha=-0.5)  # per row
    if not is_query:
        shift = shift.amax(dim=-2, keepdim=True)  # (b, 1, 1), per batch item
    return _shifted_features(projected, squared_norm, shift, eps)


def _shifted_features(projected: Tensor, squared_norm: Tensor, shift: Tensor, eps: float) -> Tensor:
    """m^-1/2 (exp(F x - |x|^2 / 2 - s) + eps e^-s) from F x (..., m), |x|^2 (..., 1) and the detached s, in one
    pass over the exponents (see :func:`softmax_kernel_features`). ``projected`` is overwritten, which autograd
    allows (the gradient of F x does not need F x); eps is added in place too where autograd does not record (the
    gradient of exp needs its result)."""
    log_factor = shift + math.log(projected.shape[-1]) / 2  # e^-s m^-1/2 = e^-log_factor
    features = projected.sub_(torch.add(log_factor, squared_norm, alpha=0.5)).exp_()
    if eps == 0:
        return features
    scaled_eps = torch.exp(math.log(eps) - log_factor)
    return features + scaled_eps if features.requires_grad else features.add_(scaled_eps)


def query_key_features(query_key: Tensor, projection: Tensor, eps: float = 1e-4) -> Tensor:
    """:func:`softmax_kernel_features` of queries and keys stacked in one tensor, each op run once for both.

    Args:
        query_key (Tensor): (b, 2, n, c), the amplified queries Q (``query_key[:, 0]``) and keys K (``[:, 1]``).
        projection (Tensor): (m, c) random matrix F.
        eps (float): see :func:`softmax_kernel_features`.

    Returns:
        Tensor: (b, 2, n, m), e^-s phi(Q) with s per row and e^-s phi(K) with s per batch item, the values of
        ``softmax_kernel_features(Q, F, is_query=True)`` and ``softmax_kernel_features(K, F, is_query=False)``.
    """
    # F expanded over (b, 2): einsum then batches over them instead of copying channel-first storage into one matrix
    projected = torch.einsum('binc,bimc->binm', query_key, projection.expand(query_key.shape[0], 2, -1, -1))
    squared_norm = query_key.pow(2).sum(dim=-1, keepdim=True)  # (b, 2, n, 1)
    shift = torch.add(projected.detach().amax(dim=-1, keepdim=True), squared_norm.detach(), alpha=-0.5)  # per row
    key_shift = shift[:, 1:].amax(dim=-2, keepdim=True).expand_as(shift[:, 1:])  # per batch item, for the keys
    return _shifted_features(projected, squared_norm, torch.cat([shift[:, :1], key_shift], dim=1), eps)


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


def folded_value_attention(query_key: Tensor,
                           inputs: Tensor,
                           value_weight: Tensor,
                           value_bias: Tensor,
                           projection: Tensor,
                           eps: float = 1e-4) -> Tensor:
    """:func:`random_feature_attention` of the values V = X W^T + 1_N b^T without forming V (Eq. 5-6 with the
    value map psi of Eq. 3 folded into the context).

    The keys meet the inputs first: phi(K)^T V = (phi(K)^T X) W^T + (phi(K)^T 1_N) b^T, an (m x c_out) context, then
    Y = D^-1 phi(Q) (phi(K)^T V) with D = diag(phi(Q) phi(K)^T 1_N), as in :func:`random_feature_attention`. This
    is exact algebra (associativity of the products, and the rows of phi(K) summed once for both the bias and D): it
    replaces the N x c_in x c_out value projection by an m x c_in x c_out one (m = 128 against N = h w positions).
    The features are those of :func:`softmax_kernel_features` (the official kernel, eps included; their scales
    cancel as there), computed for queries and keys together (:func:`query_key_features`), and no N x N tensor
    exists. D^-1 is applied to phi(Q) (N x m) rather than to Y (N x c_out).

    Args:
        query_key (Tensor): (b, 2, n, c), the amplified queries Q (``query_key[:, 0]``) and keys K (``[:, 1]``).
        inputs (Tensor): (b, n, c_in) inputs X of the value map.
        value_weight (Tensor): (c_out, c_in) weight W of the value map (a 1x1 convolution's, flattened).
        value_bias (Tensor): (c_out,) bias b of the value map.
        projection (Tensor): (m, c) random matrix F.
        eps (float): see :func:`softmax_kernel_features`.

    Returns:
        Tensor: (b, n, c_out) attention output, a transposed view of (b, c_out, n) storage, so that a channel-first
        caller reshapes it to (b, c_out, h, w) without a copy.
    """
    query_features, key_features = query_key_features(query_key, projection, eps=eps).unbind(1)  # (b, n, m) each
    key_sum = key_features.sum(dim=1)  # (b, m), phi(K)^T 1_N
    input_context = torch.einsum('bnm,bnc->bmc', key_features, inputs)  # (b, m, c_in), phi(K)^T X
    context = torch.addcmul(torch.einsum('bmc,oc->bmo', input_context, value_weight), key_sum.unsqueeze(-1), value_bias)
    normaliser = torch.einsum('bnm,bm->bn', query_features, key_sum)  # diagonal of D
    attended = torch.einsum('bnm,bmo->bon', query_features / normaliser.unsqueeze(-1), context)  # (b, c_out, n)
    return attended.transpose(1, 2)
