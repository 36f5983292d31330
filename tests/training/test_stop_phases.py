"""A stop signal outside the iterations of ``basicsr train`` (its start-up, a resume state being loaded, the final
validation) and a SIGKILL inside a save, end to end: real ``basicsr train`` processes in their own process group, a
real SIGTERM to that group or a SIGKILL, sent from inside the run at a chosen call
(``tests/helpers/train_with_signal.py``), so the moment does not depend on timing."""
import os
import re
import signal
import subprocess
import sys
from os import path as osp

import torch
from helpers.files import file_bytes
from helpers.logs import experiment_log, validation_psnrs
from helpers.long_runs import long_run_option, train_command, write_long_run
from helpers.runs import REPO_ROOT, check_ok, subprocess_env, torchrun_script_command

PREEMPTED = 75
SIGNAL_HELPER = osp.join(REPO_ROOT, 'tests', 'helpers', 'train_with_signal.py')
STARTING_LINE = ('basicsr train: stopped by SIGTERM while starting: no training state written (the states on disk '
                 'are unchanged); continue with --auto_resume')


def _train(option_file: str, cwd: str, *flags: str, signal_at: str = None) -> subprocess.CompletedProcess:
    """``basicsr train`` in a session of its own; with ``signal_at``, through the helper that signals itself then."""
    env = subprocess_env()
    command = train_command(option_file, *flags)
    if signal_at is not None:
        env['SIGNAL_AT'] = signal_at
        command = [sys.executable, SIGNAL_HELPER, '-opt', option_file, *flags]
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)


def _only_line(result: subprocess.CompletedProcess) -> str:
    """The line of ``basicsr train`` on stderr (where BasicSR's logger also writes), checked to be the only one,
    without a traceback."""
    lines = [line for line in result.stderr.splitlines() if line.startswith('basicsr train')]
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    return lines[0]


def test_stops_at_start_up_during_a_resume_and_in_the_final_validation_lose_nothing(demo_data_root, tmp_path):
    """One experiment (5 iterations, a state every 2) through a SIGKILL inside a save, a SIGTERM while the resume
    state loads, a SIGTERM in the final validation and a last resume that ends with 0; a run's start removes the
    temporary files of killed saves (before archiving the folder on a fresh start), and no other file."""
    root = str(tmp_path / 'phases')
    opt = long_run_option('EDSR', 'phases', root, demo_data_root, total_iter=5, save_freq=2)
    opt['val']['val_freq'] = 10**6  # only the validation after the last iteration
    option_file = write_long_run(opt, str(tmp_path), 'phases.yml')
    user_files = ['.notes.tmp', 'foo.tmp', '.4.state.tmp']
    os.makedirs(osp.join(root, 'models'))
    leftover = osp.join(root, 'models', '.net_g_1.pth.k3x_9q0z.tmp')  # the name atomic_write gives, from a kill
    for path in [leftover] + [osp.join(root, name) for name in user_files]:
        with open(path, 'wb') as file:
            file.write(b'x' * 100)

    # a fresh start archives the folder, without the leftover; killed inside the save of 4.state
    killed = _train(option_file, str(tmp_path), signal_at='save:4.state')
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    archived = [name for name in os.listdir(tmp_path) if name.startswith('phases_archived_')]
    assert len(archived) == 1
    assert sorted(file_bytes(str(tmp_path / archived[0]))) == sorted(user_files)
    assert 'removed 1 temporary file left by an interrupted save: models/.net_g_1.pth.k3x_9q0z.tmp' in experiment_log(
        root)
    states = osp.join(root, 'training_states')
    state_leftover, complete = sorted(os.listdir(states))
    assert complete == '2.state' and re.fullmatch(r'\.4\.state\.[a-z0-9_]{8}\.tmp', state_leftover)
    assert osp.getsize(osp.join(states, state_leftover)) > 0
    for name in user_files:
        with open(osp.join(states, name), 'wb') as file:
            file.write(b'y' * 100)

    # SIGTERM while --auto_resume loads 2.state: exit 75, one line, the folder byte for byte as it was
    before = file_bytes(root)
    loading = _train(option_file, str(tmp_path), '--auto_resume', signal_at='load_training_state')
    assert loading.returncode == PREEMPTED and _only_line(loading) == STARTING_LINE
    assert file_bytes(root) == before

    # SIGTERM in the final validation: the state of iteration 5 is written, exit 75; the leftover is removed
    validating = _train(option_file, str(tmp_path), '--auto_resume', signal_at='validation')
    assert validating.returncode == PREEMPTED
    assert _only_line(validating) == (
        'basicsr train: stopped by SIGTERM after the last iteration (iter 5): training state and models saved, the '
        'final validation not run; continue with --auto_resume')
    log = experiment_log(root)
    assert 'Resuming training from epoch: 0, iter: 2.' in log and not validation_psnrs(log)
    assert f'removed 1 temporary file left by an interrupted save: training_states/{state_leftover}' in log
    assert sorted(os.listdir(states)) == sorted(['2.state', '4.state', '5.state'] + user_files)
    assert not [name for name in os.listdir(osp.join(root, 'models')) if name.endswith('.tmp')]
    state = torch.load(osp.join(states, '5.state'), weights_only=False)
    assert state['iter'] == 5 and len(state['rng_states']) == 1 and state['data_position']['samples'] == 10
    latest = torch.load(osp.join(root, 'models', 'net_g_latest.pth'), weights_only=True)['params']
    at_5 = torch.load(osp.join(root, 'models', 'net_g_5.pth'), weights_only=True)['params']
    assert all(torch.equal(latest[name], at_5[name]) for name in latest)

    # --auto_resume: nothing left to train, the latest model and the final validation, exit 0
    check_ok(_train(option_file, str(tmp_path), '--auto_resume'))
    log = experiment_log(root)
    assert 'Resuming training from epoch: 0, iter: 5.' in log and '[epoch:' not in log
    assert len(validation_psnrs(log)) == 1
    again = torch.load(osp.join(root, 'models', 'net_g_latest.pth'), weights_only=True)['params']
    assert all(torch.equal(again[name], latest[name]) for name in latest)


def test_a_signal_on_one_rank_while_starting_stops_both(demo_data_root, tmp_path):
    """Two gloo processes under torchrun; SIGTERM to rank 1 alone while it builds its model: the ranks agree at the
    end of that phase and both stop with exit 75 and the same line, no training state written."""
    root = str(tmp_path / 'dist_start')
    opt = long_run_option('EDSR', 'dist_start', root, demo_data_root, total_iter=4, save_freq=2)
    option_file = write_long_run(opt, str(tmp_path), 'dist_start.yml')
    env = subprocess_env()
    env.update(SIGNAL_AT='build_model', SIGNAL_TO='self', SIGNAL_RANK='1')
    command = torchrun_script_command(2, SIGNAL_HELPER, ['-opt', option_file, '--launcher', 'pytorch'])
    result = subprocess.run(command, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    # both ranks exit 75: the follow-up SIGTERM that torchrun sends the other rank once one has exited is ignored
    exit_codes = dict(re.findall(r'rank\s*: (\d+) \(local_rank: \d+\)\s*exitcode\s*: (-?\d+)', result.stderr))
    assert exit_codes == {'0': '75', '1': '75'}, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith('basicsr train')]
    assert lines == [STARTING_LINE] * 2, result.stderr[-4000:]
    assert os.listdir(osp.join(root, 'training_states')) == []
    assert '[epoch:' not in experiment_log(root)
