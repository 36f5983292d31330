"""Softmax attention of each chunk of a sorted sequence to its own and its two neighbouring chunks (NLSA Eq. 10),
a group of chunks at a time, without a logits-sized tensor for the whole sequence.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Eq. 10. The
backward recomputes each group's logits from the queries, keys, values and per-query logsumexp, as memory-efficient
attention does (Rabe and Staats, "Self-attention Does Not Need O(n^2) Memory", 2021; Dao et al., "FlashAttention",
2022).

Layout (chunk-major, so that a group of chunks and its neighbours are contiguous views):
    query (k, B, s, c'): chunk j of sequence i is query[j, i];
    key (k + 2h, B, s, c') and value (k + 2h, B, s, c): with h = 1, key[j], key[j + 1], key[j + 2] are the
    previous, the own and the next chunk of query chunk j (the caller puts the last chunk before the first and the
    first after the last); with h = 0 (a single chunk), key[j] is the own chunk only.
"""
from typing import List, Tuple

import torch
from torch import Tensor

# Logits held at once by one group of chunks, in elements: 2 MiB in float32 on a CPU, so that a group stays in the
# caches; 64 MiB on a GPU, so that a group is a few large kernels rather than many small ones.
LOGITS_PER_GROUP = 1 << 19
LOGITS_PER_GROUP_CUDA = 1 << 24
LOG2_E = 1.4426950408889634  # 1 / ln 2


def _neighbour_offsets(query: Tensor, key: Tensor) -> Tuple[int, ...]:
    """The key chunks of query chunk j are key[j + t] for t in these offsets."""
    halo = key.shape[0] - query.shape[0]
    if halo not in (0, 2):
        raise ValueError(f'chunk attention: key needs k or k + 2 chunks for k = {query.shape[0]}, got {key.shape[0]}')
    return (0, 1, 2) if halo else (0, )


