"""The package's exception types: OptionError for bad options (every layer), the checkpoint, export and write errors
of the commands, and RunStopped for a training run that ended early. ``basicsr`` prints each of
``COMMAND_ERRORS`` as one line ``basicsr <command>: error: <message>`` and exits with status 2."""
import contextlib
from typing import Iterator


class OptionError(ValueError):
    """An option that cannot work; the message starts with the option key (``network_g.num_block must be >= 1,
    got 0``). A ValueError, as BasicSR's own option checks raise; ``basicsr train|test|flops`` print it as one line
    and exit with status 2."""


@contextlib.contextmanager
def as_option_errors() -> Iterator[None]:
    """Re-raise a ValueError from inside the block as an OptionError with the same message.

    For constructors called with the keyword arguments of an option file (a block built by a network, a network
    built from its YAML mapping), whose ValueErrors are all checks of those arguments.
    """
    try:
        yield
    except OptionError:
        raise
    except ValueError as error:
        raise OptionError(str(error)) from error


class CheckpointError(ValueError):
    """``basicsr convert``: the file is not the official checkpoint that was asked for; the message names the key."""


class ExportError(ValueError):
    """``basicsr export``: the network was traced, but the model cannot be run or does not match PyTorch; nothing was
    written."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, no permission): the message names the path and the cause."""


COMMAND_ERRORS = (OptionError, CheckpointError, ExportError, CheckpointWriteError)


class RunStopped(Exception):
    """A training run that ended early on purpose or on a fault, with nothing lost: ``basicsr train`` prints the
    message (one line) and exits with ``exit_code`` (2 a fault: unreadable data, a failed save; 3 non-finite
    updates; 75 preempted by a signal)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
