"""Each fault of a long run, end to end with the real ``basicsr train`` and ``torchrun`` (tiny networks, demo data):
a stop signal (one process and two), a truncated newest state, an unreadable explicit state, a full disk, a NaN
batch on one of two ranks, a corrupt PNG and a key missing from an LMDB. Each ends with one line, a documented exit
status and nothing lost."""
import os
import re
import resource
import shutil
import signal
import subprocess
from os import path as osp
from typing import Dict, List

import torch
from helpers.files import file_bytes
from helpers.logs import experiment_log
from helpers.long_runs import (final_weights, iter_line, long_run_option, max_difference, signal_after_log_line,
                               stop_iteration, train_command, write_long_run)
from helpers.runs import REPO_ROOT, check_ok, dist_train_env, subprocess_env, torchrun_script_command

PREEMPTED, FAULT, NONFINITE = 75, 2, 3
DIST_TRAIN = osp.join(REPO_ROOT, 'scripts', 'dist_train.sh')
NAN_HELPER = osp.join(REPO_ROOT, 'tests', 'helpers', 'train_with_nan.py')


def _run(command: List[str], cwd: str, env: Dict[str, str] = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=cwd, env=env or subprocess_env(), capture_output=True, text=True, timeout=600, **kwargs)


def test_sigterm_saves_that_iteration_and_the_resumed_run_ends_as_the_uninterrupted_one(demo_data_root, tmp_path):
    """One process with a data-loader worker: SIGTERM mid-run -> exit 75 with a state and models at the iteration it
    stopped (the only state left with ``logger.keep_states: 1``); --auto_resume continues there and ends with the
    weights of a run that was never stopped."""
    root = str(tmp_path / 'stopped')
    opt = long_run_option('ENLCN', 'stopped', root, demo_data_root, total_iter=5000, save_freq=3, workers=1)
    opt['val']['val_freq'] = 10**6
    opt['logger']['keep_states'] = 1
    option_file = write_long_run(opt, str(tmp_path), 'stopped.yml')
    result = signal_after_log_line(train_command(option_file), str(tmp_path), iter_line(4), root, signal.SIGTERM)
    assert result.returncode == PREEMPTED, result.stderr[-3000:]
    stop = stop_iteration(result.stderr, 'SIGTERM')
    assert 4 <= stop < 5000
    assert os.listdir(osp.join(root, 'training_states')) == [f'{stop}.state']
    state = torch.load(osp.join(root, 'training_states', f'{stop}.state'), weights_only=False)
    assert state['iter'] == stop and len(state['rng_states']) == 1
    assert osp.isfile(osp.join(root, 'models', f'net_g_{stop}.pth'))
    assert 'logger.keep_states: deleted 3.state' in experiment_log(root)

    total = stop + 3
    check_ok(
        _run(train_command(option_file, '--auto_resume', '--force_yml', f'train:total_iter={total}'), str(tmp_path)))
    assert f'Resuming training from epoch: {(stop - 1) // 5}, iter: {stop}.' in experiment_log(root)
    whole_root = str(tmp_path / 'whole')
    whole = long_run_option('ENLCN', 'whole', whole_root, demo_data_root, total_iter=total, save_freq=3, workers=1)
    whole['val']['val_freq'] = 10**6
    whole['train']['scheduler']['milestones'] = opt['train']['scheduler']['milestones']
    check_ok(_run(train_command(write_long_run(whole, str(tmp_path), 'whole.yml')), str(tmp_path)))
    assert max_difference(final_weights(root, ['net_g']), final_weights(whole_root, ['net_g'])) <= 1e-6


