"""Unreadable samples named in one line: which dataset, which image, which file or LMDB key, and why.

BasicSR reads an image with ``cv2.imdecode`` and goes on with whatever comes back: a corrupt PNG or a key missing
from an LMDB ends in ``'NoneType' object has no attribute 'astype'`` deep in a data-loader worker. Here the failed
sample is probed image by image (with a file client of its own) to say what is wrong.
"""
from typing import Any, Dict, List, Mapping, Optional, Tuple

import cv2
import numpy as np
from basicsr.utils import FileClient

from basicsr_nlattn.utils import validators

DEFAULT_MAX_BAD_FRACTION = 0.01
_PATH_SUFFIX = '_path'


class DataFault(RuntimeError):
    """A sample that cannot be loaded; the message is one line naming the dataset and the file or key.

    Raised in a data-loader worker, it reaches the training process wrapped in torch's worker traceback:
    :func:`data_fault_line` takes the line back out."""


def data_fault_line(error: BaseException) -> str:
    """The one-line message of a :class:`DataFault`, also when torch re-raised it from a worker."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    marker = f'{DataFault.__name__}: '
    for line in reversed(lines):
        if marker in line:
            return line.split(marker, 1)[1]
    return lines[-1] if lines else type(error).__name__


def parse_skip_bad(phase: str, dataset_opt: Mapping[str, Any]) -> Tuple[bool, float]:
    """``datasets.<phase>.skip_bad`` (default false) and ``skip_bad_max_fraction`` (default 0.01), validated."""
    skip_bad = validators.boolean(f'datasets.{phase}.skip_bad', dataset_opt.get('skip_bad', False))
    fraction = validators.number(f'datasets.{phase}.skip_bad_max_fraction',
                                 dataset_opt.get('skip_bad_max_fraction', DEFAULT_MAX_BAD_FRACTION), 0, 1)
    return skip_bad, float(fraction)


def _sample_images(dataset: Any, index: int) -> List[Tuple[str, str]]:
    """(client key, path or LMDB key) of each image of sample ``index`` of a BasicSR dataset (its ``paths``)."""
    paths = getattr(dataset, 'paths', None)
    if paths is None or not 0 <= index < len(paths):
        return []
    entry = paths[index]
    if isinstance(entry, Mapping):
        return [(key[:-len(_PATH_SUFFIX)], str(value)) for key, value in entry.items() if key.endswith(_PATH_SUFFIX)]
    return [('default', str(entry))]


def _probe_image(client: FileClient, backend: Dict[str, Any], client_key: str, path: str) -> Optional[str]:
    """Why one image cannot be read, or None when it decodes."""
    is_lmdb = backend.get('type') == 'lmdb'
    where = path
    if is_lmdb:
        folders = dict(zip(backend.get('client_keys', ['default']), backend.get('db_paths', [])))
        where = f"key '{path}' of {folders.get(client_key, 'the LMDB')}"
    try:
        content = client.get(path, client_key) if is_lmdb else client.get(path)
    except FileNotFoundError:
        return f"file '{path}' does not exist"
    except Exception as error:  # noqa: B902  (any read failure is the answer)
        return f'{where}: {str(error).splitlines()[0] if str(error) else type(error).__name__}'
    if content is None:
        return f'{where} is missing' if is_lmdb else f"'{path}' is empty"
    if cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED) is None:
        return f'{where if is_lmdb else repr(path)} is not a readable image (corrupt or truncated)'
    return None


def describe_fault(dataset: Any, backend: Dict[str, Any], index: int, error: BaseException, label: str) -> str:
    """One line for a sample whose loading raised ``error``: the first of its images that cannot be read, or,
    when they all read, the sample's files and the error itself."""
    images = _sample_images(dataset, index)
    if images and backend.get('type') in ('disk', 'lmdb'):
        # the dataset's own client when it has opened one (LMDB refuses a second environment in one process)
        options = {key: value for key, value in backend.items() if key != 'type'}
        client = getattr(dataset, 'file_client', None) or FileClient(backend['type'], **options)
        for client_key, path in images:
            problem = _probe_image(client, backend, client_key, path)
            if problem is not None:
                return f'{label}: cannot read the {client_key} image of sample {index}: {problem}'
    files = ', '.join(f'{key} {path}' for key, path in images) or f'sample {index}'
    cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f'{label}: loading {files} failed: {type(error).__name__}: {cause}'
