"""The one way the commands get a network from an option file and a checkpoint: :func:`load_network`.

``basicsr test`` (through BasicSR's model, with ``path.param_key_g`` from :func:`checkpoint_param_key`), ``infer``,
``export``, ``attention`` and ``flops`` read the same weights from one checkpoint: the entry ``path.param_key_g``
when the option file sets it, else ``params_ema``, else ``params``, else the file's own mapping.
"""
import copy
from typing import Any, Dict, Optional

import torch
from torch import nn

from basicsr_nlattn.tools.option_check import build_network_on_meta
from basicsr_nlattn.utils.checkpoint_files import read_network_state
from basicsr_nlattn.utils.errors import OptionError, as_option_errors


def weights_file(opt: Dict[str, Any], weights: Optional[str] = None) -> Optional[str]:
    """The checkpoint :func:`load_network` reads: ``weights``, else ``path.pretrain_network_g``, else None."""
    return weights or (opt.get('path') or {}).get('pretrain_network_g')


def random_weights_seed(opt: Dict[str, Any]) -> int:
    """The seed of the weights of a network built without a checkpoint: ``manual_seed``, else 0."""
    return opt.get('manual_seed') or 0


def checkpoint_param_key(path: str) -> Optional[str]:
    """BasicSR's ``param_key`` for the weights :func:`load_network` reads from ``path``: ``'params_ema'``,
    ``'params'``, or None (the file's own mapping)."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    return next((key for key in ('params_ema', 'params') if key in checkpoint), None)


def first_load_problem(error: RuntimeError) -> str:
    """The first problem ``load_state_dict`` lists (one per line after its heading), and how many follow."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    problems = lines[1:] or lines
    more = f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''
    return problems[0] + more


def load_network(opt: Dict[str, Any], weights: Optional[str] = None) -> nn.Module:
    """``network_g`` of the options ``opt``, on the CPU in eval mode, with the weights of a checkpoint.

    The checkpoint is ``weights``, else ``path.pretrain_network_g``; from it the entry ``path.param_key_g`` when the
    option file sets it, else ``params_ema``, else ``params``, else the file's own mapping, loaded with
    ``path.strict_load_g`` (default true). Without a checkpoint the weights are random, drawn from a generator
    seeded with ``manual_seed`` (0 when unset); the global random state is left as it was.

    Args:
        opt (dict): the options of an option file (:func:`~basicsr_nlattn.utils.option_file.load_option_file`).
        weights (str, optional): a checkpoint to read instead of ``path.pretrain_network_g``. Default: None.

    Returns:
        nn.Module: the network, in eval mode.

    Raises:
        OptionError: starting with the option or flag at fault (``network_g...``, ``--weights``,
        ``path.pretrain_network_g``, ``path.param_key_g``), before any weights are read into the network.
    """
    from basicsr.archs import build_network

    build_network_on_meta(opt, 'network_g')  # a registered type and arguments its constructor accepts
    path_opt = opt.get('path') or {}
    checkpoint = weights_file(opt, weights)
    key = '--weights' if weights else 'path.pretrain_network_g'
    state = read_network_state(checkpoint, key, path_opt.get('param_key_g')) if checkpoint else None
    with torch.random.fork_rng(devices=[]), as_option_errors():
        torch.manual_seed(random_weights_seed(opt))
        net = build_network(copy.deepcopy(opt['network_g']))
    if state is not None:
        try:
            net.load_state_dict(state, strict=path_opt.get('strict_load_g', True))
        except RuntimeError as error:
            raise OptionError(f"{key}: '{checkpoint}' does not fit network_g ({opt['network_g']['type']}): "
                              f'{first_load_problem(error)}') from error
    return net.eval()
