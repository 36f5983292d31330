"""Helpers shared by the contrastive losses."""
from typing import Union

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
