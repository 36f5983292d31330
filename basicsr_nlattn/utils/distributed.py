"""Small agreements between the ranks of a ``torch.distributed`` run; without one, each is the local value."""
from typing import Any, List

import torch


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def collective_device() -> torch.device:
    """Where a collective's tensors live: the current CUDA device under NCCL, else the CPU (gloo, or no group)."""
    if is_distributed() and torch.distributed.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def max_over_ranks(values: List[int], device: torch.device) -> List[int]:
    """Each value's maximum over the ranks: one all-reduce (MAX) in a distributed run, the values otherwise."""
    if not is_distributed():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return [int(value) for value in tensor.tolist()]


def agree_on_ranks(flags: List[bool], device: torch.device) -> List[int]:
    """Per flag, 0 when no rank raised it, else the highest rank that did plus one (``max_over_ranks``)."""
    rank = torch.distributed.get_rank() if is_distributed() else 0
    return max_over_ranks([(rank + 1) if flag else 0 for flag in flags], device)


def gather_on_all_ranks(value: Any) -> List[Any]:
    """``value`` of every rank, in rank order (``all_gather_object``); ``[value]`` without a distributed run."""
    if not is_distributed():
        return [value]
    gathered: List[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def release_process_group() -> None:
    """Destroy the default process group, if any, before the process exits: a gloo group still alive when the
    interpreter tears down can abort the process ("terminate called without an active exception") after the run
    has ended and chosen its exit status."""
    if is_distributed():
        torch.distributed.destroy_process_group()
