"""WithAttention: any registered BasicSR arch with attention blocks inserted after named submodules, from YAML.

    network_g:
      type: WithAttention
      base: {type: RCAN, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_group: 10, num_block: 20, upscale: 4}
      attention: {type: ENLCA}          # num_feat inferred from the base
      insert_after: [body.1, body.3, body.5, body.7, body.9]   # also the default for this base

Trained with ``ContrastiveSRModel``, the inserted blocks' contrastive losses apply as in our own networks.
"""
import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.utils.errors import OptionError, as_option_errors

BASE_PREFIX = 'base.'
ATTENTION_PREFIX = 'attention_blocks.'
DEFAULT_NUM_BLOCKS = 5  # NLSN, ENLCN and CCLNN each have five attention blocks


def _build(opt: Dict[str, Any], key: str) -> nn.Module:
    if not isinstance(opt, dict) or 'type' not in opt:
        raise OptionError(f'WithAttention.{key} must be a mapping with a registered type, got {opt!r}')
    options = copy.deepcopy(opt)
    name = options.pop('type')
    if name not in ARCH_REGISTRY:
        raise OptionError(f"WithAttention.{key}.type: '{name}' is not a registered arch")
    with as_option_errors():  # BasicSR's archs and our blocks check their options with ValueError
        return ARCH_REGISTRY.get(name)(**options)


def candidate_modules(base: nn.Module) -> List[str]:
    """Where blocks usually go, as the error messages list them: the base's top-level children and the children of
    its ``body`` (RCAN: ``conv_first, body, body.0, ..., body.9, conv_after_body, upsample, conv_last``)."""
    names = []
    for name, child in base.named_children():
        names.append(name)
        if name == 'body':
            names.extend(f'body.{block}' for block, _ in child.named_children())
    return names


def default_insert_after(base: nn.Module) -> Optional[List[str]]:
    """After n evenly spaced blocks of the base's ``body`` (an ``nn.Sequential`` or ``nn.ModuleList``), the last
    one included, n = min(5, len(body)): block (j + 1) * len(body) // n - 1 for j = 0 .. n - 1. RCAN's 10 groups:
    ``body.1, body.3, body.5, body.7, body.9``; EDSR's 32 blocks: ``body.5, body.11, body.18, body.24, body.31``.
    None when the base has no such body (SwinIR)."""
    body = getattr(base, 'body', None)
    if not isinstance(body, (nn.Sequential, nn.ModuleList)) or len(body) == 0:
        return None
    blocks = [name for name, _ in body.named_children()]
    count = min(DEFAULT_NUM_BLOCKS, len(blocks))
    return [f'body.{blocks[(j + 1) * len(blocks) // count - 1]}' for j in range(count)]


class _AttentionHook:
    """The forward hook after one base submodule: its output is replaced by ``block(output)``.

    An object holding the block, not a closure: ``copy.deepcopy`` of the network (an EMA copy, timm's ModelEmaV2,
    ``torch.optim.swa_utils.AveragedModel``) copies it through its memo, so the copy's hooks call the copy's own
    blocks; a closure would be shared and keep running the original's.
    """

    def __init__(self, block: nn.Module) -> None:
        self.block = block

    def __call__(self, _module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        return self.block(output)


def _output_channels(base: nn.Module, names: Sequence[str], input_size: int, key: str) -> List[int]:
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
            raise OptionError(f"{key}: '{name}' is not called in the base's forward")
        if len(shapes[name]) != 4:
            raise OptionError(f"{key}: '{name}' outputs shape {shapes[name]}, not "
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
    included; an unknown name, or an omitted ``insert_after`` on a base without a ``body`` of blocks, lists the
    candidates (``candidate_modules``).

    Copies are independent: a ``copy.deepcopy`` (an EMA made by deepcopy included) runs its own blocks with its own
    parameters, and ``torch.compile`` runs those of the module it compiles (``_AttentionHook``).
    ``torch.nn.DataParallel`` is not supported (its replicas share the hooks and drop the blocks' records); train on
    several GPUs with DDP (``--launcher pytorch``).

    Args:
        base (dict): options of the base arch, with ``type``.
        attention (dict): options of the block, with ``type`` (``ENLCA``, ``NLSA``, ``CCLNBlock``, ...).
        insert_after (Sequence[str] | None): names of base submodules (``dict(base.named_modules())`` keys) whose
            outputs the blocks replace. Default: None, after five evenly spaced blocks of the base's ``body`` (all of
            them when it has fewer), the last one included (``default_insert_after``; RCAN with 10 groups:
            ``[body.1, body.3, body.5, body.7, body.9]``); a base without an ``nn.Sequential`` / ``nn.ModuleList``
            ``body`` needs the names.
        probe_size (int): side of the dummy input used to infer channels. Default: 32.
    """

    def __init__(self,
                 base: Dict[str, Any],
                 attention: Dict[str, Any],
                 insert_after: Optional[Sequence[str]] = None,
                 probe_size: int = 32) -> None:
        super().__init__()
        self.base = _build(base, 'base')
        key = 'WithAttention.insert_after'
        defaulted = insert_after is None
        if defaulted:
            insert_after = default_insert_after(self.base)
            if insert_after is None:
                raise OptionError(f"{key} is required: {base['type']} has no body of blocks (nn.Sequential or "
                                  'nn.ModuleList) to place the attention blocks after by default; name submodules '
                                  f"that output (b, c, h, w), candidates: {', '.join(candidate_modules(self.base))}")
            key = f'{key} (omitted, the default {insert_after})'
        elif isinstance(insert_after, str) or not insert_after:
            raise OptionError(f'{key} must be a non-empty list of module names, got {insert_after!r}; candidates: '
                              f"{', '.join(candidate_modules(self.base))}")
        modules = dict(self.base.named_modules())
        unknown = [name for name in insert_after if name not in modules or name == '']
        if unknown:
            raise OptionError(f"{key}: unknown module(s) {unknown} of {base['type']}; candidates (deeper names of "
                              f"dict(base.named_modules()) work too): {', '.join(candidate_modules(self.base))}")
        self.insert_after = list(insert_after)
        if 'num_feat' in attention:
            channels = [attention['num_feat']] * len(self.insert_after)
        else:
            channels = _output_channels(self.base, self.insert_after, probe_size, key)
        self.attention_blocks = nn.ModuleList(
            _build({
                **attention, 'num_feat': num_feat
            }, 'attention') for num_feat in channels)
        for name, block in zip(self.insert_after, self.attention_blocks):
            modules[name].register_forward_hook(_AttentionHook(block))
        if defaulted:
            get_root_logger().info(f'WithAttention: insert_after omitted, {type(self.attention_blocks[0]).__name__} '
                                   f"after {', '.join(self.insert_after)} (evenly spaced blocks of the base's body)")

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