def test_damaged_states_and_a_full_disk_lose_nothing(demo_data_root, tmp_path):
    """One experiment through its faults: a truncated newest state (auto_resume warns and takes the previous one),
    an unreadable explicit ``path.resume_state`` (exit 2, one line, the folder untouched), a full disk during a save
    (RLIMIT_FSIZE: exit 2, one line, the previous files intact), then a resume that finishes the run."""
    root = str(tmp_path / 'faults')
    opt = long_run_option('NLSN', 'faults', root, demo_data_root, total_iter=4, save_freq=2)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 4, 'num_feat': 64, 'num_block': 2}
    option_file = write_long_run(opt, str(tmp_path), 'faults.yml')
    check_ok(_run(train_command(option_file), str(tmp_path)))
    states = osp.join(root, 'training_states')
    newest = osp.join(states, '4.state')
    with open(newest, 'r+b') as file:  # what a kill or a full disk during a plain torch.save leaves
        file.truncate(os.path.getsize(newest) // 2)

    resumed = _run(train_command(option_file, '--auto_resume', '--force_yml', 'train:total_iter=6'), str(tmp_path))
    check_ok(resumed)
    log = experiment_log(root)
    assert f"'{newest}' cannot be read" in log and 'Resuming training from epoch: 0, iter: 2.' in log, log[-3000:]
    assert 'Traceback' not in resumed.stderr

    assert sorted(os.listdir(states)) == ['2.state', '4.state', '6.state']  # 4 written again by the resumed run
    damaged = str(tmp_path / '6_copy.state')
    with open(osp.join(states, '6.state'), 'rb') as source, open(damaged, 'wb') as copy:
        copy.write(source.read()[:1000])
    before = file_bytes(root)
    explicit = _run(train_command(option_file, '--force_yml', f'path:resume_state={damaged}'), str(tmp_path))
    assert explicit.returncode == FAULT and explicit.stderr.count('\n') == 1, explicit.stderr
    assert explicit.stderr.startswith(f"basicsr train: error: path.resume_state: '{damaged}' cannot be read")
    assert file_bytes(root) == before

    saved = {name: data for name, data in before.items() if name.endswith(('.state', '.pth'))}
    assert 'training_states/6.state' in saved and 'models/net_g_6.pth' in saved
    model_size = len(saved['models/net_g_6.pth'])
    limit = model_size // 2  # the log and the option copy fit, a model file does not

    def full_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = _run(
        train_command(option_file, '--auto_resume', '--force_yml', 'train:total_iter=8'),
        str(tmp_path),
        preexec_fn=full_disk)
    assert full.returncode == FAULT and 'Traceback' not in full.stderr, full.stderr[-3000:]
    line = full.stderr.splitlines()[-1]
    assert re.fullmatch(
        rf"basicsr train: cannot write '{re.escape(osp.join(root, 'models', 'net_g_8.pth'))}': .*; "
        'the previous checkpoints are intact', line), line
    after = file_bytes(root)
    assert {name: after[name] for name in saved} == saved
    assert not [name for name in after if name not in before and not name.endswith(('.log', '.yml'))], sorted(after)

    check_ok(_run(train_command(option_file, '--auto_resume', '--force_yml', 'train:total_iter=8'), str(tmp_path)))
    assert 'Resuming training from epoch: 1, iter: 6.' in experiment_log(root)
    assert osp.isfile(osp.join(root, 'models', 'net_g_8.pth'))


def test_sigterm_to_torchrun_stops_both_ranks_at_one_iteration_and_auto_resume_continues(demo_data_root, tmp_path):
    """``scripts/dist_train.sh`` with two CPU processes: SIGTERM to torchrun (as a scheduler sends it), forwarded
    to both ranks; they agree on the iteration, save once (rank 0, with both ranks' RNG states) and exit 75."""
    root = str(tmp_path / 'dist_stop')
    opt = long_run_option('NLSN', 'dist_stop', root, demo_data_root, total_iter=5000, save_freq=1000)
    opt['val']['val_freq'] = 10**6
    option_file = write_long_run(opt, str(tmp_path), 'dist_stop.yml')
    result = signal_after_log_line([DIST_TRAIN, '2', option_file],
                                   str(tmp_path),
                                   iter_line(3),
                                   root,
                                   signal.SIGTERM,
                                   env=dist_train_env())
    # torchrun itself ends with its SignalException (its own traceback, status 1) once the ranks have exited
    assert result.returncode == 1 and result.stderr.count('Traceback') == 1, result.stderr[-4000:]
    assert 'SignalException' in result.stderr.split('Traceback')[1]
    lines = [line for line in result.stderr.splitlines() if line.startswith('basicsr train')]
    assert len(lines) == 2 and lines[0] == lines[1], result.stderr[-4000:]  # each rank, the same iteration
    stop = stop_iteration(lines[0] + '\n', 'SIGTERM')
    assert os.listdir(osp.join(root, 'training_states')) == [f'{stop}.state']
    state = torch.load(osp.join(root, 'training_states', f'{stop}.state'), weights_only=False)
    assert state['iter'] == stop and len(state['rng_states']) == 2

    env = dist_train_env()
    resumed = _run([DIST_TRAIN, '2', option_file, '--auto_resume', '--force_yml', f'train:total_iter={stop + 2}'],
                   str(tmp_path), env)
    check_ok(resumed, 'dist_train.sh --auto_resume')
    log = experiment_log(root)
    assert f'iter: {stop}.' in log and iter_line(stop + 2) in log
    assert 'Resume: the training state has no' not in log


def test_a_nan_batch_on_one_rank_skips_the_update_on_both_and_too_many_stop_the_run(demo_data_root, tmp_path):
    """Two gloo processes, NaN inputs on rank 1 at iterations 3, 5 and 6 with ``max_consecutive: 1``: iteration 3
    is skipped on both ranks, 4 updates, 5 is skipped, 6 is one too many: the run saves the weights of the last good
    update (4) and stops with exit 3."""
    root = str(tmp_path / 'nan')
    opt = long_run_option('NLSN', 'nan', root, demo_data_root, total_iter=20, save_freq=2)
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 4, 'num_feat': 8, 'num_block': 1}
    opt['val']['val_freq'] = 10**6
    opt['train']['nonfinite'] = {'action': 'skip', 'max_consecutive': 1}
    option_file = write_long_run(opt, str(tmp_path), 'nan.yml')
    env = subprocess_env()
    env.update(NAN_RANK='1', NAN_ITERS='3,5,6')
    command = torchrun_script_command(2, NAN_HELPER, ['-opt', option_file, '--launcher', 'pytorch'])
    result = _run(command, str(tmp_path), env)
    assert result.returncode != 0
    assert re.search(r'exitcode\s*: 3\b', result.stderr), result.stderr[-4000:]
    log = experiment_log(root)
    for iteration in (3, 5):
        assert (f'iter {iteration}: non-finite l_pix (rank 1), gradient (rank 1): update of net_g skipped (1 in a '
                'row; train.nonfinite.max_consecutive 1)') in log, log[-3000:]
    stop = ('iter 6: non-finite l_pix (rank 1), gradient (rank 1); stopping (2 updates of net_g in a row, more than '
            'train.nonfinite.max_consecutive 1); the weights of the last good update are saved')
    lines = [line for line in result.stderr.splitlines() if line.startswith('basicsr train')]
    assert lines == [f'basicsr train: {stop}'] * 2, result.stderr[-4000:]
    models = osp.join(root, 'models')
    at_4 = torch.load(osp.join(models, 'net_g_4.pth'), weights_only=True)['params']
    at_6 = torch.load(osp.join(models, 'net_g_6.pth'), weights_only=True)['params']
    assert all(torch.equal(at_4[name], at_6[name]) for name in at_4)
    assert all(value.isfinite().all() for value in at_6.values())
    at_2 = torch.load(osp.join(models, 'net_g_2.pth'), weights_only=True)['params']
    assert not all(torch.equal(at_2[name], at_4[name]) for name in at_2)  # iteration 4 did update
    state = torch.load(osp.join(root, 'training_states', '6.state'), weights_only=False)
    assert state['iter'] == 6
    assert all(value.isfinite().all() for opt_state in state['optimizers'] for param in opt_state['state'].values()
               for value in param.values() if torch.is_tensor(value))


