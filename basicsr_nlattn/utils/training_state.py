"""Model files and training states written atomically, with what an exact resume needs.

BasicSR's ``save_network`` / ``save_training_state`` write with plain ``torch.save`` to the final name (a kill or a
full disk leaves a truncated file that ``--auto_resume`` then picks) and, when a write fails three times, log a
warning and train on. Here every file is written by :func:`atomic_torch_save` and a failed write raises
:class:`CheckpointWriteError`, which ``basicsr train`` reports in one line naming the path.

:mod:`basicsr_nlattn.compat` (fix 6) installs these methods on BasicSR's ``BaseModel``, so every model that
``basicsr train`` runs (``SRModel``, ``SRGANModel``, ``ESRGANModel``, ours and any subclass) saves this way.
"""
import os
from typing import Any, Dict, List, Union

import torch
from basicsr.utils.dist_util import master_only
from torch import nn

from basicsr_nlattn.utils.checkpoint_files import atomic_torch_save


class AtomicCheckpointsMixin:
    """For a BasicSR model: atomic ``save_network`` and ``save_training_state`` (installed on ``BaseModel``).

    The training state holds BasicSR's keys (``epoch``, ``iter``, ``optimizers``, ``schedulers``), the GradScalers
    of ``_grad_scalers()`` under ``grad_scalers`` (only where a model has some: a subclass overrides it) and the
    entries of ``training_state_extras`` (a dict the training loop fills before each save: RNG states and the data
    position). BasicSR's own ``resume_training`` reads only its keys, so the file resumes with plain BasicSR too.
    """

    # What basicsr_nlattn.compat installs on BasicSR's BaseModel.
    CHECKPOINT_ATTRIBUTES = ('training_state_extras', '_grad_scalers', 'save_network', 'training_state',
                             'save_training_state')

    training_state_extras: Dict[str, Any] = {}

    def _grad_scalers(self) -> Dict[str, torch.amp.GradScaler]:
        """The GradScalers to save, by network label: none (BasicSR's models train without one)."""
        return {}

    @master_only
    def save_network(self,
                     net: Union[nn.Module, List[nn.Module]],
                     net_label: str,
                     current_iter: int,
                     param_key: Union[str, List[str]] = 'params') -> None:
        """BasicSR's ``save_network`` (``<label>_<iter>.pth``, ``latest`` for -1, ``module.`` prefixes removed,
        tensors on the CPU), written atomically."""
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
        save_dict = {}
        for one_net, key in zip(nets, keys):
            state_dict = self.get_bare_model(one_net).state_dict()
            save_dict[key] = {
                (name[len('module.'):] if name.startswith('module.') else name): value.cpu()
                for name, value in state_dict.items()
            }
        label = 'latest' if current_iter == -1 else current_iter
        atomic_torch_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    def training_state(self, epoch: int, current_iter: int) -> Dict[str, Any]:
        """The dict ``save_training_state`` writes."""
        state: Dict[str, Any] = {
            'epoch': epoch,
            'iter': current_iter,
            'optimizers': [optimizer.state_dict() for optimizer in self.optimizers],
            'schedulers': [scheduler.state_dict() for scheduler in self.schedulers],
        }
        scalers = self._grad_scalers()
        if scalers:
            state['grad_scalers'] = {label: scaler.state_dict() for label, scaler in scalers.items()}
        state.update(self.training_state_extras)
        return state

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """``<training_states>/<iter>.state``, written atomically in one write (nothing for ``current_iter`` -1)."""
        if current_iter == -1:
            return
        path = os.path.join(self.opt['path']['training_states'], f'{current_iter}.state')
        atomic_torch_save(self.training_state(epoch, current_iter), path)
