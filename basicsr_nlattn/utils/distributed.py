"""Small agreements between the ranks of a ``torch.distributed`` run; without one, each is the local value."""
from typing import Any, List

import torch


def is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def agree_on_ranks(flags: List[bool], device: torch.device) -> List[int]:
    """Per flag, 0 when no rank raised it, else the highest rank that did plus one: one all-reduce (MAX) in a
    distributed run, nothing otherwise."""
    if not is_distributed():
        return [int(flag) for flag in flags]
    rank = torch.distributed.get_rank()
    values = torch.tensor([(rank + 1) if flag else 0 for flag in flags], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.MAX)
    return [int(value) for value in values.tolist()]


def gather_on_all_ranks(value: Any) -> List[Any]:
    """``value`` of every rank, in rank order (``all_gather_object``); ``[value]`` without a distributed run."""
    if not is_distributed():
        return [value]
    gathered: List[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered
