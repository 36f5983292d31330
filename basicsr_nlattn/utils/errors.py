"""The one exception type for bad options, used by every layer of the package."""
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
