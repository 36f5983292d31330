"""Tiny training runs for the long-run tests: option files that cross an epoch boundary in a few iterations, and
the weights they end with."""
import logging
import os
import re
import subprocess
import time
from os import path as osp
from typing import Any, Callable, Dict, List, Optional

import torch
from helpers.options import tiny_demo_option, write_option
from helpers.runs import basicsr_command, subprocess_env

# 11 demo images, batch 2, no enlargement: 5 iterations an epoch (BasicSR's loader drops the last, partial batch).
ITERS_PER_EPOCH = 5
NETWORKS = {
    'ENLCN': {
        'type': 'ENLCN',
        'num_feat': 8,
        'num_block': 2,
        'attn_every': 2,
        'reduction': 2,
        'num_random_features': 8,
        'redraw_interval': 2,
    },
    'NLSN': {
        'type': 'NLSN',
        'num_feat': 8,
        'num_block': 2,
        'attn_every': 2,
        'chunk_size': 16,
        'n_hashes': 2,
        'reduction': 2,
    },
    'EDSR': {
        'type': 'EDSR',
        'num_feat': 8,
        'num_block': 1,
    },
}


def long_run_option(kind: str,
                    name: str,
                    experiments_root: str,
                    demo_data_root: str,
                    total_iter: int,
                    save_freq: int,
                    workers: int = 0) -> Dict[str, Any]:
    """A tiny run of ``kind`` under ``experiments_root``, data read from ``demo_data_root`` whatever the working
    directory: ENLCN with its contrastive loss and redraws, NLSN, PCL (EDSR with a Haar D), or BasicSR's own models,
    SRModel (EDSR with EMA) and ESRGAN (ESRGANModel: EDSR, pixel and GAN losses, a U-Net D)."""
    opt = tiny_demo_option(
        name,
        total_iter=total_iter,
        logger__print_freq=1,
        logger__save_checkpoint_freq=save_freq,
        val__val_freq=save_freq)
    opt['path']['experiments_root'] = experiments_root
    for phase in ('train', 'val'):
        for key in ('dataroot_gt', 'dataroot_lq'):
            opt['datasets'][phase][key] = osp.join(demo_data_root, opt['datasets'][phase][key])
    opt['datasets']['train'].update(
        batch_size_per_gpu=2, gt_size=32, dataset_enlarge_ratio=1, num_worker_per_gpu=workers)
    network = kind if kind in NETWORKS else 'EDSR'
    opt['network_g'] = {'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 4, **NETWORKS[network]}
    if kind == 'ENLCN':
        opt['train']['contrastive_opt']['start_iter'] = 2
    else:
        del opt['train']['contrastive_opt']
    if kind == 'PCL':
        opt['model_type'] = 'PCLModel'
        opt['network_d'] = {'type': 'HaarDiscriminator', 'num_feat': 8, 'num_stages': 4}
        opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-4}, pcl_opt={'num_pos': 2, 'num_neg': 2})
    if kind == 'SRModel':
        opt['model_type'] = 'SRModel'
        opt['train']['ema_decay'] = 0.5
    if kind == 'ESRGAN':
        opt['model_type'] = 'ESRGANModel'
        opt['network_d'] = {'type': 'UNetDiscriminatorSN_basicsr', 'num_in_ch': 3, 'num_feat': 8}
        opt['train'].update(
            optim_d={
                'type': 'Adam',
                'lr': 1e-4
            },
            gan_opt={
                'type': 'GANLoss',
                'gan_type': 'vanilla',
                'loss_weight': 5e-3
            },
            net_d_iters=1,
            net_d_init_iters=0)
    return opt


def write_long_run(opt: Dict[str, Any], folder: str, filename: str) -> str:
    os.makedirs(folder, exist_ok=True)
    return write_option(opt, folder, filename)


def final_weights(experiments_root: str, labels: List[str], iteration: str = 'latest') -> Dict[str, torch.Tensor]:
    """The networks of ``models/<label>_<iteration>.pth`` for each label, every entry of the file (``params``, and
    ``params_ema`` with EMA), keyed ``label/entry/name``."""
    weights = {}
    for label in labels:
        saved = torch.load(osp.join(experiments_root, 'models', f'{label}_{iteration}.pth'), weights_only=True)
        for entry, params in saved.items():
            weights.update({f'{label}/{entry}/{name}': value for name, value in params.items()})
    return weights


