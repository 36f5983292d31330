"""The files an option file names, checked before a run starts: dataset folders, ``meta_info_file`` and LMDBs
(``meta_info.txt``, the same keys in a paired set), and the checkpoints of ``path.pretrain_network_*`` and
``path.resume_state``: present and readable as PyTorch checkpoints (read without loading their tensors,
:func:`~basicsr_nlattn.utils.checkpoint_files.readable_checkpoint`), with the entry ``path.param_key_*`` names.
"""
from os import path as osp
from typing import Any, List, Mapping

from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.checkpoint_files import checkpoint_entries, readable_checkpoint
from basicsr_nlattn.utils.errors import OptionError


def check_dataset_files(opt: Mapping[str, Any]) -> None:
    """Every ``datasets.<phase>`` folder and ``meta_info_file`` exists; LMDB sets are whole
    (:func:`_check_lmdb_pair`)."""
    datasets = opt.get('datasets') or {}
    for phase in datasets:
        dataset_opt = datasets[phase]
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


def _check_checkpoint(key: str, path: Any, what: str) -> None:
    if not isinstance(path, str):
        raise OptionError(f'{key}: must be the path of a {what}, got {path!r}')
    problem = readable_checkpoint(path)
    if problem == 'missing':
        raise OptionError(f"{key}: {what} '{path}' does not exist")
    if problem is not None:
        raise OptionError(f"{key}: '{path}' cannot be read: {problem}")


def _check_param_key(label: str, checkpoint: str, param_key: Any) -> None:
    """BasicSR's ``load_network`` reads entry ``param_key`` of the checkpoint, or ``params`` when it has none."""
    key = f'path.param_key_{label}'
    if not isinstance(param_key, str):
        raise OptionError(f'{key}: must be the name of an entry of the checkpoint (params, params_ema), got '
                          f'{param_key!r}')
    entries = checkpoint_entries(checkpoint)
    if param_key not in entries and 'params' not in entries:
        raise OptionError(f"{key}: '{checkpoint}' has no entry '{param_key}' (nor 'params'); its entries that hold "
                          f"weights: {', '.join(entries) or 'none'}, got {param_key!r}")


def check_checkpoint_paths(opt: Mapping[str, Any]) -> None:
    """``path.pretrain_network_<x>`` of every ``network_<x>`` (and any other the file names), with
    ``strict_load_<x>`` and ``param_key_<x>``, and, without ``--auto_resume``, ``path.resume_state``: the files exist
    and read as PyTorch checkpoints."""
    path_opt = opt.get('path') or {}
    labels = [key[len('network_'):] for key in opt if key.startswith('network_')]
    labels += [key[len('pretrain_network_'):] for key in path_opt if key.startswith('pretrain_network_')]
    for label in dict.fromkeys(labels):
        checkpoint = path_opt.get(f'pretrain_network_{label}')
        if checkpoint is None:
            continue
        _check_checkpoint(f'path.pretrain_network_{label}', checkpoint, 'checkpoint')
        validators.boolean(f'path.strict_load_{label}', path_opt.get(f'strict_load_{label}', True))
        if path_opt.get(f'param_key_{label}') is not None:
            _check_param_key(label, checkpoint, path_opt[f'param_key_{label}'])
    resume_state = path_opt.get('resume_state')
    if resume_state is not None and not opt.get('auto_resume'):
        _check_checkpoint('path.resume_state', resume_state, 'training state')


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


def _check_lmdb_pair(phase: str, dataset_opt: Mapping[str, Any]) -> None:
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
