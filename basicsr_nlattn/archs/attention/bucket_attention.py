"""NLSA's attention given each round's bucket order (Eq. 10-11), with a backward that keeps no per-round tensor.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Eq. 10-11.

Each round gathers its sorted queries, keys and values chunk-major (``chunk_attention``), attends, and scatters the
outputs back to the original order; Eq. 11 combines the rounds as they come. In training, ``SparseAttention``
saves only the unsorted queries, keys and values, the order, every round's logsumexp and the combined output, and
its backward recomputes each round, group by group. The gradient of Eq. 11 through a round's logsumexp L_r,
dL_r = w_r (g . o_r - g . out) with w_r = softmax_r(L_r), enters the chunk backward as its row offset: with the
gradient do_r = w_r g reaching the round's outputs, ds = p (dp - do_r . o_r + dL_r) = p (dp - w_r g . out).
"""
from typing import Iterable, List, Tuple

import torch
from torch import Tensor

from basicsr_nlattn.archs.attention.chunk_attention import chunk_attention_backward, chunk_attention_forward


def _chunk_major_rows(order: Tensor, num_positions: int, chunk: int, with_neighbours: bool) -> Tensor:
    """Rows of the flattened (b n, d) inputs for each sorted position, chunk-major: (b, r, k s) -> (k [+ 2], b r, s).

    With neighbours, the last chunk is put before the first and the first after the last, so that chunks j, j + 1,
    j + 2 are the previous, the own and the next chunk of chunk j (cyclic, as the official code; with two chunks the
    other one is both).
    """
    b, rounds, length = order.shape
    rows = order + torch.arange(b, device=order.device).view(b, 1, 1) * num_positions
    rows = rows.reshape(b * rounds, length // chunk, chunk).transpose(0, 1)  # (k, b r, s)
    if with_neighbours:
        rows = torch.cat([rows[-1:], rows, rows[:1]])
    return rows


def _gather_rows(tensor: Tensor, rows: Tensor) -> Tensor:
    """(b, n, d) and (k, B, s) row indices -> (k, B, s, d)."""
    return tensor.reshape(-1, tensor.shape[-1]).index_select(0, rows.reshape(-1)).view(*rows.shape, -1)


def _unsort(sorted_values: Tensor, order: Tensor, num_positions: int) -> Tensor:
    """Chunk-major (k, b r, s, d) values of the sorted positions -> (b, r, n, d) in the original order, the padded
    tail dropped (its positions are written to a spare row; every other row is written once)."""
    b, rounds, length = order.shape
    sequence = torch.arange(b * rounds, device=order.device).view(b, rounds, 1)
    destination = torch.where(
        torch.arange(length, device=order.device) < num_positions, order + sequence * num_positions,
        b * rounds * num_positions)
    destination = destination.reshape(b * rounds, -1, sorted_values.shape[2]).transpose(0, 1).reshape(-1)
    flat = sorted_values.reshape(-1, sorted_values.shape[-1])
    unsorted = flat.new_empty(b * rounds * num_positions + 1, flat.shape[-1]).index_copy_(0, destination, flat)
    return unsorted[:-1].view(b, rounds, num_positions, -1)


def _sorted_rows(order: Tensor, num_positions: int, chunk: int) -> Tuple[Tensor, Tensor]:
    """The rows of the keys and values (with the neighbouring chunks when there are several) and of the queries."""
    rows = _chunk_major_rows(order, num_positions, chunk, with_neighbours=order.shape[-1] > chunk)
    return rows, (rows[1:-1] if order.shape[-1] > chunk else rows)


def attend_in_sorted_order(query: Tensor, key: Tensor, value: Tensor, order: Tensor,
                           chunk: int) -> Tuple[Tensor, Tensor]:
    """Eq. 10 along sorted, padded sequences: each chunk attends to itself and its two neighbouring chunks.

    Args:
        query (Tensor): (b, n, c') queries.
        key (Tensor): (b, n, c') keys.
        value (Tensor): (b, n, c) values.
        order (Tensor): (b, rounds, k * s) sorted positions of each round, padded (``chunked_order``).
        chunk (int): s, positions per chunk.

    Returns:
        (Tensor, Tensor): outputs (b, rounds, n, c) and their logsumexp (b, rounds, n), in the original order.
    """
    n = query.shape[1]
    rows, own_rows = _sorted_rows(order, n, chunk)
    attended, logsumexp = chunk_attention_forward(
        _gather_rows(query, own_rows), _gather_rows(key, rows), _gather_rows(value, rows))
    return _unsort(attended, order, n), _unsort(logsumexp.unsqueeze(-1), order, n).squeeze(-1)


def combine_rounds(rounds: Iterable[Tuple[Tensor, Tensor]]) -> Tensor:
    """Eq. 11: weight round r by sum_j f(x_i, x_j) over its bucket, normalised over rounds (a softmax of the rounds'
    logsumexp), accumulated as the rounds come so that no (rounds, n, c) tensor exists.

    With M the running maximum of the logsumexps L_r: A = sum_r exp(L_r - M) o_r, Z = sum_r exp(L_r - M), output
    A / Z. In float32 at least, in place: for outputs that need no gradient (``SparseAttention`` differentiates it).

    Args:
        rounds (Iterable[Tuple[Tensor, Tensor]]): per round, its outputs (b, n, c) Att(x_i, delta_{r,i}) (Eq. 10)
            and their logsumexp (b, n), log sum_j f(x_i, x_j).

    Returns:
        Tensor: (b, n, c).
    """
    total = norm = running_max = None
    for attended, logsumexp in rounds:
        dtype = torch.promote_types(attended.dtype, torch.float32)
        attended, logsumexp = attended.to(dtype), logsumexp.to(dtype).unsqueeze(-1)
        if total is None:
            total, norm, running_max = attended, torch.ones_like(logsumexp), logsumexp
            continue
        new_max = torch.maximum(running_max, logsumexp)
        old_scale, new_scale = torch.exp(running_max - new_max), torch.exp(logsumexp - new_max)
        total, norm = total.mul_(old_scale).add_(attended.mul_(new_scale)), norm.mul_(old_scale).add_(new_scale)
        running_max = new_max
    if total is None:
        raise ValueError('combine_rounds needs at least one round')
    return total.div_(norm)


def _attend_and_combine(query: Tensor, key: Tensor, value: Tensor, order: Tensor, chunk: int) -> Tuple[Tensor, Tensor]:
    """Every round in turn, combined by Eq. 11: the output (b, n, c) and the rounds' logsumexp (b, rounds, n)."""
    logsumexps: List[Tensor] = []

    def rounds() -> Iterable[Tuple[Tensor, Tensor]]:
        for round_index in range(order.shape[1]):
            attended, logsumexp = attend_in_sorted_order(query, key, value, order[:, round_index:round_index + 1],
                                                         chunk)
            logsumexps.append(logsumexp[:, 0])
            yield attended[:, 0], logsumexp[:, 0]

    out = combine_rounds(rounds())
    return out, torch.stack(logsumexps, dim=1)


class SparseAttention(torch.autograd.Function):
    """``_attend_and_combine`` with the memory-efficient backward of the module docstring."""

    @staticmethod
    def forward(ctx, query: Tensor, key: Tensor, value: Tensor, order: Tensor, chunk: int) -> Tensor:
        out, logsumexps = _attend_and_combine(query, key, value, order, chunk)
        ctx.chunk = chunk
        ctx.save_for_backward(query, key, value, order, logsumexps, out)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> Tuple[Tensor, Tensor, Tensor, None, None]:
        query, key, value, order, logsumexps, out = ctx.saved_tensors
        b, n, _ = query.shape
        grad_out = grad_out.to(out.dtype)
        weights = torch.softmax(logsumexps, dim=1)  # (b, r, n), w_r of Eq. 11
        projected = (grad_out * out).sum(dim=-1)  # (b, n), g . out
        grads = [torch.zeros(b * n, t.shape[-1], dtype=out.dtype, device=t.device) for t in (query, key, value)]
        # the padded tail's queries were dropped: their gradients are zero
        kept = (torch.arange(order.shape[-1], device=order.device) < n).expand(b, -1)
        kept = kept.reshape(b, -1, ctx.chunk).transpose(0, 1).unsqueeze(-1)  # (k, b, s, 1), sorted positions
        for round_index in range(order.shape[1]):
            round_order = order[:, round_index:round_index + 1]
            rows, own_rows = _sorted_rows(round_order, n, ctx.chunk)
            weight = weights[:, round_index].unsqueeze(-1)  # (b, n, 1)
            grad_round = _gather_rows(weight * grad_out, own_rows).mul_(kept).to(query.dtype)
            row_offset = _gather_rows(weight * projected.unsqueeze(-1), own_rows).mul_(kept).squeeze(-1)
            logsumexp = _gather_rows(logsumexps[:, round_index].unsqueeze(-1), own_rows).squeeze(-1)
            sorted_grads = chunk_attention_backward(
                _gather_rows(query, own_rows), _gather_rows(key, rows), _gather_rows(value, rows), logsumexp,
                grad_round, row_offset)
            for grad, index, sorted_grad in zip(grads, (own_rows, rows, rows), sorted_grads):
                grad.index_add_(0, index.reshape(-1), sorted_grad.reshape(-1, grad.shape[-1]).to(grad.dtype))
        grad_query, grad_key, grad_value = (grad.view(b, n, -1).to(t.dtype)
                                            for grad, t in zip(grads, (query, key, value)))
        return grad_query, grad_key, grad_value, None, None


def sparse_attention(query: Tensor, key: Tensor, value: Tensor, order: Tensor, chunk: int) -> Tensor:
    """Eq. 10-11 given each round's sorted, padded order: (b, n, c) in float32 at least.

    Args:
        query (Tensor): (b, n, c') queries.
        key (Tensor): (b, n, c') keys.
        value (Tensor): (b, n, c) values.
        order (Tensor): (b, rounds, k * s) sorted positions of each round, padded (``chunked_order``).
        chunk (int): s, positions per chunk.

    Returns:
        Tensor: (b, n, c) the rounds' outputs combined by Eq. 11.

    Autocast is off inside: the products run in autocast's dtype when it is on (else the inputs'), Eq. 11, the row
    sums and the logsumexp in float32 at least. The same arithmetic with and without autograd.
    """
    device_type = query.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = torch.promote_types(torch.promote_types(query.dtype, key.dtype), value.dtype)
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    with torch.autocast(device_type=device_type, enabled=False):
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        if needs_grad and not torch.jit.is_tracing():  # a trace (ONNX export) records the forward's operations
            return SparseAttention.apply(query, key, value, order, chunk)
        return _attend_and_combine(query, key, value, order, chunk)[0]
