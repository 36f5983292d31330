"""``train.optim_*`` and ``train.scheduler`` (models/optimizer_options.py): the types are exactly those BasicSR 1.4.2
builds, and our models build them from the parsed options without changing ``opt`` (BasicSR pops ``type``)."""
import copy

import pytest
import torch
from basicsr.models.base_model import BaseModel
from basicsr.models.lr_scheduler import MultiStepRestartLR
from helpers.models import TINY_ENLCN, training_options

from basicsr_nlattn.models import ContrastiveSRModel
from basicsr_nlattn.models.optimizer_options import (BASICSR_OPTIMIZERS, BASICSR_SCHEDULERS, parse_optimizer,
                                                     parse_scheduler)
from basicsr_nlattn.utils import OptionError

CANDIDATE_OPTIMIZERS = ('Adam', 'AdamW', 'Adamax', 'SGD', 'RMSprop', 'Adagrad')
CANDIDATE_SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR', 'StepLR', 'CosineAnnealingLR')


def _basicsr_accepts_optimizer(name: str) -> bool:
    try:
        BaseModel.get_optimizer(None, name, [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    except NotImplementedError:
        return False
    return True


def _basicsr_accepts_scheduler(name: str) -> bool:
    model = BaseModel.__new__(BaseModel)
    model.opt = {'train': {'scheduler': {'type': name, 'milestones': [10], 'periods': [10]}}}
    model.optimizers, model.schedulers = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)], []
    if name == 'CosineAnnealingRestartLR':
        del model.opt['train']['scheduler']['milestones']
    elif name in ('MultiStepLR', 'MultiStepRestartLR'):
        del model.opt['train']['scheduler']['periods']
    try:
        model.setup_schedulers()
    except (NotImplementedError, TypeError):
        return False
    return True


def test_the_types_are_those_basicsr_builds():
    assert tuple(name for name in CANDIDATE_OPTIMIZERS if _basicsr_accepts_optimizer(name)) == BASICSR_OPTIMIZERS
    assert [name for name in CANDIDATE_SCHEDULERS if _basicsr_accepts_scheduler(name)] == list(BASICSR_SCHEDULERS)


def test_a_model_with_its_own_get_optimizer_may_name_other_types():

    class AdamWModel(BaseModel):

        def get_optimizer(self, optim_type, params, lr, **kwargs):
            return torch.optim.AdamW(params, lr, **kwargs)

    assert parse_optimizer('train.optim_g', {'type': 'AdamW', 'lr': 1e-4}, AdamWModel).type == 'AdamW'
    with pytest.raises(OptionError, match=r"^train.optim_g.type: must be one of \['Adam'\]"):
        parse_optimizer('train.optim_g', {'type': 'AdamW', 'lr': 1e-4})
    with pytest.raises(OptionError, match=r"^train.optim_g.lr: must be a number >= 0, got '1e-4' \(YAML reads"):
        parse_optimizer('train.optim_g', {'type': 'AdamW', 'lr': '1e-4'}, AdamWModel)


def test_the_scheduler_is_built_as_basicsr_builds_it():
    options = parse_scheduler('train.scheduler', {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.5})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = options.build(optimizer)
    assert isinstance(scheduler, MultiStepRestartLR)
    lrs = []
    for _ in range(5):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]['lr'])
    assert lrs == [1.0, 0.5, 0.5, 0.25, 0.25]


def test_our_models_build_the_parsed_optimizer_and_scheduler_and_leave_opt_as_it_was():
    opt = training_options('ContrastiveSRModel', TINY_ENLCN)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 2e-4, 'betas': [0.8, 0.9]}
    opt['train']['scheduler'] = {'type': 'CosineAnnealingRestartLR', 'periods': [10, 10], 'restart_weights': [1, 0.5]}
    before = copy.deepcopy(opt)
    model = ContrastiveSRModel(opt)
    assert opt == before and model.opt['train'] == before['train']  # BasicSR's setup pops 'type' in place
    group = model.optimizer_g.param_groups[0]
    assert isinstance(model.optimizer_g, torch.optim.Adam) and group['initial_lr'] == 2e-4
    assert group['betas'] == (0.8, 0.9) or list(group['betas']) == [0.8, 0.9]
    assert [type(s).__name__ for s in model.schedulers] == ['CosineAnnealingRestartLR']
    assert model.schedulers[0].periods == [10, 10] and model.schedulers[0].restart_weights == [1, 0.5]
