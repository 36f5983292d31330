"""Preemption by SIGINT and SIGUSR1, and resumes with another batch and another world size, end to end with the
real ``basicsr train`` and ``torchrun`` (a tiny NLSN, demo data, ``train.accumulate: 2``).

One experiment goes through three runs, each backing its claims: Ctrl-C stops the first at an iteration; the
second resumes it with another batch and is stopped by SIGUSR1 (SLURM's ``--signal=USR1@...``); two gloo processes
resume that one-process state and finish, recording their gradients. A fourth run shows that a second
Ctrl-C interrupts at once. The 11 demo images make 5 iterations an epoch in batches of 2, 2 in batches of 5 (the
last, partial batch is dropped), and 1 per process in batches of 5 on two processes.
"""
import os
import signal
import subprocess
import sys
from os import path as osp
from typing import NamedTuple

import pytest
import torch
from helpers.logs import experiment_log
from helpers.long_runs import (finish_run, iter_line, log_contains, logged_epochs, long_run_option,
                               signal_after_log_line, start_run, stop_iteration, train_command, wait_while_running,
                               write_long_run)
from helpers.runs import REPO_ROOT, check_ok, subprocess_env, torchrun_script_command

PREEMPTED = 75
ACCUMULATE = 2
GRADIENTS_HELPER = osp.join(REPO_ROOT, 'tests', 'helpers', 'train_recording_gradients.py')
PAUSING_HELPER = osp.join(REPO_ROOT, 'tests', 'helpers', 'train_pausing_before_save.py')
NO_POSITION = ('Resume: the training state has no data position for this data, world size and batch (a state of '
               'BasicSR, or another setting): the epoch starts from its first sample, as in BasicSR')


class Experiment(NamedTuple):
    folder: str  # the working directory of the runs
    root: str  # the experiment folder
    option_file: str


class Stopped(NamedTuple):
    result: subprocess.CompletedProcess
    iteration: int  # named in the stop line
    log: str  # the run's own log


def _experiment(folder: str, demo_data_root: str, name: str) -> Experiment:
    root = osp.join(folder, name)
    opt = long_run_option('NLSN', name, root, demo_data_root, total_iter=5000, save_freq=1000)
    opt['val']['val_freq'] = 10**6
    opt['train']['accumulate'] = ACCUMULATE
    return Experiment(folder, root, write_long_run(opt, folder, f'{name}.yml'))


def _states(root: str) -> list:
    return sorted(os.listdir(osp.join(root, 'training_states')))


def _state(root: str, iteration: int) -> dict:
    return torch.load(osp.join(root, 'training_states', f'{iteration}.state'), weights_only=False)


def _stopped(result: subprocess.CompletedProcess, signal_name: str, root: str) -> Stopped:
    assert result.returncode == PREEMPTED, result.stderr[-3000:]
    return Stopped(result, stop_iteration(result.stderr, signal_name), experiment_log(root))


@pytest.fixture(scope='module')
def experiment(demo_data_root, tmp_path_factory) -> Experiment:
    return _experiment(str(tmp_path_factory.mktemp('signals')), demo_data_root, 'signals')


@pytest.fixture(scope='module')
def stopped_by_sigint(experiment) -> Stopped:
    result = signal_after_log_line(
        train_command(experiment.option_file), experiment.folder, iter_line(2), experiment.root, signal.SIGINT)
    return _stopped(result, 'SIGINT', experiment.root)


@pytest.fixture(scope='module')
def resumed_in_batches_of_5_and_stopped_by_sigusr1(experiment, stopped_by_sigint) -> Stopped:
    command = train_command(experiment.option_file, '--auto_resume', '--force_yml',
                            'datasets:train:batch_size_per_gpu=5')
    # iteration first + 3 is the first of the next epoch when the resumed epoch starts from its first sample
    result = signal_after_log_line(command, experiment.folder, iter_line(stopped_by_sigint.iteration + 3),
                                   experiment.root, signal.SIGUSR1)
    return _stopped(result, 'SIGUSR1', experiment.root)


def test_sigint_stops_at_the_end_of_an_optimizer_step_with_its_state(experiment, stopped_by_sigint):
    """Ctrl-C: exit 75, one line naming SIGINT and the iteration, the state and model of that iteration (the only
    ones: checkpoints are due every 1000). Without the handler, SIGINT is a KeyboardInterrupt (status -2, a
    traceback, no state); with a stop off the step boundary, the iteration would be odd."""
    stop = stopped_by_sigint.iteration
    assert stop >= 2 and stop % ACCUMULATE == 0
    assert _states(experiment.root) == [f'{stop}.state'] and _state(experiment.root, stop)['iter'] == stop
    assert osp.isfile(osp.join(experiment.root, 'models', f'net_g_{stop}.pth'))
    assert f'stopped by SIGINT at iter {stop}' in stopped_by_sigint.log