def least_change(before: Dict[str, torch.Tensor], after: Dict[str, torch.Tensor]) -> float:
    """The smallest, over the networks (``label/entry``), of the largest change of a weight of that network."""
    assert sorted(before) == sorted(after)
    changes: Dict[str, float] = {}
    for name in before:
        network = name.rsplit('/', 1)[0]
        change = (before[name].double() - after[name].double()).abs().max().item()
        changes[network] = max(changes.get(network, 0.0), change)
    return min(changes.values())


def max_difference(first: Dict[str, torch.Tensor], second: Dict[str, torch.Tensor]) -> float:
    assert sorted(first) == sorted(second)
    return max((first[name].double() - second[name].double()).abs().max().item() for name in first)


def iter_line(iteration: int) -> str:
    """How BasicSR's MessageLogger writes an iteration (``iter:{:8,d}``)."""
    return f'iter:{iteration:8,d}, '


def logged_epochs(log_text: str) -> Dict[int, int]:
    """{iteration: epoch} of the iteration lines of BasicSR's MessageLogger (``[epoch:  0, iter:       3, ...``)."""
    return {
        int(iteration.replace(',', '')): int(epoch)
        for epoch, iteration in re.findall(r'\[epoch:\s*(\d+), iter:\s*([\d,]+), ', log_text)
    }


def stop_iteration(stderr: str, signal_name: str) -> int:
    """The iteration a stopped run names in its last line, checked to be the only line of ``basicsr train``."""
    lines = [line for line in stderr.splitlines() if line.startswith('basicsr train')]
    assert len(lines) == 1 and 'Traceback' not in stderr, stderr[-3000:]
    found = re.fullmatch(
        rf'basicsr train: stopped by {signal_name} at iter (\d+): training state and models saved; continue with '
        r'--auto_resume', lines[0])
    assert found, lines[0]
    return int(found.group(1))


def log_contains(experiments_root: str, text: str) -> bool:
    """Whether any log file of the experiment folder holds ``text`` (False while the folder does not exist)."""
    if not osp.isdir(experiments_root):
        return False
    for name in os.listdir(experiments_root):
        if name.endswith('.log'):
            with open(osp.join(experiments_root, name), encoding='utf-8') as file:
                if text in file.read():
                    return True
    return False


def wait_while_running(process: subprocess.Popen, condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True), or until ``process`` ends or ``timeout`` passes (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.05)
    return False


def start_run(command: List[str], cwd: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=cwd, env=env or subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_run(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    """Wait for ``process`` (killed if it outlives ``timeout``) and return what it printed."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def signal_after_log_line(command: List[str],
                          cwd: str,
                          log_text: str,
                          experiments_root: str,
                          signum: int,
                          timeout: float = 300,
                          env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Start ``command``, send ``signum`` to it once ``log_text`` is in the experiment's log, wait for the end."""
    process = start_run(command, cwd, env)
    try:
        if wait_while_running(process, lambda: log_contains(experiments_root, log_text), timeout):
            process.send_signal(signum)
    except BaseException:
        process.kill()
        raise
    return finish_run(process, timeout)


def train_command(option_file: str, *flags: str) -> List[str]:
    return basicsr_command() + ['train', '-opt', option_file, *flags]


def train_in_process(option_file: str, *flags: str) -> int:
    """``basicsr train`` through its entry point in this process (no interpreter start-up); its exit status.

    BasicSR sets its logger up once per process (its first ``get_root_logger`` call opens the log file): the run
    gets a logger of its own, with its log file in its experiment folder, and the logger is put back afterwards."""
    from basicsr.utils.logger import initialized_logger

    from basicsr_nlattn import cli
    logger = logging.getLogger('basicsr')
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    initialized = initialized_logger.pop('basicsr', None)
    logger.handlers = []
    try:
        return cli.main(['train', '-opt', option_file, *flags])
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)
        initialized_logger.pop('basicsr', None)
        if initialized is not None:
            initialized_logger['basicsr'] = initialized
