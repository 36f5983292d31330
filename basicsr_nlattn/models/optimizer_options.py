"""``train.optim_*`` and ``train.scheduler`` as BasicSR 1.4.2 reads them, validated in full before a run starts.

BasicSR's ``BaseModel.get_optimizer`` knows ``Adam`` only (anything else raises ``NotImplementedError`` when the
model is built, after the experiment folder is made), and ``setup_schedulers`` knows ``MultiStepLR``,
``MultiStepRestartLR`` and ``CosineAnnealingRestartLR``; both pop ``type`` out of the options in place. Here the
options are read from copies, every argument is checked by name, and the rest (values torch itself refuses) by
building the optimizer on one dummy parameter and the scheduler on that optimizer.
"""
import copy
import inspect
from typing import Any, Dict, List, Mapping, NamedTuple

import torch
from basicsr.models.base_model import BaseModel
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR

from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError

BASICSR_OPTIMIZERS = ('Adam', )  # basicsr 1.4.2 BaseModel.get_optimizer
BASICSR_SCHEDULERS = {
    'MultiStepLR': MultiStepRestartLR,  # BaseModel.setup_schedulers builds both with MultiStepRestartLR
    'MultiStepRestartLR': MultiStepRestartLR,
    'CosineAnnealingRestartLR': CosineAnnealingRestartLR,
}


class OptimizerOptions(NamedTuple):
    """An optimizer of ``train.optim_*``: its ``type`` and the keyword arguments ``get_optimizer`` passes on."""
    type: str
    arguments: Dict[str, Any]

    def build(self, model: BaseModel, params: Any) -> torch.optim.Optimizer:
        """``model.get_optimizer(type, params, **arguments)``, with a copy of the arguments."""
        return model.get_optimizer(self.type, params, **copy.deepcopy(self.arguments))


class SchedulerOptions(NamedTuple):
    """``train.scheduler``: its ``type`` and the keyword arguments of its BasicSR class."""
    type: str
    arguments: Dict[str, Any]

    def build(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The scheduler of ``optimizer``, as BaseModel.setup_schedulers makes it."""
        return BASICSR_SCHEDULERS[self.type](optimizer, **copy.deepcopy(self.arguments))


def _argument_names(function: Any, skipped: int) -> List[str]:
    """The keyword arguments of ``function`` after its first ``skipped`` (params, optimizer)."""
    parameters = list(inspect.signature(function).parameters.values())[skipped:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _dummy_parameters() -> List[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(1))]


def parse_optimizer(key: str, value: Any, model_class: type = BaseModel) -> OptimizerOptions:
    """``train.optim_g`` (``key``; or ``optim_d``) as BasicSR's ``get_optimizer(type, params, lr, **arguments)``
    reads it: ``type`` one of :data:`BASICSR_OPTIMIZERS` and ``lr`` a number >= 0, the other arguments those of the
    ``torch.optim`` class, checked by building it on a dummy parameter. A ``model_class`` with its own
    ``get_optimizer`` may know other types: then only the type's name and ``lr`` are checked."""
    optimizer_type = validators.typed_mapping(key, value, 'an optimizer')
    arguments = {name: value[name] for name in value if name != 'type'}
    own_optimizers = getattr(model_class, 'get_optimizer', None) is not BaseModel.get_optimizer
    if not own_optimizers:
        validators.choice(f'{key}.type', optimizer_type, BASICSR_OPTIMIZERS, " (BasicSR's get_optimizer)")
    validators.number(f'{key}.lr', arguments.get('lr'), 0)
    if own_optimizers:
        return OptimizerOptions(optimizer_type, arguments)
    optimizer_class = getattr(torch.optim, optimizer_type)
    allowed = _argument_names(optimizer_class, 1)
    validators.reject_unknown_keys(key, arguments, allowed + ['type'], f' of torch.optim.{optimizer_type}')
    try:
        optimizer_class(_dummy_parameters(), **copy.deepcopy(arguments))
    except (ValueError, TypeError, RuntimeError) as error:
        raise OptionError(f'{key}: torch.optim.{optimizer_type} refuses {arguments}: '
                          f'{str(error).splitlines()[0] if str(error) else type(error).__name__}') from error
    return OptimizerOptions(optimizer_type, arguments)


def _check_multistep(key: str, arguments: Mapping[str, Any]) -> None:
    validators.int_list(f'{key}.milestones', arguments.get('milestones'), 1, increasing=True)
    validators.number(f'{key}.gamma', arguments.get('gamma', 0.1), 0, low_open=True)
    restarts = validators.int_list(f'{key}.restarts', arguments.get('restarts', [0]), 0, increasing=True)
    validators.number_list(f'{key}.restart_weights', arguments.get('restart_weights', [1]), 0, len(restarts),
                           'one per entry of restarts')


def _check_cosine(key: str, arguments: Mapping[str, Any]) -> None:
    periods = validators.int_list(f'{key}.periods', arguments.get('periods'), 1)
    validators.number_list(f'{key}.restart_weights', arguments.get('restart_weights', [1]), 0, len(periods),
                           'one per entry of periods')
    validators.number(f'{key}.eta_min', arguments.get('eta_min', 0), 0)


def parse_scheduler(key: str, value: Any) -> SchedulerOptions:
    """``train.scheduler`` as BasicSR's ``setup_schedulers`` reads it: ``type`` one of :data:`BASICSR_SCHEDULERS`;
    ``milestones`` (MultiStep*) or ``periods`` (cosine) lists of ints >= 1, milestones and ``restarts`` in increasing
    order, one ``restart_weights`` entry per restart or period; the rest checked by building it on a dummy
    optimizer."""
    scheduler_type = validators.typed_mapping(key, value, 'a scheduler')
    arguments = {name: value[name] for name in value if name != 'type'}
    validators.choice(f'{key}.type', scheduler_type, list(BASICSR_SCHEDULERS), " (BasicSR's setup_schedulers)")
    scheduler_class = BASICSR_SCHEDULERS[scheduler_type]
    allowed = [name for name in _argument_names(scheduler_class, 1) if name != 'last_epoch']
    validators.reject_unknown_keys(key, arguments, allowed + ['type'], f' of {scheduler_class.__name__}')
    if scheduler_class is MultiStepRestartLR:
        _check_multistep(key, arguments)
    else:
        _check_cosine(key, arguments)
    options = SchedulerOptions(scheduler_type, arguments)
    try:
        options.build(torch.optim.SGD(_dummy_parameters(), lr=1.0))
    except (ValueError, TypeError, RuntimeError, AssertionError) as error:
        raise OptionError(f'{key}: {scheduler_class.__name__} refuses {arguments}: '
                          f'{str(error).splitlines()[0] if str(error) else type(error).__name__}') from error
    return options
