"""What the training loop of ``basicsr train`` (BasicSR's ``train_pipeline`` and ours) reads for any model, read
and checked in one place: the run's length, the logger's frequencies and outputs, and the validation schedule.

BasicSR reads these only as the loop reaches them: a frequency of 0 is a ``ZeroDivisionError`` at the first
iteration, ``use_tb_logger`` missing a ``KeyError`` in ``MessageLogger``, a wandb project without tensorboard an
``AssertionError`` after the experiment folder is made.
"""
import dataclasses
import importlib.util
from typing import Any, Mapping, Optional

from basicsr_nlattn.training.resume import parse_keep_states
from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The loop's options, parsed.

    Attributes:
        total_iter (int): ``train.total_iter`` (>= 1). Iteration counts and frequencies may be written as
            ``!!float 5e3``, as in BasicSR's option files.
        warmup_iter (int): ``train.warmup_iter``, linear warm-up iterations (-1, the default: none).
        print_freq (int): ``logger.print_freq`` (>= 1).
        save_checkpoint_freq (int): ``logger.save_checkpoint_freq`` (>= 1).
        use_tb_logger (bool): ``logger.use_tb_logger`` (tensorboard must be importable when true).
        wandb_project (str | None): ``logger.wandb.project`` (needs ``use_tb_logger`` and the wandb package).
        keep_states (int | None): ``logger.keep_states``.
        val_freq (int | None): ``val.val_freq`` (>= 1), None without a ``val`` section.
    """
    total_iter: int
    warmup_iter: int
    print_freq: int
    save_checkpoint_freq: int
    use_tb_logger: bool
    wandb_project: Optional[str]
    keep_states: Optional[int]
    val_freq: Optional[int]


def importable(module: str) -> bool:
    """Whether ``import module`` would find it (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that is not a package, or a module set to None in sys.modules
        return False


def _wandb_project(opt: Mapping[str, Any], logger_opt: Mapping[str, Any], use_tb_logger: bool) -> Optional[str]:
    """``logger.wandb.project``, with what BasicSR's ``init_tb_loggers`` needs when it is set (outside debug runs,
    which use neither logger)."""
    wandb_opt = logger_opt.get('wandb')
    if wandb_opt is None:
        return None
    validators.mapping('logger.wandb', wandb_opt)
    project = validators.optional_string('logger.wandb.project', wandb_opt.get('project'))
    validators.optional_string('logger.wandb.resume_id', wandb_opt.get('resume_id'))
    if project is None or 'debug' in str(opt.get('name')):
        return project
    if not use_tb_logger:
        raise OptionError(f"logger.wandb.project: '{project}' needs logger.use_tb_logger: true (wandb syncs the "
                          f'tensorboard log), got use_tb_logger {use_tb_logger!r}')
    if not importable('wandb'):
        raise OptionError(f"logger.wandb.project: '{project}' needs the wandb package (pip install wandb), which is "
                          'not installed')
    return project


def parse_run_options(opt: Mapping[str, Any]) -> RunOptions:
    """The options the training loop reads, checked: read by the loop (``run_training``) and by the pre-flight check
    of ``basicsr train``.

    Raises:
        OptionError: the first key that cannot work, named in full.
    """
    train_opt = validators.mapping('train', opt.get('train'))
    logger_opt = validators.mapping('logger', opt.get('logger'))
    use_tb_logger = validators.boolean('logger.use_tb_logger', logger_opt.get('use_tb_logger'))
    if use_tb_logger and 'debug' not in str(opt.get('name')) and not importable('tensorboard'):
        raise OptionError('logger.use_tb_logger: true needs the tensorboard package (pip install tensorboard), which '
                          'is not installed')
    val_opt = opt.get('val')
    val_freq = None
    if val_opt is not None:
        validators.mapping('val', val_opt)
        val_freq = validators.int_at_least('val.val_freq', val_opt.get('val_freq'), 1, whole_float=True)
    return RunOptions(
        total_iter=validators.int_at_least('train.total_iter', train_opt.get('total_iter'), 1, whole_float=True),
        warmup_iter=validators.int_at_least(
            'train.warmup_iter', train_opt.get('warmup_iter', -1), -1, ' (-1: no warm-up)', whole_float=True),
        print_freq=validators.int_at_least('logger.print_freq', logger_opt.get('print_freq'), 1, whole_float=True),
        save_checkpoint_freq=validators.int_at_least(
            'logger.save_checkpoint_freq', logger_opt.get('save_checkpoint_freq'), 1, whole_float=True),
        use_tb_logger=use_tb_logger,
        wandb_project=_wandb_project(opt, logger_opt, use_tb_logger),
        keep_states=parse_keep_states(logger_opt.get('keep_states')),
        val_freq=val_freq)
