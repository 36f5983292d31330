"""StopRequest's handlers after the run: restored, or ignored once the run has stopped (by its own signal or by one
it adopted from another rank), so that a launcher's follow-up SIGTERM cannot kill a rank that has chosen exit 75."""
import signal

import pytest

from basicsr_nlattn.utils.stop_signals import StopRequest


@pytest.fixture
def restored_handlers():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    yield saved
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_without_a_stop_the_previous_handlers_come_back(restored_handlers):
    with StopRequest(ignore_after_a_stop=True):
        pass
    assert {signum: signal.getsignal(signum) for signum in restored_handlers} == restored_handlers


@pytest.mark.parametrize('how', ['received', 'adopted'])
def test_after_a_stop_sigterm_and_sigusr1_are_ignored_and_ctrl_c_still_interrupts(restored_handlers, how):
    with StopRequest(ignore_after_a_stop=True) as stop:
        if how == 'received':
            signal.raise_signal(signal.SIGUSR1)
            assert stop.signal_name == 'SIGUSR1'
        else:
            stop.adopt('SIGTERM')  # another rank received it; this one received nothing
            assert stop.signal_name is None
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) == restored_handlers[signal.SIGINT]


def test_an_adopted_sigint_leaves_this_ranks_own_first_ctrl_c_a_first_one(restored_handlers):
    with StopRequest() as stop:
        stop.adopt('SIGINT')
        signal.raise_signal(signal.SIGINT)  # recorded, not the second Ctrl-C that interrupts at once
        assert stop.signal_name == 'SIGINT'
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == restored_handlers[signal.SIGTERM]