def _copy_demo(demo_data_root: str, folder: str) -> str:
    shutil.copytree(osp.join(demo_data_root, 'datasets'), osp.join(folder, 'datasets'))
    return folder


def test_a_corrupt_png_and_a_missing_lmdb_key_stop_with_one_line_or_are_skipped(demo_data_root, tmp_path):
    """A corrupt validation PNG and a key missing from the training LMDB (loaded in a worker): one line naming the
    dataset and the file or key, exit 2, no traceback; with ``skip_bad`` the run logs the sample and finishes."""
    data = _copy_demo(demo_data_root, str(tmp_path / 'data'))
    broken_png = osp.join(data, 'datasets', 'demo', 'val', 'HR',
                          sorted(os.listdir(osp.join(data, 'datasets', 'demo', 'val', 'HR')))[0])
    with open(broken_png, 'r+b') as file:
        file.truncate(100)
    opt = long_run_option('NLSN', 'bad_png', str(tmp_path / 'bad_png'), data, total_iter=2, save_freq=2)
    result = _run(train_command(write_long_run(opt, str(tmp_path), 'bad_png.yml')), str(tmp_path))
    assert result.returncode == FAULT and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert re.fullmatch(
        rf"basicsr train: datasets.val \(demo_val\): cannot read the gt image of sample \d+: '{re.escape(broken_png)}' "
        r'is not a readable image \(corrupt or truncated\)',
        result.stderr.splitlines()[-1]), result.stderr[-3000:]

    shutil.rmtree(osp.join(data, 'datasets', 'demo', 'val'))
    shutil.copytree(osp.join(demo_data_root, 'datasets', 'demo', 'val'), osp.join(data, 'datasets', 'demo', 'val'))
    train = osp.join(data, 'datasets', 'demo', 'train')
    for name in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        with open(osp.join(train, name, 'meta_info.txt'), 'a', encoding='utf-8') as file:
            file.write('zebra.png (480,480,3) 1\n')
    # 12 samples, 6 iterations an epoch: two epochs load every sample twice
    opt = long_run_option(
        'NLSN', 'missing_key', str(tmp_path / 'missing_key'), data, total_iter=12, save_freq=100, workers=1)
    result = _run(train_command(write_long_run(opt, str(tmp_path), 'missing_key.yml')), str(tmp_path))
    assert result.returncode == FAULT and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert re.fullmatch(
        r"basicsr train: datasets.train \(demo_train\): cannot read the (lq|gt) image of sample \d+: key 'zebra' of "
        rf"{re.escape(train)}/(HR|LR_bicubic_X4).lmdb is missing",
        result.stderr.splitlines()[-1]), result.stderr[-3000:]

    opt['name'] = 'skipped'
    opt['path']['experiments_root'] = str(tmp_path / 'skipped')
    opt['datasets']['train'].update(skip_bad=True, skip_bad_max_fraction=0.2)
    check_ok(_run(train_command(write_long_run(opt, str(tmp_path), 'skipped.yml')), str(tmp_path)))
    log = experiment_log(str(tmp_path / 'skipped'))
    # read in both epochs, logged (and counted against skip_bad_max_fraction) once
    assert log.count("key 'zebra'") == 1 and "is missing; replaced by the next readable sample (skip_bad)" in log
