"""What a stop signal does in each phase of ``basicsr train``; the handler (:class:`StopRequest`) only records it
and is installed from the parse of the options until the run ends.

- Start-up (options, resume state, folders, data, model): checked between phases; in a distributed run the ranks
  agree at each check (one all-reduce), so a signal that reached one rank stops every rank before iteration 1. No
  training state is written: the ones on disk are those the next ``--auto_resume`` reads.
- Iterations: after each optimizer step (:mod:`.loop`), with a training state of that iteration.
- After the last iteration: the latest model's save completes. Then, with validation configured, a signal that
  arrived before the final validation, or arrives during it (acted on before its next image), leaves the validation
  and writes a training state of the last iteration when there is none: ``--auto_resume`` then only saves and
  validates, and ends with 0. Without validation the run has finished when the save completes: exit 0.

Each stop ends with :data:`PREEMPTED_EXIT_CODE` (75) and one line.
"""
import logging
import signal
from typing import Any, Iterator, Optional

import torch

from basicsr_nlattn.utils.distributed import collective_device, max_over_ranks
from basicsr_nlattn.utils.errors import RunStopped
from basicsr_nlattn.utils.stop_signals import PREEMPTED_EXIT_CODE, StopRequest


def agreed_signal(stop: StopRequest, device: torch.device) -> Optional[str]:
    """The stop signal the ranks agree on (the highest-numbered one any rank received, so that every rank names the
    same signal whenever each received it), or None; one all-reduce in a distributed run. A rank that received
    none adopts the agreed one (:meth:`StopRequest.adopt`)."""
    agreed = max_over_ranks([stop.signal_number], device)[0]
    if not agreed:
        return None
    stop.adopt(signal.Signals(agreed).name)
    return signal.Signals(agreed).name


def stop_if_requested_while_starting(stop: StopRequest, logger: Optional[logging.Logger] = None) -> None:
    """Raise RunStopped (exit 75, one line, also logged when ``logger`` is given) when a rank received a stop signal;
    to be called by every rank at the same points of the start-up."""
    signal_name = agreed_signal(stop, collective_device())
    if signal_name is None:
        return
    line = (f'stopped by {signal_name} while starting: no training state written (the states on disk are '
            'unchanged); continue with --auto_resume')
    if logger is not None:
        logger.warning(line)
    raise RunStopped(line, PREEMPTED_EXIT_CODE)


def stopped_after_the_end(signal_name: str, last_iter: int) -> RunStopped:
    """The stop of a run whose iterations are done, its latest model and a training state of ``last_iter`` saved."""
    return RunStopped(
        f'stopped by {signal_name} after the last iteration (iter {last_iter}): training state and models saved, the '
        'final validation not run; continue with --auto_resume', PREEMPTED_EXIT_CODE)


class ValidationStopped(Exception):
    """Raised by :class:`StoppableLoader` out of a model's validation."""


class StoppableLoader:
    """A validation loader that raises :class:`ValidationStopped` instead of yielding its next batch once ``stop``
    has recorded a signal (a validation that has yielded its last batch completes). Everything else is the
    loader's (``dataset``, ``len``)."""

    def __init__(self, loader: Any, stop: StopRequest) -> None:
        self.loader = loader
        self.stop = stop

    def __getattr__(self, name: str) -> Any:
        if name in ('loader', 'stop') or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if self.stop.requested:
                raise ValidationStopped
            yield batch
