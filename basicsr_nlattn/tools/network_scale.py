"""``scale`` against the upscaling factor of ``network_g``: a mismatch is otherwise a shape error in the first
training step (or wrong-sized tiles in ``basicsr test``).

The factor is read from the network's ``upscale`` (BasicSR's EDSR, RCAN, SwinIR and ours) or ``scale`` (RRDBNet)
argument, given or defaulted by its constructor, or from that of the network it wraps (``WithAttention``'s
``base``); a network with none of these is run once on the meta device on a small input, which costs nothing (and
is skipped when the forward cannot run there).
"""
import inspect
from typing import Any, Mapping, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from basicsr_nlattn.utils.errors import OptionError

UPSCALE_ARGUMENTS = ('upscale', 'scale')
_PROBE_SIZE = 16  # LR pixels of the meta-device forward


def _argument_upscale(network_opt: Mapping[str, Any], key: str = 'network_g') -> Optional[Tuple[str, Any, str]]:
    """(key, value, where it comes from) of the network's upscale argument, given in ``network_opt`` or the
    constructor's default; for a network without one, that of a network it wraps (an argument that is itself a
    network's options, e.g. ``WithAttention``'s ``base``)."""
    parameters = inspect.signature(ARCH_REGISTRY.get(network_opt['type'])).parameters
    for name in UPSCALE_ARGUMENTS:
        if name in network_opt:
            return f'{key}.{name}', network_opt[name], 'given'
        if name in parameters and parameters[name].default is not parameters[name].empty:
            return f'{key}.{name}', parameters[name].default, f"the default of {network_opt['type']}"
    for name in network_opt:
        value = network_opt[name]
        if isinstance(value, Mapping) and value.get('type') in ARCH_REGISTRY:
            found = _argument_upscale(value, f'{key}.{name}')
            if found is not None:
                return found
    return None


def _forward_upscale(net: nn.Module, network_opt: Mapping[str, Any]) -> Optional[int]:
    """The factor by which ``net`` (on the meta device) enlarges a small input, or None when that forward cannot
    run on the meta device (or the network is not on it)."""
    parameters = list(net.parameters())
    if not parameters or not all(p.is_meta for p in parameters):
        return None
    channels = network_opt.get('num_in_ch', 3)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            output = net(torch.empty(1, channels, _PROBE_SIZE, _PROBE_SIZE, device='meta'))
    except Exception:  # noqa: B902  (no meta kernel, a data-dependent step...: the factor stays unknown)
        return None
    finally:
        net.train(was_training)
    if not isinstance(output, torch.Tensor) or output.dim() != 4 or output.shape[-1] % _PROBE_SIZE:
        return None
    return output.shape[-1] // _PROBE_SIZE


def check_network_scale(opt: Mapping[str, Any], net_g: nn.Module) -> None:
    """Raise OptionError when ``network_g`` does not upscale by ``scale`` (nothing is checked without ``scale``).

    Args:
        opt (dict): the options (``scale`` checked as an int >= 1, ``network_g`` with a registered type).
        net_g (nn.Module): ``network_g`` as the pre-flight check built it (on the meta device, or the CPU).
    """
    scale = opt.get('scale')
    if scale is None:
        return
    argument = _argument_upscale(opt['network_g'])
    if argument is not None:
        key, upscale, origin = argument
        if upscale != scale:
            raise OptionError(f'{key}: must equal scale ({scale}), got {upscale!r} ({origin})')
        return
    upscale = _forward_upscale(net_g, opt['network_g'])
    if upscale is not None and upscale != scale:
        raise OptionError(f'network_g: must upscale by scale ({scale}), got x{upscale} (a {_PROBE_SIZE}x{_PROBE_SIZE} '
                          f'input gives {_PROBE_SIZE * upscale}x{_PROBE_SIZE * upscale})')
