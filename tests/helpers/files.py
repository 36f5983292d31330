"""What the tests compare to show that nothing on disk changed."""
import os
from os import path as osp
from typing import Dict


def file_bytes(folder: str) -> Dict[str, bytes]:
    """Every file under ``folder`` (its path relative to ``folder``) with its bytes."""
    files = {}
    for parent, _, names in os.walk(folder):
        for name in names:
            path = osp.join(parent, name)
            with open(path, 'rb') as file:
                files[osp.relpath(path, folder)] = file.read()
    return files