def chunk_groups(query: Tensor, num_offsets: int) -> List[Tuple[int, int]]:
    """[start, stop) chunk ranges whose logits (chunks x B x s x s x offsets) fit the device's logits budget."""
    num_chunks, batch, chunk = query.shape[:3]
    per_chunk = batch * chunk * chunk * num_offsets
    budget = LOGITS_PER_GROUP_CUDA if query.device.type == 'cuda' else LOGITS_PER_GROUP
    size = max(1, budget // per_chunk)
    return [(start, min(start + size, num_chunks)) for start in range(0, num_chunks, size)]


def _rows(tensor: Tensor, start: int, stop: int) -> Tensor:
    """Chunks [start, stop) of a chunk-major (k, B, s, d) tensor as a batch of matrices (G B, s, d), a view."""
    return tensor[start:stop].reshape(-1, tensor.shape[2], tensor.shape[3])


def _windows(tensor: Tensor, start: int, stop: int, offsets: Tuple[int, ...], overlap: bool = False) -> Tensor:
    """The neighbouring chunks of query chunks [start, stop), (G B, len(offsets) s, d): one copy of a group, which
    stays in the caches, so that each query row meets its whole window in one product. With ``overlap`` and one
    sequence (B = 1) the windows are overlapping views of the contiguous chunks instead, without a copy (as fast to
    read for the output product, not for the logits)."""
    if len(offsets) == 1:
        return _rows(tensor, start + offsets[0], stop + offsets[0])
    if overlap and tensor.shape[1] == 1 and tensor.is_contiguous():
        chunk, dim = tensor.shape[2], tensor.shape[3]
        return tensor.as_strided((stop - start, len(offsets) * chunk, dim), (chunk * dim, dim, 1),
                                 tensor.storage_offset() + start * chunk * dim)
    windows = torch.cat([tensor[start + t:stop + t] for t in offsets], dim=2)  # (G, B, 3 s, d)
    return windows.view(-1, windows.shape[2], windows.shape[3])


def chunk_attention_forward(query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor]:
    """Eq. 10 for every query: softmax over its chunk and the neighbouring ones, and the logsumexp of its logits.

    Args:
        query (Tensor): (k, B, s, c') sorted queries, chunk-major.
        key (Tensor): (k + 2h, B, s, c') sorted keys with the neighbouring chunks (see the module docstring).
        value (Tensor): (k + 2h, B, s, c) sorted values, laid out as the keys.

    Returns:
        (Tensor, Tensor): outputs (k, B, s, c) in the query's dtype and logsumexp (k, B, s) in float32 at least.
    """
    offsets = _neighbour_offsets(query, key)
    num_chunks, batch, chunk, _ = query.shape
    channels = value.shape[-1]
    stat_dtype = torch.promote_types(query.dtype, torch.float32)
    # Without autograd or a trace, each group's product writes straight into the output (no concatenation).
    in_place = not torch.jit.is_tracing() and not (torch.is_grad_enabled()
                                                   and any(t.requires_grad for t in (query, key, value)))
    output = query.new_empty(num_chunks, batch, chunk, channels) if in_place else None
    # Logits in base 2 (queries scaled by log2 e): exp2 runs several times faster than exp on CPUs; in base e under a
    # trace, as ONNX has no base-2 exponential.
    scale, exponential, logarithm = (1.0, torch.exp_, torch.log) if torch.jit.is_tracing() else (LOG2_E, torch.exp2_,
                                                                                                 torch.log2)
    outputs, logsumexps = [], []
    for start, stop in chunk_groups(query, len(offsets)):
        logits = torch.bmm(_rows(query, start, stop) * scale, _windows(key, start, stop, offsets).transpose(1, 2))
        row_max = logits.amax(dim=-1, keepdim=True)  # (G B, s, 1)
        weights = exponential(logits.sub_(row_max))  # unnormalised: the output rows are divided by their sums once
        row_sum = weights.sum(dim=-1, keepdim=True, dtype=stat_dtype)
        values = _windows(value, start, stop, offsets, overlap=in_place)
        if in_place:
            torch.bmm(weights, values, out=_rows(output, start, stop)).div_(row_sum)
        else:
            outputs.append((torch.bmm(weights, values) / row_sum).to(query.dtype).view(stop - start, batch, chunk, -1))
        logsumexps.append(((row_max.to(stat_dtype) + logarithm(row_sum)) / scale).view(stop - start, batch, chunk))
    return output if in_place else torch.cat(outputs), torch.cat(logsumexps)


def chunk_attention_backward(query: Tensor, key: Tensor, value: Tensor, logsumexp: Tensor, grad_out: Tensor,
                             row_offset: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients with respect to query, key and value of outputs of ``chunk_attention_forward``, logits recomputed
    group by group from the saved logsumexp.

    With p_ij = exp(q_i . k_j - L_i) and do_i the gradient reaching o_i = sum_j p_ij v_j: dv_j = sum_i p_ij do_i,
    ds_ij = p_ij (do_i . v_j - r_i), dq_i = sum_j ds_ij k_j, dk_j = sum_i ds_ij q_i. For the outputs alone
    r_i = do_i . o_i; when L_i is used too (Eq. 11), r_i = do_i . o_i - dL_i: the caller gives r (``row_offset``).

    Args:
        query, key, value (Tensor): as for ``chunk_attention_forward``.
        logsumexp (Tensor): (k, B, s) the forward's logsumexp.
        grad_out (Tensor): (k, B, s, c) gradient reaching the outputs.
        row_offset (Tensor): (k, B, s) r_i above.

    Returns:
        (Tensor, Tensor, Tensor): gradients shaped as query, key and value (key and value gradients include the
        neighbouring chunks' copies, which the caller adds to their positions).
    """
    offsets = _neighbour_offsets(query, key)
    num_chunks, batch, chunk, _ = query.shape
    grad_key, grad_value = torch.zeros_like(key), torch.zeros_like(value)
    grad_queries = []
    for start, stop in chunk_groups(query, 2 * len(offsets)):  # probabilities and their gradients at once
        queries, grads = _rows(query, start, stop), _rows(grad_out, start, stop)
        keys, values = _windows(key, start, stop, offsets), _windows(value, start, stop, offsets)
        lse = logsumexp[start:stop].reshape(-1, chunk, 1) * LOG2_E
        offset = row_offset[start:stop].reshape(-1, chunk, 1)
        probs = torch.bmm(queries * LOG2_E, keys.transpose(1, 2)).sub_(lse).exp2_()  # (G B, s, window), as forward
        grad_logits = torch.bmm(grads, values.transpose(1, 2)).sub_(offset).mul_(probs)
        grad_queries.append(torch.bmm(grad_logits, keys).view(stop - start, batch, chunk, -1))
        grad_keys = torch.bmm(grad_logits.transpose(1, 2), queries).view(stop - start, batch, len(offsets), chunk, -1)
        grad_values = torch.bmm(probs.transpose(1, 2), grads).view(stop - start, batch, len(offsets), chunk, -1)
        for index, t in enumerate(offsets):  # each part of the window back to its chunks
            grad_key[start + t:stop + t] += grad_keys[:, :, index]
            grad_value[start + t:stop + t] += grad_values[:, :, index]
    return torch.cat(grad_queries), grad_key, grad_value
