"""Checkpoint files that are either whole or absent: written under a temporary name, fsynced, then renamed.

A kill or a full disk during ``torch.save`` leaves a truncated zip archive; written this way it never carries the
final name, and the previous checkpoints stay as they were.
"""
import os
import tempfile
from os import path as osp
from typing import Any, Dict, Optional

import torch

from basicsr_nlattn.utils.errors import OptionError


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, no permission): the message names the path and the cause."""


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (the folder entry), where the platform allows opening a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    The object is written to a temporary file in the same folder (same file system, so the rename is atomic),
    flushed and fsynced, then renamed over ``path``; on any failure the temporary file is removed, ``path`` (if it
    existed) is untouched and :class:`CheckpointWriteError` names ``path`` and the cause.
    """
    folder = osp.dirname(osp.abspath(path))
    temporary: Optional[str] = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
        with os.fdopen(descriptor, 'wb') as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        temporary = None
    except Exception as error:  # noqa: B902  (OSError, or torch's RuntimeError around a failed write)
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise CheckpointWriteError(f"cannot write '{path}': {cause}") from error
    finally:
        if temporary is not None and osp.exists(temporary):
            os.remove(temporary)
    _fsync_folder(folder)


def readable_checkpoint(path: str) -> Optional[str]:
    """None when ``path`` loads with ``torch.load(weights_only=True)``, else why not (one line)."""
    if not osp.isfile(path):
        return 'missing'
    try:
        torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception as error:  # noqa: B902  (a truncated zip, a pickle error, an unreadable file: all mean damaged)
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def read_network_state(path: str, key: str) -> Dict[str, torch.Tensor]:
    """The network weights in the checkpoint ``path``: ``params_ema``, else ``params``, else the file's own mapping
    (BasicSR's model files, or a bare state dict). OptionError, starting with ``key`` (the option or flag that named
    the file), when it is missing, not a PyTorch checkpoint or not a mapping."""
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
    return checkpoint.get('params_ema', checkpoint.get('params', checkpoint))
