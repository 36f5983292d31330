"""Official checkpoints (EDSR-PyTorch layout) -> this package's layout, saved as ``{'params': state_dict}``.

The official ENLCN and NLSN code (both built on EDSR-PyTorch) keeps the whole trunk in one ``body`` list (attention
blocks, residual blocks, then the last conv) with ``head``/``tail`` around it and ``sub_mean``/``add_mean``
mean-shift convolutions. Ours follows
BasicSR's EDSR names (``conv_first``, ``body``, ``conv_after_body``, ``upsample``, ``conv_last``) and keeps the mean
as a derived buffer. The converter checks that the checkpoint is exactly the official network of the requested
arch and scale (every key, every shape) before writing anything.

Usage: ``basicsr convert --arch ENLCN --scale 4 model_x4.pt ENLCN_x4.pth`` then
``path: {pretrain_network_g: ENLCN_x4.pth, strict_load_g: true}``.
"""
import os
import re
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.archs.enlcn_arch import ENLCN
from basicsr_nlattn.archs.nlsn_arch import NLSN
from basicsr_nlattn.utils.checkpoint_files import atomic_torch_save
from basicsr_nlattn.utils.errors import CheckpointError

DEFAULT_RGB_MEAN = (0.4488, 0.4371, 0.4040)
ENLCA_KEYS = {
    'conv_match1.0.weight': 'query_conv.weight',
    'conv_match1.0.bias': 'query_conv.bias',
    'conv_match2.0.weight': 'key_conv.weight',
    'conv_match2.0.bias': 'key_conv.bias',
    'conv_assembly.0.weight': 'value_conv.weight',
    'conv_assembly.0.bias': 'value_conv.bias',
    'attn_fn.projection_matrix': 'random_features',
}
NLSA_KEYS = {
    'conv_match.0.weight': 'match_conv.weight',
    'conv_match.0.bias': 'match_conv.bias',
    'conv_assembly.0.weight': 'value_conv.weight',
    'conv_assembly.0.bias': 'value_conv.bias',
}
RESIDUAL_KEYS = {
    'body.0.weight': 'conv1.weight',
    'body.0.bias': 'conv1.bias',
    'body.2.weight': 'conv2.weight',
    'body.2.bias': 'conv2.bias'
}

AttentionKeys = Dict[str, str]


def _trunk_key(official: str, body: nn.Sequential, attention_type: type,
               attention_keys: AttentionKeys) -> Optional[str]:
    """Our name for one official key of the EDSR-PyTorch trunk, or None when it has no counterpart."""
    if official.startswith(('sub_mean.', 'add_mean.')):
        return None
    match = re.fullmatch(r'head\.0\.(weight|bias)', official)
    if match:
        return f'conv_first.{match.group(1)}'
    match = re.fullmatch(r'tail\.1\.(weight|bias)', official)
    if match:
        return f'conv_last.{match.group(1)}'
    match = re.fullmatch(r'tail\.0\.(\d+\.(?:weight|bias))', official)
    if match:
        return f'upsample.{match.group(1)}'
    match = re.fullmatch(r'body\.(\d+)\.(.+)', official)
    if not match:
        raise CheckpointError(f"unexpected key '{official}'")
    index, rest = int(match.group(1)), match.group(2)
    if index == len(body):
        return f'conv_after_body.{rest}'
    if index > len(body):
        raise CheckpointError(f"unexpected key '{official}': the body has {len(body) + 1} entries")
    table = attention_keys if isinstance(body[index], attention_type) else RESIDUAL_KEYS
    if rest not in table:
        raise CheckpointError(f"unexpected key '{official}' for body entry {index} "
                              f'({type(body[index]).__name__})')
    return f'body.{index}.{table[rest]}'


def _check_mean(state: Dict[str, Tensor], rgb_mean) -> None:
    if 'sub_mean.bias' not in state:
        return
    # EDSR-PyTorch's MeanShift subtracts rgb_range * mean / std with std = 1: its bias is -mean at rgb_range 1
    found = (-state['sub_mean.bias'].double()).tolist()
    if any(abs(a - b) > 1e-4 for a, b in zip(found, rgb_mean)):
        raise CheckpointError(f'sub_mean.bias: the checkpoint subtracts the mean {found} (rgb_range 1), not '
                              f'{list(rgb_mean)}; set network_g.rgb_mean (and img_range) to match')


def convert_state_dict(official: Dict[str, Tensor], arch: str, scale: int) -> Dict[str, Tensor]:
    """Map an official state dict onto ours; every key and shape is checked against the official network."""
    if arch not in NETWORKS:
        raise CheckpointError(f"--arch must be one of {sorted(NETWORKS)}, got '{arch}'")
    with torch.device('meta'):  # names and shapes only: no memory, no initialisation
        network = NETWORKS[arch](scale)
    expected = network.state_dict()
    converted = {}
    for key, tensor in official.items():
        ours = _trunk_key(key, network.body, *ATTENTION_BLOCKS[arch])
        if ours is None:
            continue
        if ours not in expected:
            raise CheckpointError(f"unexpected key '{key}': not part of an official {arch} x{scale}")
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise CheckpointError(f"key '{key}' has shape {tuple(tensor.shape)}, an official {arch} x{scale} has "
                                  f'{tuple(expected[ours].shape)} (wrong --scale or not an {arch} checkpoint?)')
        converted[ours] = tensor
    missing = sorted(set(expected) - set(converted))
    if missing:
        raise CheckpointError(f'the checkpoint lacks {len(missing)} key(s) of an official {arch} x{scale}, first: '
                              f'{missing[:3]} (in our names)')
    _check_mean(official, DEFAULT_RGB_MEAN)
    return {key: converted[key] for key in expected}


def load_official(path: str) -> Dict[str, Tensor]:
    """Load an official checkpoint (a plain state dict; ``{'state_dict': ...}`` / ``{'model': ...}`` also work)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"input checkpoint '{path}' does not exist")
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    for wrapper in ('state_dict', 'model', 'params'):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"'{path}' does not hold a state dict of tensors")
    return {key[len('module.'):] if key.startswith('module.') else key: value for key, value in loaded.items()}


def convert_checkpoint(arch: str, scale: int, input_path: str, output_path: str) -> List[str]:
    """Convert ``input_path`` and write ``{'params': state_dict}`` to ``output_path`` (never over the input).

    Returns:
        list[str]: the official keys that were dropped (mean-shift convolutions: our mean is derived).
    """
    if os.path.abspath(input_path) == os.path.abspath(output_path):
        raise CheckpointError('OUT must differ from IN: the converter never overwrites the official checkpoint')
    official = load_official(input_path)
    converted = convert_state_dict(official, arch, scale)
    atomic_torch_save({'params': converted}, output_path)
    return sorted(key for key in official if key.startswith(('sub_mean.', 'add_mean.')))


NETWORKS: Dict[str, Callable[[int], nn.Module]] = {
    'ENLCN': lambda scale: ENLCN(upscale=scale),
    'NLSN': lambda scale: NLSN(upscale=scale),
}
ATTENTION_BLOCKS: Dict[str, Tuple[type, Dict[str, str]]] = {'ENLCN': (ENLCA, ENLCA_KEYS), 'NLSN': (NLSA, NLSA_KEYS)}
