"""The x8 self-ensemble (Lim et al., EDSR, CVPR-W 2017, Sec. 4.4): the SR of the eight flips and rotations of an
image, each transformed back, averaged. Test-time only; the papers' tables are without it unless marked ``+``.
"""
from typing import Callable, List, Tuple

import torch
from torch import Tensor

# (quarter turns, horizontal flip) of the dihedral group D4: the eight symmetries of a square.
SYMMETRIES: List[Tuple[int, bool]] = [(turns, flip) for flip in (False, True) for turns in range(4)]


def apply_symmetry(image: Tensor, turns: int, flip: bool) -> Tensor:
    """Flip left-right (if ``flip``), then rotate by ``turns`` quarter turns in the (h, w) plane."""
    if flip:
        image = image.flip(-1)
    return torch.rot90(image, turns, dims=(-2, -1))


def invert_symmetry(image: Tensor, turns: int, flip: bool) -> Tensor:
    """The inverse of ``apply_symmetry``: rotate back, then flip."""
    image = torch.rot90(image, -turns, dims=(-2, -1))
    return image.flip(-1) if flip else image


def self_ensemble_forward(forward: Callable[[Tensor], Tensor], lq: Tensor) -> Tensor:
    """Mean over the eight symmetries ``g`` of ``g^-1(forward(g(lq)))``; one forward at a time (memory of one)."""
    output = None
    for turns, flip in SYMMETRIES:
        sr = invert_symmetry(forward(apply_symmetry(lq, turns, flip)), turns, flip)
        output = sr if output is None else output + sr
    return output / len(SYMMETRIES)
