"""One level of the orthonormal 2-D Haar wavelet transform, and its inverse (PCL-SR's frequency embedding input).

Fixed filters, applied to each 2 x 2 block (a b / c d): LL = (a + b + c + d) / 2, LH = (a - b + c - d) / 2
(horizontal detail), HL = (a + b - c - d) / 2 (vertical detail), HH = (a - b - c + d) / 2. Orthonormal, so the
inverse is the transpose and DWT then IDWT is exact.
"""
from typing import Tuple

import torch
from torch import Tensor


def haar_dwt(x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """(b, c, h, w) with even h, w -> LL, LH, HL, HH, each (b, c, h / 2, w / 2)."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f'haar_dwt needs an even height and width, got {tuple(x.shape[-2:])}')
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return (a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2


def haar_idwt(ll: Tensor, lh: Tensor, hl: Tensor, hh: Tensor) -> Tensor:
    """Inverse of :func:`haar_dwt`: four (b, c, h, w) bands -> (b, c, 2h, 2w)."""
    b, c, h, w = ll.shape
    out = ll.new_empty(b, c, 2 * h, 2 * w)
    out[..., 0::2, 0::2] = (ll + lh + hl + hh) / 2
    out[..., 0::2, 1::2] = (ll - lh + hl - hh) / 2
    out[..., 1::2, 0::2] = (ll + lh - hl - hh) / 2
    out[..., 1::2, 1::2] = (ll - lh - hl + hh) / 2
    return out


def high_frequency_bands(x: Tensor) -> Tensor:
    """H_w of PCL-SR Eq. 7: LH, HL and HH stacked, (b, c, h, w) -> (b, 3c, h / 2, w / 2)."""
    _, lh, hl, hh = haar_dwt(x)
    return torch.cat([lh, hl, hh], dim=1)
