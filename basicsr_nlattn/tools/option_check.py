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
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
from torch import nn

from basicsr_nlattn.data.dataset_options import parse_dataset_options
from basicsr_nlattn.models.contrastive_sr_model import (ContrastiveSRModel, ContrastiveTraining,
                                                        check_contrastive_blocks, check_no_data_parallel,
                                                        contrastive_opt_key)
from basicsr_nlattn.models.pcl_model import PCLTraining, check_embedding_network
from basicsr_nlattn.models.sr_options import parse_sr_validation
from basicsr_nlattn.models.tiled_inference import parse_amp, parse_self_ensemble, parse_tile_options
from basicsr_nlattn.models.training_options import parse_training
from basicsr_nlattn.tools.launch_options import check_launch_options
from basicsr_nlattn.tools.network_scale import check_network_scale
from basicsr_nlattn.tools.paper_results import paper_row_name
from basicsr_nlattn.tools.path_check import check_checkpoint_paths, check_dataset_files
from basicsr_nlattn.training.run_options import parse_run_options
from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError

# 'ENLCA.amplification must be > 0, got -1' or 'WithAttention.base.type: ...': the class, the argument, the rest.
_ARGUMENT_MESSAGE = re.compile(
    r'(?P<owner>[A-Za-z_]\w*)\.(?P<argument>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::\s*|\s+)'
    r'(?P<rest>.+)', re.DOTALL)
# The TypeError of a call whose keyword arguments do not fit the signature (unknown, missing, repeated).
_SIGNATURE_MESSAGE = re.compile(r'[\w.]+\(\) (got an unexpected keyword argument|missing \d+ required|got multiple '
                                r'values for argument|takes \d+)')
# train.*_opt built from a model's parsed options (below), and the one loss that is not built here: it loads VGG
# weights.
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
    """``name`` is one that BasicSR's ``Registry.get`` finds: registered as it is, or with BasicSR's suffix
    ``_basicsr`` (BasicSR registers e.g. ``UNetDiscriminatorSN_basicsr`` and finds it as ``UNetDiscriminatorSN``)."""
    registry = _registries()[kind]
    if isinstance(name, str) and (name in registry or f'{name}_basicsr' in registry):
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
    train_opt = opt.get('train') or {}
    for key in train_opt:  # the losses only: a key is read when a check needs its value
        if not key.endswith('_opt'):
            continue
        value = train_opt[key]
        entries: List[Any] = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and 'type' in entry:
                suffix = f'[{index}]' if isinstance(value, list) else ''
                yield f'train.{key}{suffix}.type', entry['type'], 'loss'
    metrics = (opt.get('val') or {}).get('metrics')
    if isinstance(metrics, Mapping):  # else its parser says what it must be
        for name in metrics:
            if isinstance(metrics[name], Mapping) and 'type' in metrics[name]:
                yield f'val.metrics.{name}.type', metrics[name]['type'], 'metric'


def _check_paths(opt: Dict[str, Any]) -> None:
    """The files the options name: dataset folders and LMDBs, checkpoints (:mod:`.path_check`)."""
    check_dataset_files(opt)
    check_checkpoint_paths(opt)


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
    """Inside the block, a constructor's ValueError (OptionError included), NotImplementedError (BasicSR's way to
    refuse a value, e.g. GANLoss's ``gan_type``) or TypeError (arguments that do not fit its signature, or a value of
    the wrong type such as ``amplification: abc``) is re-raised as an OptionError that starts with ``key`` (see
    :func:`_located_message`)."""
    try:
        yield
    except (ValueError, TypeError, NotImplementedError) as error:
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
    for key in train_opt:
        if not key.endswith('_opt') or key in _PARSED_LOSSES + _TYPE_ONLY_LOSSES:
            continue
        value = train_opt[key]
        entries: List[Any] = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and 'type' in entry:
                _build_loss(f'train.{key}' + (f'[{index}]' if isinstance(value, list) else ''), entry)


def _check_model_training(opt: Dict[str, Any], model_class: type, net_g: nn.Module, net_d: Optional[nn.Module]) -> None:
    """The training options of ``model_class``, read by the parser its class (or the nearest class of its MRO) has:
    BasicSR's SRModel and SRGANModel (optimizers, scheduler, losses, EMA, the discriminator's schedule), ours
    (ContrastiveSRModel's and PCLModel's own keys besides). Then what needs the networks: the blocks each contrastive
    loss reads in ``net_g``, PCL's embedding network and its layers."""
    settings = parse_training(opt, model_class)
    if isinstance(settings, ContrastiveTraining):
        contrastive_opt = opt['train'].get('contrastive_opt')
        losses = [
            _build_loss(contrastive_opt_key(contrastive_opt, index), loss_opt)
            for index, (loss_opt, _) in enumerate(settings.contrastive)
        ]
        check_contrastive_blocks(contrastive_opt, losses, net_g)
    if isinstance(settings, PCLTraining):
        check_embedding_network(opt, net_d)
        loss_opt = settings.pcl['loss']
        cri_pcl = _build_loss('train.pcl_opt', loss_opt)
        with _constructor_errors_at('train.pcl_opt', loss_opt):
            cri_pcl.check_layers(net_d.num_features)