def test_sigusr1_stops_a_resumed_run_with_its_state(experiment, stopped_by_sigint,
                                                    resumed_in_batches_of_5_and_stopped_by_sigusr1):
    """SIGUSR1 (what ``#SBATCH --signal=USR1@120`` sends): exit 75, the line naming SIGUSR1, a state at that
    iteration beside the first run's. Python's default for SIGUSR1 ends the process (status -10) with no state."""
    first, stop = stopped_by_sigint.iteration, resumed_in_batches_of_5_and_stopped_by_sigusr1.iteration
    assert stop >= first + 3 and stop % ACCUMULATE == 0
    assert _states(experiment.root) == sorted([f'{first}.state', f'{stop}.state'])
    assert _state(experiment.root, stop)['iter'] == stop


def test_a_resume_with_another_batch_warns_and_starts_the_epoch_from_its_first_sample(
        experiment, stopped_by_sigint, resumed_in_batches_of_5_and_stopped_by_sigusr1):
    """The state was written in batches of 2; the run resumes in batches of 5: the warning, and the resumed epoch
    runs whole (2 iterations of 5 of its 11 samples). Had the run skipped the samples the first run used in that
    epoch (at least 2), at most 9 would be left: one iteration, and the next epoch would start at ``first + 2``."""
    first = stopped_by_sigint.iteration
    log = resumed_in_batches_of_5_and_stopped_by_sigusr1.log
    epoch = _state(experiment.root, first)['epoch']
    assert f'Resuming training from epoch: {epoch}, iter: {first}.' in log and NO_POSITION in log
    epochs = logged_epochs(log)
    assert [epochs[first + step] for step in (1, 2, 3)] == [epoch, epoch, epoch + 1], epochs


def test_two_processes_resume_a_one_process_state_and_all_reduce_on_the_last_micro_batch_only(
        experiment, resumed_in_batches_of_5_and_stopped_by_sigusr1, tmp_path):
    """Two gloo processes under torchrun resume the one-process state: the warning, each process's epoch starts
    from its first sample (1 iteration an epoch: a skip of the samples used would leave none and move the epoch
    on), and with ``accumulate: 2`` DDP all-reduces on the last micro-batch of a step only: after the even
    iterations both ranks hold the same gradients, after the odd ones each its own (without ``no_sync`` they would
    be the same after every iteration)."""
    stop = resumed_in_batches_of_5_and_stopped_by_sigusr1.iteration
    total = stop + 4
    env = subprocess_env()
    env['RECORD_DIR'] = str(tmp_path)
    command = torchrun_script_command(2, GRADIENTS_HELPER, [
        '-opt', experiment.option_file, '--launcher', 'pytorch', '--auto_resume', '--force_yml',
        'datasets:train:batch_size_per_gpu=5', f'train:total_iter={total}'
    ])
    check_ok(
        subprocess.run(command, cwd=experiment.folder, env=env, capture_output=True, text=True, timeout=600),
        'torchrun')
    log = experiment_log(experiment.root)
    epoch = _state(experiment.root, stop)['epoch']
    assert f'Resuming training from epoch: {epoch}, iter: {stop}.' in log and NO_POSITION in log
    epochs = logged_epochs(log)
    assert [epochs[stop + step] for step in (1, 2)] == [epoch, epoch + 1], epochs
    assert iter_line(total) in log
    ranks = [torch.load(tmp_path / f'gradients_rank{rank}.pth', weights_only=True) for rank in (0, 1)]
    assert sorted(ranks[0]) == sorted(ranks[1]) == list(range(stop + 1, total + 1))
    all_reduced = [iteration for iteration in ranks[0] if torch.equal(ranks[0][iteration], ranks[1][iteration])]
    assert all_reduced == [stop + 2, stop + 4]


def test_a_second_sigint_interrupts_at_once_and_writes_no_state(demo_data_root, tmp_path):
    """Ctrl-C, then Ctrl-C again while the run is about to save its stop state (the helper holds it there): a
    KeyboardInterrupt ends the process at once (Python exits by SIGINT: status -2, 130 in a shell), no stop line,
    no state or model written. Were the second SIGINT only recorded like the first, the run would save and exit
    75 after the helper's pause."""
    experiment = _experiment(str(tmp_path), demo_data_root, 'ctrl_c')
    marker = str(tmp_path / 'about_to_save')
    env = subprocess_env()
    env['PAUSE_MARKER'] = marker
    process = start_run([sys.executable, PAUSING_HELPER, '-opt', experiment.option_file], str(tmp_path), env)
    try:
        running = wait_while_running(process, lambda: log_contains(experiment.root, iter_line(2)), 300)
        if running:
            process.send_signal(signal.SIGINT)
            running = wait_while_running(process, lambda: osp.exists(marker), 300)
        if running:
            process.send_signal(signal.SIGINT)
    except BaseException:
        process.kill()
        raise
    result = finish_run(process)
    assert running and result.returncode == -signal.SIGINT, (result.returncode, result.stderr[-3000:])
    assert result.stderr.rstrip().endswith('KeyboardInterrupt') and 'stopped by' not in result.stderr
    assert _states(experiment.root) == []
    assert os.listdir(osp.join(experiment.root, 'models')) == []
