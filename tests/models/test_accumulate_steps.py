"""``train.accumulate: N`` counts the schedule in optimizer steps (iteration i belongs to step ceil(i / N)):
``warmup_iter``, ``contrastive_opt.start_iter`` and ENLCA's ``redraw_interval``, on a tiny ContrastiveSRModel.
(Milestones, the one-step gradient and DDP's all-reduce on the N-th micro-batch are tested in
``test_speed_options.py`` and ``tests/training/test_signals_and_changed_resumes.py``.)"""
from typing import List

import pytest
import torch
from helpers.models import TINY_ENLCN, training_options

import basicsr_nlattn  # noqa: F401  (registers the models)
from basicsr_nlattn.archs.attention import ENLCA
from basicsr_nlattn.models import ContrastiveSRModel

CONTRAST = {'type': 'ENLCAContrastiveLoss', 'loss_weight': 1.0, 'n1': 2, 'n2': 4}


def _model(accumulate: int, **train) -> ContrastiveSRModel:
    torch.manual_seed(0)
    return ContrastiveSRModel(training_options('ContrastiveSRModel', TINY_ENLCN, accumulate=accumulate, **train))


def _train(model: ContrastiveSRModel, current_iter: int) -> None:
    generator = torch.Generator().manual_seed(current_iter)
    model.feed_data({'lq': torch.rand(2, 3, 12, 12, generator=generator), 'gt': torch.rand(2, 3, 24, 24)})
    model.optimize_parameters(current_iter)


def _learning_rates(accumulate: int, iterations: int) -> List[float]:
    model = _model(accumulate, scheduler={'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5})
    rates = []
    for current_iter in range(1, iterations + 1):
        model.update_learning_rate(current_iter, warmup_iter=3)
        rates.append(model.get_current_learning_rate()[0])
    return rates


def test_the_warm_up_counts_optimizer_steps():
    """With accumulate 2, iterations 2k-1 and 2k have the rate of step k of a run without accumulation (a linear
    warm-up over 3 steps, then a milestone at 4). Counted in iterations, iteration 2 would already have the rate
    of step 2."""
    per_step = _learning_rates(1, 5)
    assert per_step[0] < per_step[1]  # warming up
    assert _learning_rates(2, 10) == pytest.approx([rate for rate in per_step for _ in range(2)], rel=0, abs=0)


def test_the_contrastive_term_starts_at_its_optimizer_step():
    """``start_iter: 2`` with accumulate 2: step 1 (iterations 1-2) has no contrastive term, step 2 (3-4) has it;
    the log of a step is set on its last micro-batch. Counted in iterations, iteration 2 would compute the term
    and the log of step 1 would hold it."""
    model = _model(2, contrastive_opt={**CONTRAST, 'start_iter': 2})
    logged = {}
    for current_iter in range(1, 5):
        _train(model, current_iter)
        logged[current_iter] = set(model.log_dict)
    assert logged[2] == {'l_pix'} and logged[4] == {'l_pix', 'l_contrast'}


def test_the_random_features_are_redrawn_every_redraw_interval_optimizer_steps():
    """TINY_ENLCN redraws every 2 steps; with accumulate 2 its features stay the same for iterations 1-4 (steps 1-2)
    and change at iteration 5 (step 3). Counted in iterations, they would change at iteration 3."""
    model = _model(2)
    blocks = [module for module in model.get_bare_model(model.net_g).modules() if isinstance(module, ENLCA)]
    assert blocks and all(block.redraw_interval == 2 for block in blocks)
    features = []
    for current_iter in range(1, 6):
        _train(model, current_iter)
        features.append(torch.cat([block.random_features.flatten() for block in blocks]))
    assert all(torch.equal(features[0], later) for later in features[1:4])
    assert not torch.equal(features[3], features[4])
