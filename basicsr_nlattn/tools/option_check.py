"""The pre-flight check of ``basicsr train`` and ``basicsr test``: the options that BasicSR would only fail on deep
inside training (or after renaming folders).

``preflight`` runs right after BasicSR has parsed the option file and before any experiment folder is made,
renamed or written, so bad input costs nothing: the message names the option key, the value and what is allowed.
"""
import difflib
from os import path as osp
from typing import Any, Dict, Iterator, List, Tuple

import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from basicsr_nlattn.models.tiled_inference import parse_self_ensemble, parse_tile_options
from basicsr_nlattn.tools.paper_results import paper_row_name
from basicsr_nlattn.utils.errors import OptionError


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


def _check_inference_options(opt: Dict[str, Any]) -> None:
    """``val.tile``, ``val.self_ensemble`` and ``val.compare_to_paper``, read by our models and ``basicsr test``."""
    val_opt = opt.get('val') or {}
    parse_tile_options(val_opt.get('tile'))
    parse_self_ensemble(val_opt.get('self_ensemble', False))
    paper_row_name(opt)


def check_options(opt: Dict[str, Any]) -> None:
    """Raise OptionError for the first option that cannot work.

    Checked: ``name``; ``model_type``, every ``network_*.type``, ``datasets.*.type``, ``train.*_opt.type`` and
    ``val.metrics.*.type`` are registered (the message lists the registered names); dataset folders,
    ``meta_info_file``, ``path.pretrain_network_*`` and ``path.resume_state`` exist; LMDB datasets have
    ``meta_info.txt`` and, paired, the same keys; ``val.tile``, ``val.self_ensemble`` and ``val.compare_to_paper``
    parse.

    Args:
        opt (dict): The option dictionary after BasicSR's ``parse_options``.
    """
    if not opt.get('name'):
        raise OptionError('name: every option file needs a name (it names the experiment folder)')
    for key, name, kind in _typed_entries(opt):
        _check_registered(key, name, kind)
    _check_inference_options(opt)
    _check_paths(opt)


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
