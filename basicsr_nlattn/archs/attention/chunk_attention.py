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
    stat_dtype = torch.promote_types(query.dtype, torch.float32)
    outputs, logsumexps = [], []
    for start, stop in chunk_groups(query, len(offsets)):
        queries = _rows(query, start, stop)  # (G B, s, c')
        logits = [torch.bmm(queries, _rows(key, start + t, stop + t).transpose(1, 2)) for t in offsets]
        row_max = logits[0].amax(dim=-1, keepdim=True)  # (G B, s, 1)
        for part in logits[1:]:
            row_max = torch.maximum(row_max, part.amax(dim=-1, keepdim=True))
        attended, row_sum = None, None
        for t, part in zip(offsets, logits):
            weights = part.sub_(row_max).exp_()  # unnormalised: divided once, on the (G B, s, c) output
            part_sum = weights.sum(dim=-1, keepdim=True, dtype=stat_dtype)
            part_out = torch.bmm(weights, _rows(value, start + t, stop + t))
            row_sum = part_sum if row_sum is None else row_sum.add_(part_sum)
            attended = part_out if attended is None else attended.add_(part_out)
        outputs.append((attended / row_sum).to(query.dtype).view(stop - start, batch, chunk, -1))
        logsumexps.append((row_max.to(stat_dtype) + torch.log(row_sum)).view(stop - start, batch, chunk))
    return torch.cat(outputs), torch.cat(logsumexps)


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
    for start, stop in chunk_groups(query, 2):  # one neighbour at a time: its probabilities and their gradients
        queries, grads = _rows(query, start, stop), _rows(grad_out, start, stop)
        lse = logsumexp[start:stop].reshape(-1, chunk, 1)
        offset = row_offset[start:stop].reshape(-1, chunk, 1)
        grad_query = None
        for t in offsets:
            keys, values = _rows(key, start + t, stop + t), _rows(value, start + t, stop + t)
            probs = torch.bmm(queries, keys.transpose(1, 2)).sub_(lse).exp_()
            grad_logits = torch.bmm(grads, values.transpose(1, 2)).sub_(offset).mul_(probs)
            part = torch.bmm(grad_logits, keys)
            grad_query = part if grad_query is None else grad_query.add_(part)
            grad_key[start + t:stop + t] += torch.bmm(grad_logits.transpose(1, 2), queries).view(
                -1, batch, chunk, key.shape[-1])
            grad_value[start + t:stop + t] += torch.bmm(probs.transpose(1, 2), grads).view(
                -1, batch, chunk, value.shape[-1])
        grad_queries.append(grad_query.view(stop - start, batch, chunk, -1))
    return torch.cat(grad_queries), grad_key, grad_value
