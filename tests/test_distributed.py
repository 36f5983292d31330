"""Distributed training on the CPU (torchrun, gloo, 2 processes) of tiny ENLCN, NLSN and CCLNN on the demo LMDB data,
and ``scripts/dist_train.sh``.

Rank 0 alone writes checkpoints, so the per-network runs go through ``tests/helpers/train_and_dump.py``: the real
``python -m basicsr_nlattn.train`` entry point, plus a dump of each rank's final network (parameters and buffers).
"""
import os
import stat
import subprocess
from os import path as osp

import pytest
import torch
from helpers.logs import experiment_log, validation_psnrs
from helpers.options import tiny_demo_option, write_option
from helpers.runs import REPO_ROOT, check_ok, dist_train_env, subprocess_env, torchrun_script_command

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.models.contrastive_sr_model import random_feature_seed

TOTAL_ITER = 4
DUMP_HELPER = osp.join(REPO_ROOT, 'tests', 'helpers', 'train_and_dump.py')
DIST_TRAIN = osp.join(REPO_ROOT, 'scripts', 'dist_train.sh')
NETWORKS = {
    'ENLCN':
    dict(
        network={
            'type': 'ENLCN',
            'num_feat': 16,
            'num_block': 2,
            'attn_every': 2,
            'num_random_features': 32,
            'redraw_interval': 2  # draws 0 (iterations 1-2) and 1 (iterations 3-4)
        },
        contrastive={
            'type': 'ENLCAContrastiveLoss',
            'loss_weight': 1e-3,
            'n1': 0.02,
            'n2': 0.08,
            'margin': 1.0,
            'start_iter': 0
        }),
    'NLSN':
    dict(
        network={
            'type': 'NLSN',
            'num_feat': 16,
            'num_block': 2,
            'attn_every': 2,
            'chunk_size': 16,
            'n_hashes': 2
        },
        contrastive=None),
    'CCLNN':
    dict(
        network={
            'type': 'CCLNN',
            'num_feat': 16,
            'num_block': 2,
            'attn_every': 2,
            'chunk_size': 16,
            'n_hashes': 2,
            'cca_reduction': 4
        },
        contrastive={
            'type': 'CCAContrastiveLoss',
            'loss_weight': 4e-3,
            'n': 0.10,
            'margin': 1.0,
            'start_iter': 0
        }),
}


def network_option(arch: str, name: str, total_iter: int = TOTAL_ITER):
    """The tiny demo option (ContrastiveSRModel, x4, demo LMDB training data) with a tiny ``arch``."""
    opt = tiny_demo_option(
        name, total_iter=total_iter, logger__print_freq=2, logger__save_checkpoint_freq=total_iter, val__val_freq=1000)
    # BasicSR's init_dist sets the 'spawn' start method: a DataLoader worker re-imports torch and basicsr (~5 s on
    # two cores) and BasicSR starts the loader once more after the last iteration. Load in the training processes.
    opt['datasets']['train']['num_worker_per_gpu'] = 0
    assert opt['datasets']['train']['io_backend']['type'] == 'lmdb'
    assert opt['datasets']['train']['dataroot_gt'] == 'datasets/demo/train/HR.lmdb'
    assert opt['datasets']['train']['dataroot_lq'] == 'datasets/demo/train/LR_bicubic_X4.lmdb'
    opt['network_g'] = {
        'num_in_ch': 3,
        'num_out_ch': 3,
        'upscale': 4,
        'res_scale': 1.0,
        'img_range': 255.,
        **NETWORKS[arch]['network']
    }
    contrastive = NETWORKS[arch]['contrastive']
    if contrastive is None:
        del opt['train']['contrastive_opt']
    else:
        opt['train']['contrastive_opt'] = dict(contrastive)
    return opt


def build_fresh(network_g):
    from basicsr.archs import build_network
    return build_network(dict(network_g))


