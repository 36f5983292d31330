"""Shared fixtures: the demo data (made once per session, x4 only), tiny variants of the demo option, and runners
for the real ``basicsr`` command and ``torchrun``."""
import copy
import os
import re
import socket
import subprocess
import sys
from os import path as osp
from typing import Any, Dict, List, Optional

import pytest
import torch
import yaml

import basicsr_nlattn  # noqa: F401  (applies compat: test modules import basicsr, which needs it first)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_OPTION = osp.join(REPO_ROOT, 'options', 'demo', 'train_demo_x4.yml')
BIN_DIR = osp.dirname(sys.executable)


@pytest.fixture(scope='session')
def demo_data_root(tmp_path_factory) -> str:
    """A working directory holding ``datasets/demo`` made by ``scripts/make_demo_data.py`` (scale 4)."""
    root = tmp_path_factory.mktemp('demo_workdir')
    script = osp.join(REPO_ROOT, 'scripts', 'make_demo_data.py')
    command = [sys.executable, script, '--output', str(root / 'datasets' / 'demo'), '--scales', '4']
    subprocess.run(command, check=True, capture_output=True)
    return str(root)


def load_yaml(path: str) -> Dict[str, Any]:
    with open(path, encoding='utf-8') as file:
        return yaml.safe_load(file)


def tiny_demo_option(name: str, total_iter: int = 40, **overrides: Any) -> Dict[str, Any]:
    """The demo option (ENLCN x4) made tiny (16 features, 2 blocks) with small batches: seconds on two CPU cores.

    ``overrides`` are ``section__key=value`` pairs, e.g. ``logger__save_checkpoint_freq=20``.
    """
    opt = copy.deepcopy(load_yaml(DEMO_OPTION))
    opt['name'] = name
    opt['network_g'].update(num_feat=16, num_block=2)
    opt['datasets']['train'].update(batch_size_per_gpu=4, gt_size=64, dataset_enlarge_ratio=200)
    opt['train']['total_iter'] = total_iter
    opt['train']['scheduler']['milestones'] = [total_iter * 10]
    opt['val']['val_freq'] = total_iter
    opt['logger'].update(print_freq=10, save_checkpoint_freq=total_iter)
    for key, value in overrides.items():
        section, option = key.split('__')
        opt[section][option] = value
    return opt


def write_option(opt: Dict[str, Any], folder: str, filename: str = 'option.yml') -> str:
    path = osp.join(folder, filename)
    with open(path, 'w', encoding='utf-8') as file:
        yaml.safe_dump(opt, file, sort_keys=False)
    return path


def subprocess_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')
    return env


def basicsr_command() -> List[str]:
    """The installed console script (``pip install -e .`` puts it beside the interpreter)."""
    script = osp.join(BIN_DIR, 'basicsr')
    assert osp.isfile(script), f'the basicsr console script is not installed next to {sys.executable}'
    return [script]


def run_basicsr(args: List[str], cwd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        basicsr_command() + args, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun_command(nproc: int, module: str, args: List[str]) -> List[str]:
    return [
        osp.join(BIN_DIR, 'torchrun'), f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
        f'--master_port={free_port()}', '-m', module
    ] + args


def experiment_log(experiments_root: str, phase: str = 'train') -> str:
    """Text of the (newest) BasicSR log file of an experiment folder."""
    logs = sorted(name for name in os.listdir(experiments_root) if name.startswith(phase) and name.endswith('.log'))
    assert logs, f'no {phase} log in {experiments_root}: {os.listdir(experiments_root)}'
    with open(osp.join(experiments_root, logs[-1]), encoding='utf-8') as file:
        return file.read()


def validation_psnrs(log_text: str) -> List[float]:
    """The ``# psnr:`` values that BasicSR's validation logs, in order."""
    return [float(value) for value in re.findall(r'# psnr: ([0-9.]+)', log_text)]


def check_ok(result: subprocess.CompletedProcess, what: Optional[str] = None) -> None:
    assert result.returncode == 0, f'{what or result.args} failed ({result.returncode}):\n{result.stdout[-4000:]}' \
        f'\n{result.stderr[-4000:]}'


def inference_model(network_g: Dict[str, Any],
                    scale: int,
                    pretrain_network_g: Optional[str] = None,
                    tile: Optional[Dict[str, Any]] = None,
                    self_ensemble: bool = False):
    """A ContrastiveSRModel in test mode (BasicSR's option keys), on the CPU, optionally loading weights strictly."""
    from basicsr_nlattn.models import ContrastiveSRModel
    path = {} if pretrain_network_g is None else {'pretrain_network_g': pretrain_network_g, 'strict_load_g': True}
    return ContrastiveSRModel({
        'is_train': False,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'scale': scale,
        'network_g': copy.deepcopy(network_g),
        'path': path,
        'val': {
            'tile': tile,
            'self_ensemble': self_ensemble
        }
    })


def training_options(model_type: str,
                     network_g: Dict[str, Any],
                     scale: int = 2,
                     manual_seed: int = 5,
                     path: Optional[Dict[str, Any]] = None,
                     **train: Any) -> Dict[str, Any]:
    """Options of a model in training mode on the CPU, as BasicSR's parse_options leaves them (Adam 1e-3, L1)."""
    return {
        'name': 'unit',
        'model_type': model_type,
        'is_train': True,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'scale': scale,
        'manual_seed': manual_seed,
        'network_g': copy.deepcopy(network_g),
        'path': {
            'strict_load_g': True,
            **(path or {})
        },
        'train': {
            'ema_decay': 0,
            'optim_g': {
                'type': 'Adam',
                'lr': 1e-3
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [1000],
                'gamma': 0.5
            },
            'pixel_opt': {
                'type': 'L1Loss',
                'loss_weight': 1.0
            },
            **copy.deepcopy(train)
        },
        'val': {}
    }


def gradients_at_step(optimizer: torch.optim.Optimizer) -> List[List[Optional[torch.Tensor]]]:
    """Record, at each ``optimizer.step()``, copies of the gradients it is about to apply (after any clipping).

    Returns:
        list: grows by one list per step, a cloned ``grad`` (or None) per parameter, in ``param_groups`` order.
    """
    steps: List[List[Optional[torch.Tensor]]] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        steps.append([
            None if p.grad is None else p.grad.detach().clone() for group in optimizer.param_groups
            for p in group['params']
        ])

    optimizer.register_step_pre_hook(record)
    return steps


def gradient_norm(gradients: List[Optional[torch.Tensor]]) -> torch.Tensor:
    """Total 2-norm of a list of gradients (None entries skipped), as ``clip_grad_norm_`` measures it."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients if g is not None]))
