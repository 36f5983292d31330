"""WithAttention: any registered BasicSR arch with attention blocks inserted after named submodules, from YAML.

    network_g:
      type: WithAttention
      base: {type: RCAN, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_group: 10, num_block: 20, upscale: 4}
      attention: {type: ENLCA}          # num_feat inferred from the base
      insert_after: [body.1, body.3, body.5, body.7, body.9]

Trained with ``ContrastiveSRModel``, the inserted blocks' contrastive losses apply as in our own networks.
"""
import copy
from typing import Any, Dict, List, Mapping, Sequence

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.utils.errors import OptionError, as_option_errors

BASE_PREFIX = 'base.'
ATTENTION_PREFIX = 'attention_blocks.'


def _build(opt: Dict[str, Any], key: str) -> nn.Module:
    if not isinstance(opt, dict) or 'type' not in opt:
        raise OptionError(f'WithAttention.{key} must be a mapping with a registered type, got {opt!r}')
    options = copy.deepcopy(opt)
    name = options.pop('type')
    if name not in ARCH_REGISTRY:
        raise OptionError(f"WithAttention.{key}.type: '{name}' is not a registered arch")
    with as_option_errors():  # BasicSR's archs and our blocks check their options with ValueError
        return ARCH_REGISTRY.get(name)(**options)


def _output_channels(base: nn.Module, names: Sequence[str], input_size: int) -> List[int]:
    """Channels of each named submodule's output, from one dummy forward of the base (eval mode, no grad)."""
    modules = dict(base.named_modules())
    shapes: Dict[str, tuple] = {}

    def remember_shape(name: str):

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:  # returns None: the output is unchanged
            shapes.setdefault(name, tuple(output.shape) if isinstance(output, Tensor) else ())

        return hook

    handles = [modules[name].register_forward_hook(remember_shape(name)) for name in names]
    first_param = next(base.parameters())
    in_channels = next(m for m in base.modules() if isinstance(m, nn.Conv2d)).in_channels
    was_training = base.training
    try:
        base.eval()
        with torch.no_grad():
            base(torch.zeros(1, in_channels, input_size, input_size, dtype=first_param.dtype))
    finally:
        base.train(was_training)
        for handle in handles:
            handle.remove()
    channels = []
    for name in names:
        if name not in shapes:
            raise OptionError(f"WithAttention.insert_after: '{name}' is not called in the base's forward")
        if len(shapes[name]) != 4:
            raise OptionError(f"WithAttention.insert_after: '{name}' outputs shape {shapes[name]}, not "
                              '(b, c, h, w); attention blocks need a feature map (transformer layers carry tokens: '
                              "for SwinIR use 'conv_after_body')")
        channels.append(shapes[name][1])
    return channels


@ARCH_REGISTRY.register()
class WithAttention(nn.Module):
    """A registered arch (``base``) with a registered attention block (``attention``) after each named submodule.

    The block's output replaces the submodule's output (a forward hook), so the base keeps its own forward.
    When ``attention`` omits ``num_feat``, each block's channel count is read from a dummy forward of the base at
    construction, so every parameter exists before the optimizer and DDP see the network. State dict keys are
    ``base.<base key>`` and ``attention_blocks.<i>.<block key>``; a checkpoint of the base alone (its own keys)
    loads too: the base strictly, the attention blocks keep their initialisation, and the log names them.
    Bad options raise OptionError, those that the base's or a block's constructor rejects with a ValueError
    included.

    Args:
        base (dict): options of the base arch, with ``type``.
        attention (dict): options of the block, with ``type`` (``ENLCA``, ``NLSA``, ``CCLNBlock``, ...).
        insert_after (Sequence[str]): names of base submodules (``dict(base.named_modules())`` keys).
        probe_size (int): side of the dummy input used to infer channels. Default: 32.
    """

    def __init__(self,
                 base: Dict[str, Any],
                 attention: Dict[str, Any],
                 insert_after: Sequence[str],
                 probe_size: int = 32) -> None:
        super().__init__()
        self.base = _build(base, 'base')
        if isinstance(insert_after, str) or not insert_after:
            raise OptionError(f'WithAttention.insert_after must be a non-empty list of module names, got '
                              f'{insert_after!r}')
        modules = dict(self.base.named_modules())
        unknown = [name for name in insert_after if name not in modules or name == '']
        if unknown:
            valid = [name for name in modules if name and name.count('.') <= 1]
            raise OptionError(f"WithAttention.insert_after: unknown module(s) {unknown} of {base['type']}; modules "
                              f"(two levels shown, deeper names work too): {', '.join(valid)}")
        self.insert_after = list(insert_after)
        if 'num_feat' in attention:
            channels = [attention['num_feat']] * len(self.insert_after)
        else:
            channels = _output_channels(self.base, self.insert_after, probe_size)
        self.attention_blocks = nn.ModuleList(
            _build({
                **attention, 'num_feat': num_feat
            }, 'attention') for num_feat in channels)
        for name, block in zip(self.insert_after, self.attention_blocks):
            modules[name].register_forward_hook(lambda _module, _inputs, output, block=block: block(output))

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load our own checkpoint, or one of the base alone (keys without ``base.``): then the base loads
        ``strict``ly and the attention blocks, new, keep their initialisation (listed in the log)."""
        if any(key.startswith((BASE_PREFIX, ATTENTION_PREFIX)) for key in state_dict):
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = self.base.load_state_dict(state_dict, strict=strict, assign=assign)
        new_keys = [key for key in self.state_dict() if key.startswith(ATTENTION_PREFIX)]
        get_root_logger().info(f'WithAttention: loaded base weights into {type(self.base).__name__}; new (not in the '
                               f'checkpoint, initialised): {len(new_keys)} keys of {len(self.attention_blocks)} '
                               f'attention blocks after {self.insert_after}')
        missing = [BASE_PREFIX + key for key in result.missing_keys] + new_keys
        return type(result)(missing, [BASE_PREFIX + key for key in result.unexpected_keys])
