"""The pre-flight check of ``basicsr train``, ``basicsr test`` (and their ``-m basicsr_nlattn.train|test`` entry
points for torchrun) and ``basicsr infer``: every option that BasicSR would only reject deep inside
training, or after it has renamed folders, checked in one pass before anything is written.

``preflight`` runs at the end of BasicSR's ``parse_options``, before ``make_exp_dirs`` and ``mkdir_and_rename``
make, archive or rename any experiment, results or tb_logger folder, so bad input costs nothing: the message starts
with the full option key (``network_g.amplification: must be > 0, got -1``). Each option is checked by the code
that reads it in training (the networks' and losses' constructors, the models' parsers); the networks are built on
the meta device, so a full-size network allocates nothing.
"""
import contextlib
import copy
import difflib
import re
from os import path as osp
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from torch import nn

from basicsr_nlattn.data import parse_skip_bad
from basicsr_nlattn.models.contrastive_sr_model import (ContrastiveSRModel, check_contrastive_blocks,
                                                        check_no_data_parallel, contrastive_opt_key, parse_accumulate,
                                                        parse_channels_last, parse_compile, parse_contrastive_opt,
                                                        parse_grad_clip, parse_train_amp)
from basicsr_nlattn.models.nonfinite import parse_nonfinite
from basicsr_nlattn.models.pcl_model import PCLModel, check_embedding_network, parse_pcl_training
from basicsr_nlattn.models.tiled_inference import parse_amp, parse_self_ensemble, parse_tile_options
from basicsr_nlattn.tools.paper_results import paper_row_name
from basicsr_nlattn.training.resume import parse_keep_states
from basicsr_nlattn.utils.errors import OptionError

# 'ENLCA.amplification must be > 0, got -1' or 'WithAttention.base.type: ...': the class, the argument, the rest.
_ARGUMENT_MESSAGE = re.compile(
    r'(?P<owner>[A-Za-z_]\w*)\.(?P<argument>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::\s*|\s+)'
    r'(?P<rest>.+)', re.DOTALL)
# The TypeError of a call whose keyword arguments do not fit the signature (unknown, missing, repeated).
_SIGNATURE_MESSAGE = re.compile(r'[\w.]+\(\) (got an unexpected keyword argument|missing \d+ required|got multiple '
                                r'values for argument|takes \d+)')
# train.*_opt read by a model's own parser (below), and the one loss that is not built here: it loads VGG weights.
_PARSED_LOSSES = ('contrastive_opt', 'pcl_opt')
_TYPE_ONLY_LOSSES = ('perceptual_opt', )


def _registries() -> Dict[str, Any]:
    return {
        'arch': ARCH_REGISTRY,
        'dataset': DATASET_REGISTRY,
        'loss': LOSS_REGISTRY,
        'metric': METRIC_REGISTRY,
        'model': MODEL_REGISTRY
    }


def _check_registered(key: str, name: Any, kind: str) -> None:
    registry = _registries()[kind]
    if isinstance(name, str) and name in registry:
        return
    known = sorted(registry.keys())
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    raise OptionError(f"{key}: unknown {kind} type '{name}'.{hint} Registered {kind} types: {', '.join(known)}")


def _typed_entries(opt: Dict[str, Any]) -> Iterator[Tuple[str, Any, str]]:
    """(key, type name, registry kind) for every option that names a registered class."""
    yield 'model_type', opt.get('model_type'), 'model'
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            yield f'{key}.type', value.get('type'), 'arch'
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        yield f'datasets.{phase}.type', dataset_opt.get('type'), 'dataset'
    for key, value in (opt.get('train') or {}).items():
        entries: List[Any] = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            if key.endswith('_opt') and isinstance(entry, dict) and 'type' in entry:
                suffix = f'[{index}]' if isinstance(value, list) else ''
                yield f'train.{key}{suffix}.type', entry['type'], 'loss'
    for name, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        yield f'val.metrics.{name}.type', metric_opt.get('type'), 'metric'


