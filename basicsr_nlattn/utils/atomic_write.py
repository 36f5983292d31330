"""Files that are either whole or absent: written under a temporary name in the same folder, fsynced, then renamed.

A kill or a full disk during a write leaves a truncated file; written this way it never carries the final name, and
a file that was there before stays as it was until the new one is complete. A SIGKILL during the write leaves the
temporary file (``.<name>.<8 random characters>.tmp``); :func:`remove_temporaries` finds and removes those.
"""
import contextlib
import os
import re
import tempfile
from os import path as osp
from typing import Iterable, Iterator, List

TEMPORARY_SUFFIX = '.tmp'
# tempfile.mkstemp puts 8 characters of its random name sequence between the prefix and the suffix
TEMPORARY_NAME = re.compile(r'\..+\.[a-z0-9_]{8}' + re.escape(TEMPORARY_SUFFIX))


def _temporary_prefix(name: str) -> str:
    return f'.{name}.'


def is_temporary_name(name: str) -> bool:
    """Whether the file name ``name`` is one that :func:`atomic_write` gives its temporary files."""
    return TEMPORARY_NAME.fullmatch(name) is not None


def remove_temporaries(folders: Iterable[str]) -> List[str]:
    """Remove the temporary files of :func:`atomic_write` that a killed process left in each of ``folders`` (not
    their subfolders; a folder that does not exist is skipped). Returns the removed paths.

    Only for folders no other process is writing to at the time: a write in progress would lose its file."""
    removed = []
    for folder in folders:
        if not osp.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            path = osp.join(folder, name)
            if is_temporary_name(name) and osp.isfile(path) and not osp.islink(path):
                os.remove(path)
                removed.append(path)
    return removed


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
    descriptor, temporary = tempfile.mkstemp(
        prefix=_temporary_prefix(osp.basename(path)), suffix=TEMPORARY_SUFFIX, dir=folder)
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