def _check_inference_options(opt: Dict[str, Any]) -> None:
    """``val.tile``, ``val.self_ensemble`` and ``val.amp``, read by our models, ``basicsr test`` and
    ``basicsr infer``."""
    val_opt = opt.get('val') or {}
    parse_tile_options(val_opt.get('tile'))
    parse_self_ensemble(val_opt.get('self_ensemble', False))
    parse_amp('val.amp', val_opt.get('amp', False))


def _check_scale(opt: Dict[str, Any]) -> Optional[int]:
    """``scale``: absent (each set may give its own) or an int >= 1."""
    if opt.get('scale') is None:
        return None
    return validators.int_at_least('scale', opt['scale'], 1, ' (the upscaling factor)')


def _check_datasets(opt: Dict[str, Any]) -> None:
    """The phases the pipeline reads (``train`` and ``val*`` in training, ``test*`` and ``val*`` in testing) and
    each set's options (:func:`~basicsr_nlattn.data.dataset_options.parse_dataset_options`)."""
    is_train = bool(opt.get('is_train'))
    datasets = opt.get('datasets') or {}
    if is_train and 'train' not in datasets:
        raise OptionError(f'datasets.train: basicsr train needs a training set, got the sets {list(datasets)}')
    scale = _check_scale(opt)
    for phase in datasets:
        prefix = phase.split('_')[0]
        known = (phase == 'train' or prefix == 'val') if is_train else prefix in ('test', 'val')
        if not known:
            names = "'train' or 'val*'" if is_train else "'test*' or 'val*'"
            raise OptionError(f"datasets.{phase}: must be named {names} (the phase the pipeline reads), got '{phase}'")
        parse_dataset_options(phase, datasets[phase], scale, is_train and phase == 'train')


def check_option_file(opt: Dict[str, Any], is_train: bool) -> None:
    """What ``basicsr train|test`` check on the option file as read, before BasicSR's ``parse_options`` acts on it
    (seeds, a slurm process group): :func:`~basicsr_nlattn.tools.launch_options.check_launch_options`.

    Args:
        opt (dict): The option file as read by ``load_option_file``.
        is_train (bool): ``basicsr train`` (else ``basicsr test``).
    """
    check_launch_options(opt, is_train)


def check_options(opt: Dict[str, Any]) -> None:
    """Raise OptionError for the first option of a ``basicsr train`` or ``basicsr test`` run that cannot work.

    Checked, in order (``docs/training.md``, "Bad input", lists every key with its test): what ``parse_options``
    reads (``name``, ``num_gpu``, ``path``, ``datasets``, ``logger``, ``manual_seed``, ``dist_params``); ``model_type``,
    every ``network_*.type``, ``datasets.*.type``, ``train.*_opt.type`` and ``val.metrics.*.type`` are registered;
    our models refuse ``num_gpu > 1`` without a launcher (DataParallel); ``network_g`` is built on the meta device
    (:func:`build_network_on_meta`) and must upscale by ``scale``; in training, ``network_d`` too, every
    ``train.*_opt`` loss is built (``perceptual_opt``: its type only, it loads VGG weights), the model class's
    training options are parsed by its parser (found along its MRO: BasicSR's SRModel and SRGANModel, our
    ContrastiveSRModel and PCLModel), and so are the loop's (``train.total_iter``, ``train.warmup_iter``,
    ``logger.*``, ``val.val_freq``); ``val`` (``save_img``, ``metrics``, ``suffix``, ``pbar``, ``tile``,
    ``self_ensemble``, ``amp``, ``compare_to_paper``); the datasets' loader and patch options; dataset folders,
    ``meta_info_file``, LMDBs, and the checkpoints of ``path.pretrain_network_*`` and ``path.resume_state`` exist
    and are readable. Nothing of ``opt`` is changed.

    Args:
        opt (dict): The option dictionary after BasicSR's ``parse_options`` (``is_train`` set).
    """
    is_train = bool(opt.get('is_train'))
    check_launch_options(opt, is_train)
    for key, name, kind in _typed_entries(opt):
        _check_registered(key, name, kind)
    model_class = MODEL_REGISTRY.get(opt['model_type'])
    if issubclass(model_class, ContrastiveSRModel):
        check_no_data_parallel(opt)
    net_g = build_network_on_meta(opt, 'network_g')
    _check_scale(opt)
    check_network_scale(opt, net_g)
    if is_train:
        net_d = build_network_on_meta(opt, 'network_d') if 'network_d' in opt else None
        _check_losses(opt.get('train') or {})
        _check_model_training(opt, model_class, net_g, net_d)
        parse_run_options(opt)
    if not is_train or opt.get('val') is not None:  # basicsr test reads val.save_img; training may go without val
        parse_sr_validation(opt.get('val'), is_train)
    _check_inference_options(opt)
    paper_row_name(opt)
    _check_datasets(opt)
    _check_paths(opt)


def check_inference_options(opt: Dict[str, Any]) -> None:
    """The part of :func:`check_options` that ``basicsr infer`` reads from an option file (before it writes
    anything): ``scale``, ``network_g`` (built on the meta device, upscaling by ``scale``), ``val.tile`` and
    ``val.self_ensemble``.

    Args:
        opt (dict): The option file as read by ``load_option_file``.
    """
    validators.int_at_least('scale', opt.get('scale'), 1, ' (the upscaling factor)')
    net_g = build_network_on_meta(opt, 'network_g')
    check_network_scale(opt, net_g)
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
