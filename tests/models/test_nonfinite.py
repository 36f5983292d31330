"""``train.nonfinite`` on real models (one process): a NaN batch skips the update (weights and Adam's moments
untouched), a good one after it steps, more than ``max_consecutive`` in a row or ``action: stop`` raise
NonFiniteStop; and the stop request of the training loop (SIGTERM, SIGINT, SIGUSR1)."""
import copy
import logging
import os
import signal

import pytest
import torch
from helpers.models import TINY_ENLCN, training_options

from basicsr_nlattn.models import ContrastiveSRModel
from basicsr_nlattn.models.nonfinite import NonFiniteStop, nonfinite_terms
from basicsr_nlattn.utils.stop_signals import STOP_SIGNALS, StopRequest


def _batch(nan: bool = False, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lq = torch.rand(2, 3, 8, 8, generator=generator)
    if nan:
        lq[0, 0, 0, 0] = float('nan')
    return {'lq': lq, 'gt': torch.rand(2, 3, 16, 16, generator=generator)}


def _snapshot(model):
    # parameters only: ENLCA's random-feature buffers are redrawn on schedule, whatever the update
    weights = {name: value.detach().clone() for name, value in model.net_g.named_parameters()}
    moments = copy.deepcopy(model.optimizer_g.state_dict()['state'])
    return weights, moments


def _same(first, second) -> bool:
    (w1, m1), (w2, m2) = first, second
    same_weights = all(torch.equal(w1[name], w2[name]) for name in w1)
    same_moments = m1.keys() == m2.keys() and all(
        torch.equal(m1[k][key], m2[k][key]) for k in m1 for key in m1[k] if torch.is_tensor(m1[k][key]))
    return same_weights and same_moments


def _model(tmp_path, **nonfinite):
    options = training_options(
        'ContrastiveSRModel', TINY_ENLCN, path={'experiments_root': str(tmp_path)}, nonfinite=nonfinite)
    return ContrastiveSRModel(options)


def _step(model, current_iter, nan=False):
    model.feed_data(_batch(nan, seed=current_iter))
    model.optimize_parameters(current_iter)


class _Records(logging.Handler):

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_nan_batch_skips_the_update_and_the_next_good_one_steps(tmp_path):
    model = _model(tmp_path, max_consecutive=2)
    _step(model, 1)
    before = _snapshot(model)
    records = _Records()
    logger = logging.getLogger('basicsr')  # BasicSR's root logger does not propagate
    logger.addHandler(records)
    try:
        _step(model, 2, nan=True)
        _step(model, 3, nan=True)
    finally:
        logger.removeHandler(records)
    assert _same(before, _snapshot(model))
    messages = records.messages
    assert messages == [
        'iter 2: non-finite l_pix (rank 0), gradient (rank 0): update of net_g skipped (1 in a row; '
        'train.nonfinite.max_consecutive 2)',
        'iter 3: non-finite l_pix (rank 0), gradient (rank 0): update of net_g skipped (2 in a row; '
        'train.nonfinite.max_consecutive 2)',
    ]
    assert all(p.grad is None for p in model.net_g.parameters())  # nothing of the NaN step reaches the next one
    _step(model, 4)
    assert not _same(before, _snapshot(model))
    assert all(value.isfinite().all() for value in model.net_g.state_dict().values())
    assert model.nonfinite_guard.consecutive['net_g'] == 0 and model.nonfinite_guard.skipped_total == 2


def test_more_than_max_consecutive_or_action_stop_raise(tmp_path):
    model = _model(tmp_path, max_consecutive=1)
    _step(model, 1, nan=True)
    with pytest.raises(
            NonFiniteStop,
            match=r'^iter 2: non-finite l_pix \(rank 0\), gradient \(rank 0\); stopping '
            r'\(2 updates of net_g in a row, more than train.nonfinite.max_consecutive 1\)'):
        _step(model, 2, nan=True)
    stopping = _model(tmp_path, action='stop')
    before = _snapshot(stopping)
    with pytest.raises(NonFiniteStop, match=r'stopping \(train.nonfinite.action is stop\)'):
        _step(stopping, 1, nan=True)
    assert _same(before, _snapshot(stopping))


def test_a_finite_loss_with_an_infinite_gradient_is_caught_by_the_gradient_term():
    net = torch.nn.Linear(2, 1)
    net(torch.ones(1, 2)).sum().backward()
    losses = {'l_pix': torch.tensor(0.5), 'l_contrast': torch.tensor(float('inf'))}
    assert nonfinite_terms(losses, net, check_gradients=True) == [False, True, False]
    net.weight.grad[0, 0] = float('inf')
    assert nonfinite_terms({'l_pix': torch.tensor(0.5)}, net, check_gradients=True) == [False, True]
    assert nonfinite_terms({'l_pix': torch.tensor(0.5)}, net, check_gradients=False) == [False]


@pytest.mark.parametrize('signum', STOP_SIGNALS)
def test_a_stop_signal_is_recorded_not_raised_and_the_handlers_come_back(signum):
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signum)
        assert stop.requested and stop.signal_name == signal.Signals(signum).name
        os.kill(os.getpid(), signal.SIGTERM)  # a second, other signal changes nothing
        assert stop.signal_name == signal.Signals(signum).name
    assert {number: signal.getsignal(number) for number in STOP_SIGNALS} == previous


def test_a_second_ctrl_c_interrupts_at_once():
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal_name == 'SIGINT'
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
