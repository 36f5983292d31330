"""Which training state a run resumes from, and which ones it keeps on disk (``logger.keep_states``).

``--auto_resume`` takes the newest ``<iter>.state`` whose file and model files (``models/net_<x>_<iter>.pth`` of
every ``network_<x>`` BasicSR reloads) can be read; a damaged newer one is named in a warning and passed over. An
explicit ``path.resume_state`` that cannot be read is an error (one line) before anything is written.
"""
import os
from os import path as osp
from typing import Any, Dict, List, Optional, Tuple

import torch

from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.checkpoint_files import readable_checkpoint
from basicsr_nlattn.utils.errors import OptionError

STATE_SUFFIX = '.state'


def training_states_by_iteration(folder: str) -> List[Tuple[int, str]]:
    """(iteration, path) of every ``<iter>.state`` in ``folder``, newest first."""
    if not osp.isdir(folder):
        return []
    states = [(int(name[:-len(STATE_SUFFIX)]), osp.join(folder, name)) for name in os.listdir(folder)
              if name.endswith(STATE_SUFFIX) and name[:-len(STATE_SUFFIX)].isdigit()]
    return sorted(states, reverse=True)


def resumed_model_files(opt: Dict[str, Any], iteration: int) -> List[str]:
    """The model files BasicSR's ``check_resume`` loads for a state of ``iteration``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [
        osp.join(opt['path']['models'], f"net_{key[len('network_'):]}_{iteration}.pth") for key in opt
        if key.startswith('network_') and key not in ignored
    ]


def state_problem(opt: Dict[str, Any], state_path: str, iteration: int) -> Optional[str]:
    """Why a training state cannot be resumed from (it or a model file it names is unreadable), or None."""
    for path in [state_path] + resumed_model_files(opt, iteration):
        problem = readable_checkpoint(path)
        if problem is not None:
            return f"'{path}' {'is missing' if problem == 'missing' else 'cannot be read: ' + problem}"
    return None


def choose_resume_state(opt: Dict[str, Any]) -> Tuple[Optional[str], List[str]]:
    """The training state to resume from (None: start afresh) and the warnings about damaged ones passed over.

    Raises:
        OptionError: ``path.resume_state`` cannot be read, or ``--auto_resume`` finds states but none readable
            (starting afresh would archive the experiment folder).
    """
    if not opt.get('auto_resume'):
        path = opt['path'].get('resume_state')
        if not path:
            return None, []
        name = osp.basename(path)
        iteration = int(name[:-len(STATE_SUFFIX)]) if name[:-len(STATE_SUFFIX)].isdigit() else None
        problem = state_problem(opt, path, iteration) if iteration is not None else None
        if problem is None and iteration is None:
            readable = readable_checkpoint(path)
            problem = None if readable is None else f"'{path}' cannot be read: {readable}"
        if problem is not None:
            raise OptionError(f'path.resume_state: {problem}')
        return path, []
    warnings = []
    states = training_states_by_iteration(opt['path']['training_states'])
    for iteration, path in states:
        problem = state_problem(opt, path, iteration)
        if problem is None:
            if warnings:
                warnings.append(f'--auto_resume: resuming from the newest readable training state {path}')
            return path, warnings
        warnings.append(f'--auto_resume: training state {iteration} passed over: {problem}')
    if states:
        raise OptionError(f"--auto_resume: none of the {len(states)} training states in "
                          f"'{opt['path']['training_states']}' can be read ({warnings[0].split(': ', 1)[1]}); "
                          'nothing was changed. Remove them, or set path.resume_state, to go on')
    return None, []


def load_training_state(opt: Dict[str, Any], path: str) -> Dict[str, Any]:
    """The training state at ``path`` (``weights_only``), on the device the run trains on."""
    device = torch.device('cpu')
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        device = torch.device('cuda', torch.cuda.current_device())
    return torch.load(path, map_location=device, weights_only=True)


def prune_training_states(folder: str, keep: Optional[int]) -> Tuple[List[str], Optional[str]]:
    """Delete all but the ``keep`` newest training states (None: keep all), never leaving no readable one: the
    kept ones are checked newest first until one reads; when none does, nothing is deleted.

    Returns:
        (list[str], str | None): the deleted paths, and a warning when nothing could be deleted safely.
    """
    states = training_states_by_iteration(folder)
    if keep is None or len(states) <= keep:
        return [], None
    kept, removable = states[:keep], states[keep:]
    if all(readable_checkpoint(path) is not None for _, path in kept):
        return [], (f'logger.keep_states: none of the {keep} newest training states in {folder} can be read; '
                    'deleting none')
    for _, path in removable:
        os.remove(path)
    return [path for _, path in removable], None


def parse_keep_states(value: Any) -> Optional[int]:
    """``logger.keep_states`` (default: all, BasicSR's behaviour) -> the number of training states kept, or None."""
    if value is None:
        return None
    return validators.int_at_least('logger.keep_states', value, 1, ' (or absent: keep all)')
