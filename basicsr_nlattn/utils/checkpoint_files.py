"""Checkpoint files: saved whole or not at all (:func:`atomic_torch_save`), checked for readability, and the network
weights they hold (:func:`read_network_state`).
"""
import zipfile
from os import path as osp
from typing import Any, Dict, List, Optional

import torch

from basicsr_nlattn.utils.atomic_write import atomic_write
from basicsr_nlattn.utils.errors import CheckpointWriteError, OptionError

__all__ = [
    'CheckpointWriteError', 'atomic_torch_save', 'checkpoint_entries', 'read_network_state', 'readable_checkpoint'
]


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


_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6: a zip archive
# torch.save's format before 1.6: a pickle (protocol 2) that starts with torch's magic number, pickled as a long
_LEGACY_MAGIC = b'\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20\x6a\xa8'


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [''])[0] or type(error).__name__


def readable_checkpoint(path: str) -> Optional[str]:
    """None when ``path`` is a readable PyTorch checkpoint, else what it is, in a few words: ``'missing'``,
    ``'empty (0 bytes)'``, ``'truncated, a zip archive cut short at N bytes ...'``, ``'not a PyTorch checkpoint
    (...)'`` or ``'damaged (...)'``.

    Read without loading the tensors: the archive's records are checked, then ``torch.load(weights_only=True,
    mmap=True)`` reads its structure and maps the storages. A file in torch's format before 1.6 (not a zip archive,
    so it cannot be mapped) is loaded whole.
    """
    if not osp.isfile(path):
        return 'missing'
    size = osp.getsize(path)
    if size == 0:
        return 'empty (0 bytes)'
    with open(path, 'rb') as file:
        head = file.read(len(_LEGACY_MAGIC))
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return (f'truncated, a zip archive cut short at {size} bytes (its central directory is missing: an '
                    'interrupted write or copy)')
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith('data.pkl') for name in archive.namelist()):
                return 'not a PyTorch checkpoint (a zip archive without data.pkl)'
        mmap = True
    elif head == _LEGACY_MAGIC:
        mmap = False
    else:
        return f'not a PyTorch checkpoint (neither a zip archive nor a torch pickle; it begins with {head!r})'
    try:
        torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except Exception as error:  # noqa: B902  (any failure of a file that looked like a checkpoint means damaged)
        return f'damaged ({type(error).__name__}: {_first_line(error)})'
    return None


def checkpoint_entries(path: str) -> List[str]:
    """The names of the entries of a readable checkpoint (:func:`readable_checkpoint`) that hold a mapping of
    weights (``params``, ``params_ema``), read without loading the tensors where the format allows."""
    with open(path, 'rb') as file:
        mmap = file.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    state = torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    return sorted(name for name, value in state.items() if isinstance(value, dict)) if isinstance(state, dict) else []


def read_network_state(path: str, key: str, param_key: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """The network weights in the checkpoint ``path``: the entry ``param_key`` when given, else ``params_ema``, else
    ``params``, else the file's own mapping (BasicSR's model files, or a bare state dict).

    OptionError, starting with ``key`` (the option or flag that named the file), when it is missing, cannot be read
    (:func:`readable_checkpoint` says what it is) or is not a mapping; starting with ``path.param_key_g`` when it has
    no entry ``param_key``.
    """
    if not osp.isfile(path):
        raise OptionError(f"{key}: checkpoint '{path}' does not exist")
    problem = readable_checkpoint(path)
    if problem is not None:
        raise OptionError(f"{key}: '{path}' cannot be read: {problem}")
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # noqa: B902  (read once above: what fails now is the file's content)
        raise OptionError(f"{key}: '{path}' cannot be read: damaged ({type(error).__name__}: "
                          f'{_first_line(error)})') from error
    if not isinstance(checkpoint, dict):
        raise OptionError(f"{key}: '{path}' holds a {type(checkpoint).__name__}, not a state dict")
    if param_key is not None:
        if not isinstance(checkpoint.get(param_key), dict):
            entries = sorted(name for name, value in checkpoint.items() if isinstance(value, dict))
            raise OptionError(f"path.param_key_g: '{path}' has no entry '{param_key}' (entries that are mappings: "
                              f"{', '.join(entries) or 'none'})")
        return checkpoint[param_key]
    return checkpoint.get('params_ema', checkpoint.get('params', checkpoint))
