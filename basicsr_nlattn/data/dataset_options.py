"""A dataset's options as BasicSR's data loaders and paired datasets read them, checked before a run starts.

BasicSR reads them in ``build_dataloader`` (``batch_size_per_gpu``, ``num_worker_per_gpu``), its samplers
(``dataset_enlarge_ratio``), the prefetchers (``prefetch_mode``, ``pin_memory``) and ``PairedImageDataset``
(``gt_size``, ``use_hflip``, ``use_rot``, ``io_backend``, ``scale``): a zero batch or ratio, a negative number of
workers or a patch that the scale does not divide fail there, with a traceback, after the experiment folder is made.
"""
import dataclasses
from typing import Any, Mapping, Optional

from basicsr.utils.file_client import FileClient

from basicsr_nlattn.data.data_faults import parse_skip_bad
from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError

PREFETCH_MODES = (None, 'cpu', 'cuda')
PAIRED_DATASETS = ('PairedImageDataset', )  # BasicSR's LR/HR sets that crop gt_size patches in training


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
    """One ``datasets.<phase>``, parsed: the loader's numbers (training phase only, else None), the patch size, the
    scale and ``skip_bad``."""
    batch_size_per_gpu: Optional[int]
    num_worker_per_gpu: Optional[int]
    dataset_enlarge_ratio: int
    gt_size: Optional[int]
    scale: Optional[int]
    skip_bad: bool
    skip_bad_max_fraction: float


def is_paired(dataset_opt: Mapping[str, Any]) -> bool:
    """Whether the set reads LR and HR images (``dataroot_lq`` and ``dataroot_gt``)."""
    return dataset_opt.get('dataroot_lq') is not None and dataset_opt.get('dataroot_gt') is not None


def _check_io_backend(key: str, backend: Any) -> None:
    validators.mapping(key, backend, example='{type: disk}')
    validators.choice(f'{key}.type', backend.get('type'), list(FileClient._backends))


def parse_dataset_options(phase: str, dataset_opt: Any, scale: Optional[int], training: bool) -> DatasetOptions:
    """``datasets.<phase>`` checked as the loaders and datasets read it; ``scale`` is the option file's (checked;
    None when the file has none: then the dataset's own ``scale``), ``training`` whether this is the ``train`` phase
    of a training run.

    Raises:
        OptionError: the first key that cannot work, named in full (``datasets.train.gt_size: ...``).
    """
    key = f'datasets.{phase}'
    validators.mapping(key, dataset_opt)
    if dataset_opt.get('io_backend') is not None or dataset_opt.get('type') in PAIRED_DATASETS:
        _check_io_backend(f'{key}.io_backend', dataset_opt.get('io_backend'))
    if scale is None and ('scale' in dataset_opt or dataset_opt.get('type') in PAIRED_DATASETS):
        scale = validators.int_at_least(f'{key}.scale', dataset_opt.get('scale'), 1,
                                        ' (the upscaling factor; or set scale for all sets)')
    batch = workers = gt_size = None
    ratio = 1
    if training:
        batch = validators.int_at_least(f'{key}.batch_size_per_gpu', dataset_opt.get('batch_size_per_gpu'), 1)
        workers = validators.int_at_least(f'{key}.num_worker_per_gpu', dataset_opt.get('num_worker_per_gpu'), 0)
        ratio = validators.int_at_least(f'{key}.dataset_enlarge_ratio', dataset_opt.get('dataset_enlarge_ratio', 1), 1)
        mode = validators.choice(f'{key}.prefetch_mode', dataset_opt.get('prefetch_mode'), PREFETCH_MODES)
        pin_memory = validators.boolean(f'{key}.pin_memory', dataset_opt.get('pin_memory', False))
        if mode == 'cuda' and not pin_memory:
            raise OptionError(f"{key}.pin_memory: must be true with prefetch_mode 'cuda' (BasicSR's "
                              f'CUDAPrefetcher), got {pin_memory!r}')
        if dataset_opt.get('type') in PAIRED_DATASETS:
            for flag in ('use_hflip', 'use_rot'):
                validators.boolean(f'{key}.{flag}', dataset_opt.get(flag))
    if 'gt_size' in dataset_opt or (training and dataset_opt.get('type') in PAIRED_DATASETS):
        gt_size = validators.int_at_least(f'{key}.gt_size', dataset_opt.get('gt_size'), 1, ' (HR patch pixels)')
        if is_paired(dataset_opt) and scale is not None and gt_size % scale:
            raise OptionError(f'{key}.gt_size: must be a multiple of scale ({scale}): the LR patch is gt_size / '
                              f'scale pixels, got {gt_size}')
    skip_bad, fraction = parse_skip_bad(phase, dataset_opt)
    return DatasetOptions(batch, workers, ratio, gt_size, scale, skip_bad, fraction)
