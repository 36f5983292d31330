"""The options BasicSR's ``parse_options`` reads itself, before the pre-flight check can run: checked on the option
file as read (``basicsr train|test`` do it first, after :func:`~basicsr_nlattn.utils.load_option_file`) and again
after ``parse_options`` (a ``--force_yml`` may change them).

``parse_options`` seeds NumPy with ``manual_seed`` (which raises for a seed outside [0, 2**32)), starts the process
group with ``dist_params`` under ``--launcher slurm``, reads ``num_gpu``, ``name``, ``path`` and every
``datasets.<phase>`` (and, in a debug run, ``logger`` and ``val``): a wrong one there is a traceback.
"""
from typing import Any, Mapping

from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError

SEED_LIMIT = 2**32  # numpy.random.seed takes [0, 2**32)
DIST_BACKENDS = ('nccl', 'gloo', 'mpi')


def check_name(opt: Mapping[str, Any]) -> None:
    """``name``: a non-empty string (it names the experiment or results folder)."""
    if not isinstance(opt.get('name'), str) or not opt['name']:
        raise OptionError(f"name: every option file needs a name (it names the experiment folder), got "
                          f"{opt.get('name')!r}")


def check_manual_seed(value: Any) -> None:
    """``manual_seed``: absent (BasicSR draws one) or an int in [0, 2**32)."""
    if value is not None:
        validators.int_at_least('manual_seed', value, 0, ' (or absent: a random seed)', maximum=SEED_LIMIT - 1)


def check_dist_params(value: Any) -> None:
    """``dist_params``: absent, or ``{backend: nccl|gloo|mpi, port: 1..65535}`` (BasicSR's ``init_dist`` under
    ``--launcher slurm``)."""
    if value is None:
        return
    validators.mapping('dist_params', value, ('backend', 'port'), '{backend: nccl, port: 29500}')
    validators.choice('dist_params.backend', value.get('backend', 'nccl'), DIST_BACKENDS)
    if value.get('port') is not None:
        validators.int_at_least('dist_params.port', value['port'], 1, maximum=65535)


def check_launch_options(opt: Mapping[str, Any], is_train: bool) -> None:
    """Raise OptionError for the first key that ``parse_options`` itself would trip over (module docstring).

    Args:
        opt (dict): the option file as read, or the options after ``parse_options``.
        is_train (bool): ``basicsr train`` (else ``basicsr test``).
    """
    check_name(opt)
    num_gpu = opt.get('num_gpu')
    if num_gpu != 'auto':
        validators.int_at_least('num_gpu', num_gpu, 0, " (or 'auto': every visible GPU)")
    validators.mapping('path', opt.get('path'), example='{pretrain_network_g: ~}')
    datasets = validators.mapping('datasets', opt.get('datasets'))
    for phase in datasets:
        validators.mapping(f'datasets.{phase}', datasets[phase])
    if is_train:
        validators.mapping('logger', opt.get('logger'))
    check_manual_seed(opt.get('manual_seed'))
    check_dist_params(opt.get('dist_params'))
