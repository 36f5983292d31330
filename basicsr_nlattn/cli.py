"""The ``basicsr`` command: a table of commands, each a module of :mod:`basicsr_nlattn.commands`, and the one place
where the package's errors become one line and exit status 2.

A command module has ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is
adding its module and its name to ``COMMANDS``.
"""
import argparse
import importlib
import sys
from types import ModuleType
from typing import List, Optional

from basicsr_nlattn.commands.help_format import HelpFormatter

# The commands, in the order ``basicsr --help`` lists them; each names a module of basicsr_nlattn.commands.
COMMANDS = (
    'train',
    'test',
    'infer',
    'convert',
    'bench',
    'flops',
    'attention',
    'lam',
    'plot',
    'export',
)
DESCRIPTION = ('BasicSR with the basicsr_nlattn plugin (ENLCN, NLSN, CCLNN, PCL). Runs write experiments/, results/ '
               'and tb_logger/ under the current directory.')
EXAMPLES = ('examples:\n  basicsr train -opt options/demo/train_demo_x4.yml\n'
            '  torchrun --nproc_per_node=4 -m basicsr_nlattn.train -opt FILE --launcher pytorch\n'
            '  basicsr test -opt options/test_ENLCN_x4.yml')


def command_module(name: str) -> ModuleType:
    """The module of command ``name`` (one of ``COMMANDS``)."""
    return importlib.import_module(f'basicsr_nlattn.commands.{name}')


def command_parser(name: str, prog: str) -> argparse.ArgumentParser:
    """A stand-alone parser of command ``name``, for scripts that run one command under their own name."""
    module = command_module(name)
    parser = argparse.ArgumentParser(prog=prog, description=module.HELP, formatter_class=HelpFormatter)
    module.add_arguments(parser)
    return parser


def build_parser(commands: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The ``basicsr`` argument parser, with a subcommand for each name in ``commands`` (default: ``COMMANDS``)."""
    parser = argparse.ArgumentParser(
        prog='basicsr', description=DESCRIPTION, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name in commands or COMMANDS:
        module = command_module(name)
        subparser = subparsers.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(subparser)
    return parser


def run_command(name: str, args: argparse.Namespace, prog: str) -> int:
    """``run(args)`` of command ``name``; each of the package's ``COMMAND_ERRORS`` becomes the one line
    ``<prog>: error: <message>`` and status 2, a training run that stopped early (RunStopped) its line and code."""
    from basicsr_nlattn.utils.errors import COMMAND_ERRORS, RunStopped
    try:
        return command_module(name).run(args)
    except COMMAND_ERRORS as error:
        sys.stderr.write(f'{prog}: error: {error}\n')
        return 2
    except RunStopped as stopped:
        sys.stderr.write(f'{prog}: {stopped}\n')
        return stopped.exit_code


def main(argv: Optional[List[str]] = None, commands: Optional[List[str]] = None) -> int:
    """Entry point of ``basicsr`` (and, with ``commands=['train']``, of ``python -m basicsr_nlattn.train``)."""
    args = build_parser(commands).parse_args(argv)
    return run_command(args.command, args, f'basicsr {args.command}')


def module_main(command: str) -> int:
    """``python -m basicsr_nlattn.<command> -opt FILE ...``: the same as ``basicsr <command> -opt FILE ...``."""
    return main([command] + sys.argv[1:], commands=[command])


def script_main(command: str, prog: str, argv: Optional[List[str]] = None) -> int:
    """A script that is one command under its own name (``scripts/inference.py`` is ``basicsr infer``); its errors
    read ``<prog>: error: <message>``."""
    args = command_parser(command, prog).parse_args(argv)
    return run_command(command, args, prog)


if __name__ == '__main__':
    sys.exit(main())
