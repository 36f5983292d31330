"""Shared fixtures (the demo data, made once per session, x4 only). Helpers live in ``tests/helpers/``."""
import os
import subprocess
import sys
from os import path as osp

import pytest
import torch
from helpers.runs import REPO_ROOT

import basicsr_nlattn  # noqa: F401  (applies compat: test modules import basicsr, which needs it first)

if os.environ.get('PYTEST_XDIST_WORKER'):
    # Workers share the machine's cores: one thread each, as the training processes the tests start have
    # (OMP_NUM_THREADS=1 in helpers.runs.subprocess_env), so no worker's thread pool waits on another's.
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory) -> str:
    """A working directory holding ``datasets/demo`` made by ``scripts/make_demo_data.py`` (scale 4)."""
    root = tmp_path_factory.mktemp('demo_workdir')
    script = osp.join(REPO_ROOT, 'scripts', 'make_demo_data.py')
    command = [sys.executable, script, '--output', str(root / 'datasets' / 'demo'), '--scales', '4']
    subprocess.run(command, check=True, capture_output=True)
    return str(root)
