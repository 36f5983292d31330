"""Files that are either whole or absent: written under a temporary name in the same folder, fsynced, then renamed.

A kill or a full disk during a write leaves a truncated file; written this way it never carries the final name, and
a file that was there before stays as it was until the new one is complete.
"""
import contextlib
import os
import tempfile
from os import path as osp
from typing import Iterator


def fsync_folder(folder: str) -> None:
    """Make a rename itself durable (the folder entry), where the platform allows opening a folder."""
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


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path`` for the caller to write; on leaving the block without an exception the
    temporary file is fsynced and renamed over ``path`` (the folder is created when missing).

    On any exception inside the block (a failed write, a check of the written file that fails) the temporary file is
    removed, ``path`` is untouched and the exception propagates. The temporary name is ``.<name>.<random>.tmp`` in the
    same folder (same file system, so the rename is atomic); writers that choose a format by the extension must be
    told the format.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    os.close(descriptor)
    try:
        yield temporary
        with open(temporary, 'rb') as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if osp.exists(temporary):
            os.remove(temporary)
    fsync_folder(folder)


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`."""
    with atomic_write(path) as temporary:
        with open(temporary, 'w', encoding='utf-8') as file:
            file.write(text)


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` with :func:`atomic_write`."""
    with atomic_write(path) as temporary:
        with open(temporary, 'wb') as file:
            file.write(data)


def save_figure(figure, path: str, dpi: int = 80) -> None:
    """``figure.savefig`` into ``path`` with :func:`atomic_write`, the format taken from the extension of ``path``
    (PNG when it has none)."""
    extension = osp.splitext(path)[1][1:].lower() or 'png'
    with atomic_write(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format=extension)
