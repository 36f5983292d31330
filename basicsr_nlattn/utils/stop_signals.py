"""Preemption: SIGTERM, SIGINT and SIGUSR1 ask a training run to stop where nothing is lost.

Schedulers announce the end of a job with a signal (SLURM: ``#SBATCH --signal=USR1@120``; Kubernetes and most
clusters: SIGTERM, then SIGKILL after a grace period; Ctrl-C: SIGINT). The handler, installed for the whole run,
only records the signal; the run checks it between the steps of its start-up, after each optimizer step and around
its final validation (:mod:`basicsr_nlattn.training.preemption`), the ranks agree in one collective, and every rank
exits with :data:`PREEMPTED_EXIT_CODE`. A second SIGINT interrupts at once (KeyboardInterrupt), for an impatient
Ctrl-C; the last saved training state is then the one to resume from.
"""
import signal
import types
from typing import Any, Dict, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: the run is whole and can be continued (--auto_resume)


class StopRequest:
    """Records the first stop signal while installed (a context manager restoring the previous handlers).

    Args:
        ignore_after_a_stop (bool): when the block ends with a signal recorded (or a stop adopted from another
            rank, :meth:`adopt`), SIGTERM and SIGUSR1 are then ignored instead of restored, until the process exits.
            The run has saved and chosen its exit status (75); a follow-up signal (torchrun terminates the other
            ranks once one has exited, a scheduler repeats its SIGTERM) must not turn it into death by signal while
            the line is printed. SIGINT is restored: Ctrl-C still interrupts. Default: False (the previous handlers
            come back).
    """

    def __init__(self, ignore_after_a_stop: bool = False) -> None:
        self.signal_name: Optional[str] = None
        self.adopted: Optional[str] = None  # a stop agreed with ranks that received a signal this one did not
        self.ignore_after_a_stop = ignore_after_a_stop
        self._previous: Dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    @property
    def signal_number(self) -> int:
        """The recorded signal's number, 0 when none."""
        return int(signal.Signals[self.signal_name]) if self.signal_name else 0

    def adopt(self, signal_name: str) -> None:
        """Stop because the ranks agreed on ``signal_name``, which another rank received. It counts as a stop for
        ``ignore_after_a_stop``; this rank's own first SIGINT (torchrun forwards one to every rank) is still a first
        one, recorded, not the second Ctrl-C that interrupts."""
        self.adopted = signal_name

    def _handle(self, signum: int, frame: Optional[types.FrameType]) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.signal_name == name:
            raise KeyboardInterrupt
        if self.signal_name is None:
            self.signal_name = name

    def __enter__(self) -> 'StopRequest':
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for signum, handler in self._previous.items():
            stopping = self.requested or self.adopted is not None
            ignored = self.ignore_after_a_stop and stopping and signum != signal.SIGINT
            signal.signal(signum, signal.SIG_IGN if ignored else handler)
        self._previous.clear()


def ignore_stop_signals() -> None:
    """For data-loader workers: a signal sent to the whole process group must not kill them mid-batch; the
    training process decides when to stop and shuts them down itself."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
