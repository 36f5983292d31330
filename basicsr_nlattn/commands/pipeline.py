"""What ``basicsr train`` and ``basicsr test`` share: BasicSR's flags, with BasicSR's meaning, passed on to
``basicsr.utils.options.parse_options`` unchanged, and the run of BasicSR's pipeline from the working directory.

basicsr 1.4.2 ships no console script, and its ``basicsr/train.py`` puts ``experiments/`` next to site-packages.
Here every run writes ``experiments/``, ``results/`` and ``tb_logger/`` under the current working directory (or
under ``path.experiments_root`` / ``path.results_root`` when the option file sets them).
"""
import argparse
import os
import sys
from typing import List


def add_pipeline_arguments(parser: argparse.ArgumentParser, train: bool) -> None:
    """BasicSR's flags; ``--auto_resume`` and ``--debug`` for training only."""
    parser.add_argument('-opt', required=True, metavar='FILE', help='path to the option YAML file')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher: none (one process), pytorch (under torchrun: one process per GPU, or gloo on CPU), '
        'slurm (srun)')
    if train:
        parser.add_argument(
            '--auto_resume',
            action='store_true',
            help='resume from the newest training state in <experiments_root>/training_states, if any')
        parser.add_argument(
            '--debug',
            action='store_true',
            help="prefix the experiment name with 'debug_', log every iteration, validate and save every 8")
    parser.add_argument('--local_rank', type=int, default=0, help='set by old launchers; torchrun uses LOCAL_RANK')
    parser.add_argument(
        '--force_yml',
        nargs='+',
        default=None,
        metavar='KEY=VALUE',
        help='override options, nested keys joined by ":", e.g. train:total_iter=1000 val:val_freq=500')


def forwarded_argv(args: argparse.Namespace) -> List[str]:
    """The parsed flags as BasicSR's ``parse_options`` reads them from ``sys.argv``."""
    argv = ['-opt', args.opt, '--launcher', args.launcher, '--local_rank', str(args.local_rank)]
    for flag in ('auto_resume', 'debug'):
        if getattr(args, flag, False):
            argv.append(f'--{flag}')
    if args.force_yml:
        argv += ['--force_yml'] + args.force_yml
    return argv


def run_pipeline(command: str, args: argparse.Namespace) -> int:
    """Run BasicSR's train or test pipeline with the flags of ``args`` from the working directory; 0 on success.

    An option rejected by the pre-flight check (before anything is written) or by a network, loss or model as
    BasicSR builds it raises OptionError; a training run that stopped early raises RunStopped (``cli`` turns both
    into one line and an exit status).
    """
    import basicsr_nlattn  # noqa: F401  (applies compat, registers our archs, losses and models)
    from basicsr_nlattn.tools.option_check import check_option_file
    from basicsr_nlattn.utils import load_option_file
    from basicsr_nlattn.utils.distributed import release_process_group

    # a missing or broken option file, or a key BasicSR's parse_options acts on before the pre-flight check (the
    # seed, a slurm process group), is one line before BasicSR reads it
    check_option_file(load_option_file(args.opt), command == 'train')
    if command == 'train':
        from basicsr_nlattn.tools.train import train_pipeline as pipeline
    else:
        from basicsr_nlattn.tools.test import test_pipeline as pipeline
    saved_argv = sys.argv
    sys.argv = [f'basicsr {command}'] + forwarded_argv(args)
    try:
        pipeline(os.getcwd())
    finally:
        sys.argv = saved_argv
        release_process_group()
    return 0
