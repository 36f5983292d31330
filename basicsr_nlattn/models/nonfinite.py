"""``train.nonfinite``: an update whose loss or gradient is NaN/Inf on any rank is skipped on all ranks.

Official NLSN users report ``PSNR: nan`` after a run diverged: one non-finite batch makes Adam's moments NaN and
every later weight NaN. Here each optimizer step first checks its losses and gradients; the ranks agree in one
collective (a NaN on one rank would otherwise reach all of them through DDP's all-reduce), and all skip the update.
After more than ``max_consecutive`` skipped updates in a row (or at the first with ``action: stop``) the run stops:
the model raises :class:`NonFiniteStop` and ``basicsr train`` saves the last good weights and exits (status 3).
"""
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

import torch
from torch import Tensor, nn

from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.distributed import agree_on_ranks

ACTIONS = ('skip', 'stop')
GRADIENT_TERM = 'gradient'


class NonFiniteStop(RuntimeError):
    """Raised on every rank when the non-finite updates exceed ``train.nonfinite``; the message is one line."""


class NonFiniteOptions(NamedTuple):
    action: str
    max_consecutive: int


def parse_nonfinite(value: Any) -> NonFiniteOptions:
    """``train.nonfinite`` (default ``{action: skip, max_consecutive: 10}``), validated by key."""
    if value is None:
        value = {}
    validators.mapping('train.nonfinite', value, ('action', 'max_consecutive'),
                       '{action: skip|stop, max_consecutive: N}')
    action = validators.choice('train.nonfinite.action', value.get('action', 'skip'), ACTIONS)
    max_consecutive = validators.int_at_least('train.nonfinite.max_consecutive', value.get('max_consecutive', 10), 0)
    return NonFiniteOptions(action, max_consecutive)


def nonfinite_terms(losses: Mapping[str, Tensor], net: nn.Module, check_gradients: bool) -> List[bool]:
    """Per loss term (in order), then for the gradients of ``net`` when ``check_gradients``: whether it is not
    finite. Read with one device synchronisation."""
    flags = [value.detach().float().sum().reshape(1) for value in losses.values()]
    if check_gradients:
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        flags.append(torch.stack(torch._foreach_norm(grads)).sum().reshape(1) if grads else torch.zeros(1))
    if not flags:
        return []
    device = flags[0].device
    return torch.cat([flag.to(device) for flag in flags]).isfinite().logical_not().tolist()


class NonFiniteGuard:
    """Counts the skipped updates of each network and decides when the run stops (``train.nonfinite``)."""

    def __init__(self, options: NonFiniteOptions) -> None:
        self.options = options
        self.consecutive: Dict[str, int] = {}
        self.skipped_total = 0

    def check(self, label: str, current_iter: int, losses: Mapping[str, Tensor], net: nn.Module, check_gradients: bool,
              device: torch.device) -> Optional[str]:
        """Whether the update of ``label`` (``net_g``, ``net_d``) at ``current_iter`` must be skipped on all ranks.

        Returns None to step, or the log line of the skip. Raises :class:`NonFiniteStop` when the run must stop."""
        names = list(losses) + ([GRADIENT_TERM] if check_gradients else [])
        agreed = agree_on_ranks(nonfinite_terms(losses, net, check_gradients), device)
        found = [f'{name} (rank {value - 1})' for name, value in zip(names, agreed) if value]
        if not found:
            self.consecutive[label] = 0
            return None
        count = self.consecutive.get(label, 0) + 1
        self.consecutive[label] = count
        self.skipped_total += 1
        what = f'iter {current_iter}: non-finite {", ".join(found)}'
        if self.options.action == 'stop' or count > self.options.max_consecutive:
            reason = ('train.nonfinite.action is stop' if self.options.action == 'stop' else
                      f'{count} updates of {label} in a row, more than train.nonfinite.max_consecutive '
                      f'{self.options.max_consecutive}')
            raise NonFiniteStop(f'{what}; stopping ({reason}); the weights of the last good update are saved')
        return (f'{what}: update of {label} skipped ({count} in a row; train.nonfinite.max_consecutive '
                f'{self.options.max_consecutive})')
