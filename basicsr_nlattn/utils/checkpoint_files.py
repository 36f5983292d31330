"""Checkpoint files: saved whole or not at all (:func:`atomic_torch_save`), checked for readability, and the network
weights they hold (:func:`read_network_state`).
"""
from os import path as osp
from typing import Any, Dict, Optional

import torch

from basicsr_nlattn.utils.atomic_write import atomic_write
from basicsr_nlattn.utils.errors import CheckpointWriteError, OptionError

__all__ = ['CheckpointWriteError', 'atomic_torch_save', 'read_network_state', 'readable_checkpoint']


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through :func:`~basicsr_nlattn.utils.atomic_write.atomic_write`: never a partial
    file under ``path``. On any failure ``path`` (if it existed) is untouched and :class:`CheckpointWriteError` names
    ``path`` and the cause."""
    try:
        with atomic_write(path) as temporary:
            torch.save(obj, temporary)
    except Exception as error:  # noqa: B902  (OSError, or torch's RuntimeError around a failed write)
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise CheckpointWriteError(f"cannot write '{path}': {cause}") from error


def readable_checkpoint(path: str) -> Optional[str]:
    """None when ``path`` loads with ``torch.load(weights_only=True)``, else why not (one line)."""
    if not osp.isfile(path):
        return 'missing'
    try:
        torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as error:  # noqa: B902  (a truncated zip, a pickle error, an unreadable file: all mean damaged)
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def read_network_state(path: str, key: str, param_key: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The network weights in the checkpoint ``path``: the entry ``param_key`` when given, else ``params_ema``, else
    ``params``, else the file's own mapping (BasicSR's model files, or a bare state dict).

    OptionError, starting with ``key`` (the option or flag that named the file), when it is missing, not a PyTorch
    checkpoint or not a mapping; starting with ``path.param_key_g`` when it has no entry ``param_key``.
    """
    if not osp.isfile(path):
        raise OptionError(f"{key}: checkpoint '{path}' does not exist")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: B902  (other bytes: KeyError, UnpicklingError, EOFError... from the unpickler)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise OptionError(
            f"{key}: '{path}' is not a PyTorch checkpoint ({type(error).__name__}: {first_line})") from error
    if not isinstance(checkpoint, dict):
        raise OptionError(f"{key}: '{path}' holds a {type(checkpoint).__name__}, not a state dict")
    if param_key is not None:
        if not isinstance(checkpoint.get(param_key), dict):
            entries = sorted(name for name, value in checkpoint.items() if isinstance(value, dict))
            raise OptionError(f"path.param_key_g: '{path}' has no entry '{param_key}' (entries that are mappings: "
                              f"{', '.join(entries) or 'none'})")
        return checkpoint[param_key]
    return checkpoint.get('params_ema', checkpoint.get('params', checkpoint))