def _check_paths(opt: Dict[str, Any]) -> None:
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        for key in ('dataroot_gt', 'dataroot_lq'):
            folder = dataset_opt.get(key)
            if folder is not None and not osp.exists(folder):
                raise OptionError(f"datasets.{phase}.{key}: folder '{folder}' does not exist "
                                  f'(relative paths are read from {osp.abspath(".")})')
        meta_info_file = dataset_opt.get('meta_info_file')
        if meta_info_file is not None and not osp.isfile(meta_info_file):
            raise OptionError(f"datasets.{phase}.meta_info_file: file '{meta_info_file}' does not exist")
        if (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb':
            _check_lmdb_pair(phase, dataset_opt)
    for key, value in (opt.get('path') or {}).items():
        if key.startswith('pretrain_network') and value is not None and not osp.isfile(value):
            raise OptionError(f"path.{key}: checkpoint '{value}' does not exist")
    resume_state = (opt.get('path') or {}).get('resume_state')
    if resume_state is not None and not opt.get('auto_resume') and not osp.isfile(resume_state):
        raise OptionError(f"path.resume_state: training state '{resume_state}' does not exist")


def _lmdb_keys(key: str, folder: str) -> List[str]:
    if not folder.endswith('.lmdb'):
        raise OptionError(f"{key}: '{folder}' is read with io_backend lmdb, so it must be an LMDB folder ending in "
                          "'.lmdb' (for a folder of images use io_backend: {type: disk})")
    meta_info = osp.join(folder, 'meta_info.txt')
    if not osp.isfile(meta_info):
        raise OptionError(f"{key}: LMDB '{folder}' has no meta_info.txt, which BasicSR reads for its keys (made by "
                          'scripts/prepare_div2k.py or basicsr.utils.lmdb_util.make_lmdb_from_imgs)')
    with open(meta_info, encoding='utf-8') as file:
        return sorted(line.split(' ')[0] for line in file if line.strip())


def _check_lmdb_pair(phase: str, dataset_opt: Dict[str, Any]) -> None:
    """Both LMDBs of a paired set have meta_info.txt and the same keys (BasicSR pairs them by key)."""
    keys = {}
    for key in ('dataroot_gt', 'dataroot_lq'):
        if dataset_opt.get(key) is not None:
            keys[key] = _lmdb_keys(f'datasets.{phase}.{key}', dataset_opt[key])
    if len(keys) == 2 and keys['dataroot_gt'] != keys['dataroot_lq']:
        only_gt = sorted(set(keys['dataroot_gt']) - set(keys['dataroot_lq']))[:3]
        only_lq = sorted(set(keys['dataroot_lq']) - set(keys['dataroot_gt']))[:3]
        raise OptionError(f"datasets.{phase}.dataroot_lq: the keys of '{dataset_opt['dataroot_lq']}' differ from "
                          f"those of '{dataset_opt['dataroot_gt']}' ({len(keys['dataroot_lq'])} vs "
                          f"{len(keys['dataroot_gt'])}; only in gt: {only_gt}, only in lq: {only_lq})")


def _located_message(key: str, options: Mapping[str, Any], message: str) -> str:
    """A constructor's message, starting with the option key: ``Class.argument rest`` becomes ``key.argument: rest``
    when ``argument`` is a key of ``options`` (or ``key.name.argument: rest`` for a nested mapping ``name`` of type
    ``Class``, e.g. ``network_g.attention.max_buckets``); any other message becomes ``key: message``."""
    match = _ARGUMENT_MESSAGE.match(message)
    if match:
        argument, rest = match['argument'], match['rest']
        head = argument.split('.')[0]
        if head in options:
            return f'{key}.{argument}: {rest}'
        for name, value in options.items():
            if isinstance(value, Mapping) and value.get('type') == match['owner'] and head in value:
                return f'{key}.{name}.{argument}: {rest}'
    return f'{key}: {message}'


@contextlib.contextmanager
def _constructor_errors_at(key: str, options: Mapping[str, Any]) -> Iterator[None]:
    """Inside the block, a constructor's ValueError (OptionError included) or TypeError (arguments that do not fit
    its signature, or a value of the wrong type such as ``amplification: abc``) is re-raised as an OptionError that
    starts with ``key`` (see :func:`_located_message`)."""
    try:
        yield
    except (ValueError, TypeError) as error:
        message = str(error)
        if isinstance(error, TypeError) and not _SIGNATURE_MESSAGE.match(message):
            message = f'a value of the wrong type ({message})'
        raise OptionError(_located_message(key, options, message)) from error


def build_network_on_meta(opt: Dict[str, Any], key: str) -> nn.Module:
    """Build the network of ``opt[key]`` as BasicSR's ``build_network`` would, but on the meta device: every
    argument is checked by the constructor and nothing is allocated (a full-size ENLCN included).

    A network whose constructor needs real tensors (an operation without a meta kernel, e.g. SwinIR's
    ``Tensor.item``) is built on the CPU instead. Neither build logs (BasicSR's root logger must not exist before
    the pipeline gives it its log file) or draws from the global random number generators' state.

    Args:
        opt (dict): the options; ``opt[key]`` is a mapping with a registered ``type``.
        key (str): ``network_g`` or ``network_d``.

    Returns:
        nn.Module: the network, its parameters on the meta device (or on the CPU, see above).
    """
    options = opt.get(key)
    if not isinstance(options, dict) or 'type' not in options:
        raise OptionError(f'{key}: must be a mapping with the network type and its arguments, got {options!r}')
    _check_registered(f'{key}.type', options['type'], 'arch')
    network_class = ARCH_REGISTRY.get(options['type'])
    arguments = {name: value for name, value in options.items() if name != 'type'}
    with _constructor_errors_at(key, options), torch.random.fork_rng(devices=[]):
        try:
            with torch.device('meta'):
                return network_class(**copy.deepcopy(arguments))
        except (NotImplementedError, RuntimeError):  # no meta kernel: not about the options, so build it for real
            return network_class(**copy.deepcopy(arguments))


def _build_loss(key: str, loss_opt: Dict[str, Any]) -> nn.Module:
    """The loss of ``loss_opt`` (a registered ``type`` and its arguments), built as BasicSR's ``build_loss`` would,
    without its log line; errors start with ``key``."""
    arguments = {name: value for name, value in loss_opt.items() if name != 'type'}
    with _constructor_errors_at(key, loss_opt):
        return LOSS_REGISTRY.get(loss_opt['type'])(**copy.deepcopy(arguments))


def _check_losses(train_opt: Dict[str, Any]) -> None:
    """Build every ``train.*_opt`` loss (a list too) except those a model parses itself and ``perceptual_opt``."""
    for key, value in train_opt.items():
        if not key.endswith('_opt') or key in _PARSED_LOSSES + _TYPE_ONLY_LOSSES:
            continue
        entries: List[Any] = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and 'type' in entry:
                _build_loss(f'train.{key}' + (f'[{index}]' if isinstance(value, list) else ''), entry)


def _check_model_training(opt: Dict[str, Any], net_g: nn.Module, net_d: Optional[nn.Module]) -> None:
    """What our models read in ``init_training_settings``, by their own parsers: ``train.contrastive_opt`` (its
    losses built and their blocks found in ``net_g``), ``train.grad_clip``, ``train.amp``, ``train.compile``,
    ``train.accumulate``, ``train.channels_last`` and ``train.nonfinite`` for ContrastiveSRModel and its subclasses;
    ``train.pcl_opt`` (its loss built, its layers found in ``net_d``), ``train.optim_d``, ``train.freeze_d`` and
    ``network_d`` for PCLModel."""
    model_class = MODEL_REGISTRY.get(opt['model_type'])
    train_opt = opt.get('train') or {}
    if issubclass(model_class, ContrastiveSRModel):
        contrastive_opt = train_opt.get('contrastive_opt')
        losses = [
            _build_loss(contrastive_opt_key(contrastive_opt, index), loss_opt)
            for index, (loss_opt, _) in enumerate(parse_contrastive_opt(contrastive_opt))
        ]
        check_contrastive_blocks(contrastive_opt, losses, net_g)
        parse_grad_clip(train_opt.get('grad_clip'))
        parse_train_amp(train_opt.get('amp', False))
        parse_compile(train_opt.get('compile', False))
        parse_accumulate(train_opt.get('accumulate', 1), model_class)
        parse_channels_last(train_opt.get('channels_last', False))
        parse_nonfinite(train_opt.get('nonfinite'))
    if issubclass(model_class, PCLModel):
        loss_opt = parse_pcl_training(opt).pcl['loss']  # raises first when network_d is missing
        check_embedding_network(opt, net_d)
        cri_pcl = _build_loss('train.pcl_opt', loss_opt)
        with _constructor_errors_at('train.pcl_opt', loss_opt):
            cri_pcl.check_layers(net_d.num_features)


def _check_long_run_options(opt: Dict[str, Any]) -> None:
    """What ``basicsr train``'s loop reads for any model: ``logger.keep_states`` and ``datasets.*.skip_bad`` (with
    ``skip_bad_max_fraction``)."""
    parse_keep_states((opt.get('logger') or {}).get('keep_states'))
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        parse_skip_bad(phase, dataset_opt or {})


def _check_inference_options(opt: Dict[str, Any]) -> None:
    """``val.tile``, ``val.self_ensemble`` and ``val.amp``, read by our models, ``basicsr test`` and
    ``basicsr infer``."""
    val_opt = opt.get('val') or {}
    parse_tile_options(val_opt.get('tile'))
    parse_self_ensemble(val_opt.get('self_ensemble', False))
    parse_amp('val.amp', val_opt.get('amp', False))


def check_options(opt: Dict[str, Any]) -> None:
    """Raise OptionError for the first option of a ``basicsr train`` or ``basicsr test`` run that cannot work.

    Checked, in order: ``name``; ``model_type``, every ``network_*.type``, ``datasets.*.type``, ``train.*_opt.type``
    and ``val.metrics.*.type`` are registered (the message lists the registered names); our models refuse
    ``num_gpu > 1`` without a launcher (DataParallel); ``network_g`` is built on
    the meta device (:func:`build_network_on_meta`); in training, ``network_d`` too, every ``train.*_opt`` loss is
    built (``perceptual_opt``: its type only, it loads VGG weights), and our models' own options are parsed by
    their parsers (``train.contrastive_opt`` with the blocks its losses need in ``network_g``,
    ``train.grad_clip``, ``train.amp``, ``train.compile``, ``train.accumulate``, ``train.channels_last``,
    ``train.nonfinite``, ``train.pcl_opt`` with ``network_d`` and ``train.optim_d``), ``logger.keep_states`` and
    ``datasets.*.skip_bad``; ``val.tile``, ``val.self_ensemble``, ``val.amp``
    and ``val.compare_to_paper`` parse; dataset folders, ``meta_info_file``, ``path.pretrain_network_*`` and
    ``path.resume_state`` exist; LMDB datasets have ``meta_info.txt`` and, paired, the same keys.

    Args:
        opt (dict): The option dictionary after BasicSR's ``parse_options`` (``is_train`` set).
    """
    if not opt.get('name'):
        raise OptionError('name: every option file needs a name (it names the experiment folder)')
    for key, name, kind in _typed_entries(opt):
        _check_registered(key, name, kind)
    if issubclass(MODEL_REGISTRY.get(opt['model_type']), ContrastiveSRModel):
        check_no_data_parallel(opt)
    net_g = build_network_on_meta(opt, 'network_g')
    if opt.get('is_train'):
        net_d = build_network_on_meta(opt, 'network_d') if 'network_d' in opt else None
        _check_losses(opt.get('train') or {})
        _check_model_training(opt, net_g, net_d)
        _check_long_run_options(opt)
    _check_inference_options(opt)
    paper_row_name(opt)
    _check_paths(opt)


def check_inference_options(opt: Dict[str, Any]) -> None:
    """The part of :func:`check_options` that ``basicsr infer`` reads from an option file (before it writes
    anything): ``scale``, ``network_g`` (built on the meta device), ``val.tile`` and ``val.self_ensemble``.

    Args:
        opt (dict): The option file as read by ``load_option_file``.
    """
    scale = opt.get('scale')
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise OptionError(f'scale: the upscaling factor must be an int >= 1, got {scale!r}')
    build_network_on_meta(opt, 'network_g')
    _check_inference_options(opt)


def preflight(opt: Dict[str, Any]) -> None:
    """What ``basicsr train`` and ``basicsr test`` do with the options BasicSR has just parsed (with the experiment
    or results root of the option file already honoured), before any folder is made: :func:`check_options`; then,
    under a launcher, each rank says who it is.

    Args:
        opt (dict): The option dictionary after BasicSR's ``parse_options``.
    """
    check_options(opt)
    if opt['dist']:
        # BasicSR prints 'Disable distributed.' for one process; each rank of a launch says who it is, before
        # the logger exists (BasicSR's root logger is silent on ranks other than 0).
        backend = torch.distributed.get_backend()
        print(f"Distributed: rank {opt['rank']} of world size {opt['world_size']} ({backend}).", flush=True)
