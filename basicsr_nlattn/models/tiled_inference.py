"""Inference on images of any size: ``val.tile`` for every model of this package.

``val.tile: {size: 64, overlap: 16}`` cuts the LR image into size x size tiles, runs each with ``overlap`` LR pixels
of context on every side and keeps only its centre: for a network whose receptive field fits in the overlap
(a conv-only net), the result equals the untiled forward. ``val.tile: {mode: chop}`` is the official evaluation that
the ENLCN and NLSN checkpoints were published with (``forward_chop``, see :func:`chop_forward`): four overlapping
quadrants with the official rounding of their size, chopped again while a quadrant holds at least ``min_size``
pixels, so converted official checkpoints reproduce the published numbers.
"""
from typing import Any, Dict, Optional

import torch
from torch import Tensor, nn

from basicsr_nlattn.models.self_ensemble import self_ensemble_forward
from basicsr_nlattn.utils import validators

TILE_KEYS = {'tile': {'mode', 'size', 'overlap'}, 'chop': {'mode', 'shave', 'min_size'}}


def parse_tile_options(tile_opt: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Validate ``val.tile`` and fill its defaults; None means whole-image inference."""
    if tile_opt is None:
        return None
    validators.mapping('val.tile', tile_opt, example='{size: 64, overlap: 16} or {mode: chop}')
    mode = validators.choice('val.tile.mode', tile_opt.get('mode', 'tile'), sorted(TILE_KEYS))
    validators.reject_unknown_keys('val.tile', tile_opt, TILE_KEYS[mode], f" for mode '{mode}'")
    if mode == 'tile':
        return {
            'mode': mode,
            'size': validators.int_at_least('val.tile.size', tile_opt.get('size'), 1, ' (LR pixels)'),
            'overlap': validators.int_at_least('val.tile.overlap', tile_opt.get('overlap', 0), 0, ' (LR pixels)')
        }
    return {
        'mode': mode,
        'shave': validators.int_at_least('val.tile.shave', tile_opt.get('shave', 10), 0),
        'min_size': validators.int_at_least('val.tile.min_size', tile_opt.get('min_size', 120000), 1)
    }


AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def parse_amp(key: str, value: Any) -> Optional[torch.dtype]:
    """Validate ``train.amp`` or ``val.amp`` (``key``): ``bf16`` or ``fp16`` -> the autocast dtype, false -> None
    (float32). Callers default a missing key to false."""
    if value is False:
        return None
    return AMP_DTYPES[validators.choice(key, value, list(AMP_DTYPES), ' or false')]


def autocast_to(device: torch.device, dtype: Optional[torch.dtype]) -> torch.autocast:
    """``torch.autocast`` on ``device``'s type to ``dtype`` (from :func:`parse_amp`); off when ``dtype`` is None."""
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def parse_self_ensemble(value: Any) -> bool:
    """Validate ``val.self_ensemble`` (callers default a missing key to false)."""
    return validators.boolean('val.self_ensemble', value)


def tiled_forward(net: nn.Module, lq: Tensor, scale: int, size: int, overlap: int) -> Tensor:
    """Run ``net`` tile by tile; (b, c, h, w) -> (b, c', scale h, scale w)."""
    _, _, height, width = lq.shape
    output = None
    for top in range(0, height, size):
        for left in range(0, width, size):
            bottom, right = min(top + size, height), min(left + size, width)
            in_top, in_left = max(top - overlap, 0), max(left - overlap, 0)
            patch = net(lq[..., in_top:min(bottom + overlap, height), in_left:min(right + overlap, width)])
            if output is None:
                output = patch.new_zeros(patch.shape[0], patch.shape[1], height * scale, width * scale)
            offset_top, offset_left = (top - in_top) * scale, (left - in_left) * scale
            output[..., top * scale:bottom * scale,
                   left * scale:right * scale] = patch[..., offset_top:offset_top + (bottom - top) * scale,
                                                       offset_left:offset_left + (right - left) * scale]
    return output


def chop_forward(net: nn.Module, lq: Tensor, scale: int, shave: int = 10, min_size: int = 120000) -> Tensor:
    """The official evaluation (``forward_chop`` of the ENLCA and NLSN code, from EDSR-PyTorch), one GPU's way.

    The four corner quadrants of (h // 2 + shave) x (w // 2 + shave) LR pixels, the height then rounded up by
    ``h_size += 4 - h_size % 4`` and the width by ``w_size += 8 - w_size % 8`` (both always add, also on an exact
    multiple), are run one at a time with the whole batch, or chopped again the same way while the rounded
    h_size * w_size is at least ``min_size``; each output quadrant keeps the part nearest its own corner.

    Differs from the official code only where it breaks: when the rounded quadrant exceeds the image (LR sides
    below about 2 (shave + 4)), the official slicing takes wrong rows or columns and the assembly fails; here the
    quadrant is clipped to the image on that side. A quadrant clipped to the whole image is run whole instead of
    chopped again (the official recursion would not end).

    Args:
        net (nn.Module): the network, (b, c, h, w) -> (b, c', scale h, scale w).
        lq (Tensor): (b, c, h, w) LR batch.
        scale (int): the network's upscaling factor.
        shave (int): LR pixels of overlap beyond each half. Default: 10.
        min_size (int): quadrants of at least this many (rounded) LR pixels are chopped again. Default: 120000.

    Returns:
        Tensor: (b, c', scale h, scale w).
    """
    _, _, height, width = lq.shape
    half_h, half_w = height // 2, width // 2
    size_h, size_w = half_h + shave, half_w + shave
    size_h += 4 - size_h % 4
    size_w += 8 - size_w % 8
    chop_again = size_h * size_w >= min_size
    size_h, size_w = min(size_h, height), min(size_w, width)
    quadrants = [
        lq[..., :size_h, :size_w], lq[..., :size_h, width - size_w:], lq[..., height - size_h:, :size_w],
        lq[..., height - size_h:, width - size_w:]
    ]
    if chop_again and (size_h, size_w) != (height, width):
        outputs = [chop_forward(net, quadrant, scale, shave, min_size) for quadrant in quadrants]
    else:
        outputs = [net(quadrant) for quadrant in quadrants]
    height, width, half_h, half_w = height * scale, width * scale, half_h * scale, half_w * scale
    size_h, size_w = size_h * scale, size_w * scale
    output = outputs[0].new_empty(*outputs[0].shape[:2], height, width)
    output[..., :half_h, :half_w] = outputs[0][..., :half_h, :half_w]
    output[..., :half_h, half_w:] = outputs[1][..., :half_h, size_w - width + half_w:]
    output[..., half_h:, :half_w] = outputs[2][..., size_h - height + half_h:, :half_w]
    output[..., half_h:, half_w:] = outputs[3][..., size_h - height + half_h:, size_w - width + half_w:]
    return output


def super_resolve(net: nn.Module,
                  lq: Tensor,
                  scale: int,
                  tile: Optional[Dict[str, Any]] = None,
                  self_ensemble: bool = False) -> Tensor:
    """``net(lq)`` whole, tiled or chopped as ``tile`` (from ``parse_tile_options``) says; with ``self_ensemble``
    the mean over the eight flips/rotations, each tiled or chopped like the image."""

    def forward(image: Tensor) -> Tensor:
        if tile is None:
            return net(image)
        if tile['mode'] == 'chop':
            return chop_forward(net, image, scale, tile['shave'], tile['min_size'])
        return tiled_forward(net, image, scale, tile['size'], tile['overlap'])

    return self_ensemble_forward(forward, lq) if self_ensemble else forward(lq)


class TiledInferenceMixin:
    """Model mixin: ``test()`` runs the network whole, tiled or chopped, as ``val.tile`` says (module docstring),
    and averages the x8 self-ensemble when ``val.self_ensemble: true`` (``self_ensemble.py``); with ``val.amp:
    bf16 | fp16`` (default false) under ``torch.autocast`` to that dtype, the output cast back to float32.

    Put it before BasicSR's model class: ``class MyModel(TiledInferenceMixin, SRModel)``.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        val_opt = opt.get('val') or {}
        self.tile = parse_tile_options(val_opt.get('tile'))
        self.self_ensemble = parse_self_ensemble(val_opt.get('self_ensemble', False))
        self.val_amp = parse_amp('val.amp', val_opt.get('amp', False))
        super().__init__(opt)

    def inference(self, net: nn.Module, lq: Tensor) -> Tensor:
        """SR of ``lq`` by ``net`` (already in eval mode, under no_grad), following ``val.tile`` and
        ``val.self_ensemble``."""
        return super_resolve(net, lq, self.opt['scale'], self.tile, self.self_ensemble)

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        with torch.no_grad(), autocast_to(self.lq.device, self.val_amp):
            output = self.inference(net, self.lq)
        self.output = output.to(torch.promote_types(output.dtype, torch.float32))  # float32 after val.amp
        net.train(was_training)
