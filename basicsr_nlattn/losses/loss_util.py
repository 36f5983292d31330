"""Helpers shared by the contrastive losses."""
from typing import List, Sequence, Union

import torch
from torch import Tensor

from basicsr_nlattn.utils.errors import OptionError

Amount = Union[int, float]


def resolve_count(amount: Amount, total: int) -> int:
    """A fraction (float) of ``total`` -> round(fraction * total), at least 1; a count (int) stays as it is."""
    if isinstance(amount, float):
        return max(1, round(amount * total))
    return amount


def check_amount_type(value: Amount, where: str) -> None:
    """An amount is an int count or a float fraction (bool is neither)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f'{where} must be an int count or a float fraction, got {value!r}')


def float32_region(device: torch.device) -> torch.autocast:
    """A region where autocast is off on ``device``'s type: the contrastive losses (exp, logsumexp, ranking of
    similarities) run there on float32 inputs (:func:`to_float32`), also when the network ran under ``train.amp``."""
    return torch.autocast(device_type=device.type, enabled=False)


def to_float32(tensors: Sequence[Tensor]) -> List[Tensor]:
    """Each tensor in float32 at least (float64 stays float64; a no-op for float32 ones; autograd flows back to the
    lower-precision original)."""
    return [tensor.to(torch.promote_types(tensor.dtype, torch.float32)) for tensor in tensors]