def run(command, cwd, env=None):
    return subprocess.run(command, cwd=cwd, env=env or subprocess_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize('arch', list(NETWORKS))
def test_two_cpu_processes_train_in_step(arch, demo_data_root, tmp_path):
    name = f'dist_{arch}'
    opt = network_option(arch, name)
    if arch == 'ENLCN':  # the one run that also validates and keeps data-loader workers (spawned: compat in each)
        opt['val']['val_freq'] = 2
        opt['datasets']['train']['num_worker_per_gpu'] = 1
    option_file = write_option(opt, str(tmp_path))
    dump_dir = str(tmp_path / 'dumps')
    env = subprocess_env()
    env['DUMP_DIR'] = dump_dir
    command = torchrun_script_command(2, DUMP_HELPER, ['-opt', option_file, '--launcher', 'pytorch'])
    result = run(command, demo_data_root, env)
    check_ok(result, f'torchrun {arch}')
    for rank in (0, 1):
        assert f'Distributed: rank {rank} of world size 2 (gloo).' in result.stdout

    # every rank ends with the same network, buffers included
    dumps = [torch.load(osp.join(dump_dir, f'rank{rank}.pth'), weights_only=True) for rank in (0, 1)]
    assert dumps[0].keys() == dumps[1].keys()
    different = [key for key in dumps[0] if not torch.equal(dumps[0][key], dumps[1][key])]
    assert not different, f'rank 0 and rank 1 differ in {different}'

    # the loss terms logged by rank 0
    experiments_root = osp.join(demo_data_root, 'experiments', name)
    log = experiment_log(experiments_root)
    assert 'World size (gpu number): 2' in log
    lines = [line for line in log.splitlines() if '[epoch:' in line]
    assert [int(line.split('iter:')[1].split(',')[0]) for line in lines] == [2, 4], lines
    assert all('l_pix' in line for line in lines)
    if NETWORKS[arch]['contrastive'] is None:
        assert not any('l_contrast' in line for line in lines), lines
    else:
        assert all('l_contrast' in line for line in lines), lines

    # rank 0's checkpoint: strict into a fresh network, equal to rank 0's final weights; and the training state
    checkpoint = torch.load(
        osp.join(experiments_root, 'models', f'net_g_{TOTAL_ITER}.pth'), map_location='cpu', weights_only=True)
    fresh = build_fresh(opt['network_g'])
    fresh.load_state_dict(checkpoint['params'], strict=True)
    assert checkpoint['params'].keys() == dumps[0].keys()
    assert all(torch.equal(checkpoint['params'][key], dumps[0][key]) for key in dumps[0])
    assert osp.isfile(osp.join(experiments_root, 'training_states', f'{TOTAL_ITER}.state'))
    if arch == 'ENLCN':  # rank 0 validated at 2, 4 and once more after the last iteration
        assert len(validation_psnrs(log)) == 3, log

    if arch == 'ENLCN':
        _check_redrawn_random_features(opt, dumps[0], dump_dir)


def _generator(manual_seed, draw, number):
    """The generator that ContrastiveSRModel draws a block's features from."""
    return torch.Generator().manual_seed(random_feature_seed(manual_seed, draw, number))


def _check_redrawn_random_features(opt, dump, dump_dir):
    """ENLCA's features: every rank redraws the same ones on schedule by itself (recorded before the DDP forward that
    broadcasts rank 0's buffers), and the final ones are the last scheduled draw, not those of a fresh network."""
    interval = opt['network_g']['redraw_interval']
    redraws = [torch.load(osp.join(dump_dir, f'rank{rank}_redraws.pth'), weights_only=True) for rank in (0, 1)]
    assert sorted(redraws[0]) == sorted(redraws[1]) == list(range(1, TOTAL_ITER + 1))
    fresh = build_fresh(opt['network_g'])
    blocks = [(name, module) for name, module in fresh.named_modules() if isinstance(module, ENLCA)]
    assert len(blocks) == 2
    for number, (name, block) in enumerate(blocks):
        key = f'{name}.random_features'
        assert not torch.equal(dump[key], block.random_features), f'{key} was never redrawn'
        for current_iter in range(1, TOTAL_ITER + 1):
            block.redraw_random_features(_generator(opt['manual_seed'], (current_iter - 1) // interval, number))
            for rank in (0, 1):
                assert torch.equal(redraws[rank][current_iter][key], block.random_features), (rank, current_iter, key)
        assert torch.equal(dump[key], block.random_features), f'{key} is not the draw of the last iterations'
        assert not torch.equal(redraws[0][1][key], redraws[0][TOTAL_ITER][key]), f'{key}: one draw only'


def test_dist_train_rejects_bad_arguments(tmp_path):
    option_file = write_option(tiny_demo_option('dist_train_args'), str(tmp_path))
    env = subprocess_env()
    env['TORCHRUN'] = '/bin/false'  # never reached
    for args in ([], ['2'], ['0', option_file], ['-1', option_file], ['two', option_file], ['1.5', option_file],
                 ['2', str(tmp_path / 'missing.yml')], ['2', str(tmp_path)]):
        result = run(['bash', DIST_TRAIN] + args, str(tmp_path), env)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert 'Usage: dist_train.sh NUM_GPUS OPTION_FILE' in result.stderr, (args, result.stderr)
    result = run(['bash', DIST_TRAIN, '--help'], str(tmp_path), env)
    assert result.returncode == 0 and 'Usage:' in result.stderr
    assert os.stat(DIST_TRAIN).st_mode & stat.S_IXUSR, 'scripts/dist_train.sh is not executable'


def _fake_torchrun(tmp_path):
    """An executable that prints its arguments, one a line, in place of torchrun."""
    fake = tmp_path / 'fake_torchrun'
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    return str(fake)


def test_dist_train_launch_arguments(tmp_path):
    option_file = write_option(tiny_demo_option('dist_train_launch'), str(tmp_path))
    env = subprocess_env()
    for key in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'RDZV_ENDPOINT', 'RDZV_ID'):
        env.pop(key, None)
    env['TORCHRUN'] = _fake_torchrun(tmp_path)
    tail = [
        '--signals_to_handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1', '--shutdown_timeout=60', '-m',
        'basicsr_nlattn.train', '-opt', option_file, '--launcher', 'pytorch'
    ]

    result = run([DIST_TRAIN, '2', option_file, '--auto_resume'], str(tmp_path), env)
    check_ok(result, 'dist_train.sh (one node)')
    expected = ['--nproc_per_node=2', '--nnodes=1', '--node_rank=0', '--master_addr=127.0.0.1', '--master_port=29500']
    assert result.stdout.splitlines() == expected + tail + ['--auto_resume']

    env.update(NNODES='3', NODE_RANK='2', MASTER_ADDR='node0', MASTER_PORT='1234')
    result = run([DIST_TRAIN, '4', option_file], str(tmp_path), env)
    check_ok(result, 'dist_train.sh (static master)')
    expected = ['--nproc_per_node=4', '--nnodes=3', '--node_rank=2', '--master_addr=node0', '--master_port=1234']
    assert result.stdout.splitlines() == expected + tail

    env.update(RDZV_ENDPOINT='node0:29400')
    result = run([DIST_TRAIN, '4', option_file, '--force_yml', 'train:total_iter=8'], str(tmp_path), env)
    check_ok(result, 'dist_train.sh (rendezvous)')
    expected = [
        '--nproc_per_node=4', '--nnodes=3', '--rdzv_backend=c10d', '--rdzv_endpoint=node0:29400',
        '--rdzv_id=basicsr_nlattn'
    ]
    assert result.stdout.splitlines() == expected + tail + ['--force_yml', 'train:total_iter=8']


def test_dist_train_two_cpu_processes(demo_data_root, tmp_path):
    """A real run of the script: torchrun, 2 processes, extra flags passed on to basicsr_nlattn.train."""
    name = 'dist_train_sh'
    opt = network_option('NLSN', name, total_iter=1000)
    opt['logger']['save_checkpoint_freq'] = 2
    option_file = write_option(opt, str(tmp_path))
    env = dist_train_env()
    result = run([DIST_TRAIN, '2', option_file, '--force_yml', 'train:total_iter=2'], demo_data_root, env)
    check_ok(result, 'dist_train.sh')
    for rank in (0, 1):
        assert f'Distributed: rank {rank} of world size 2 (gloo).' in result.stdout
    experiments_root = osp.join(demo_data_root, 'experiments', name)
    log = experiment_log(experiments_root)
    assert 'World size (gpu number): 2' in log
    lines = [line for line in log.splitlines() if '[epoch:' in line]
    assert [int(line.split('iter:')[1].split(',')[0]) for line in lines] == [2], lines
    assert osp.isfile(osp.join(experiments_root, 'models', 'net_g_2.pth'))
    assert not osp.exists(osp.join(experiments_root, 'models', 'net_g_4.pth'))
