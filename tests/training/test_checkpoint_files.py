"""Atomic checkpoint files, the choice of the state to resume from, and ``logger.keep_states`` (real files)."""
import os
import subprocess
import sys
import textwrap
import zipfile
from os import path as osp

import pytest
import torch
from helpers.runs import REPO_ROOT, subprocess_env

from basicsr_nlattn.training.resume import choose_resume_state, parse_keep_states, prune_training_states
from basicsr_nlattn.utils import OptionError
from basicsr_nlattn.utils.checkpoint_files import atomic_torch_save, readable_checkpoint


def _truncate(path: str, keep_fraction: float = 0.5) -> None:
    """What a kill or a full disk during a plain ``torch.save`` leaves."""
    with open(path, 'rb') as file:
        data = file.read()
    with open(path, 'wb') as file:
        file.write(data[:int(len(data) * keep_fraction)])


def test_atomic_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / '5.state')
    atomic_torch_save({'iter': 4}, path)
    atomic_torch_save({'iter': 5, 'weights': torch.arange(3.)}, path)
    assert torch.load(path, weights_only=True)['iter'] == 5
    assert os.listdir(tmp_path) == ['5.state']


def test_a_failed_save_names_the_path_and_keeps_the_previous_file(tmp_path):
    """A full disk, simulated by RLIMIT_FSIZE (writes past it fail with EFBIG; Python ignores SIGXFSZ)."""
    path = str(tmp_path / 'net_g_10.pth')
    atomic_torch_save({'params': torch.zeros(4)}, path)
    before = open(path, 'rb').read()
    script = textwrap.dedent(f"""
        import resource, sys, torch
        sys.path.insert(0, {REPO_ROOT!r})
        from basicsr_nlattn.utils.checkpoint_files import CheckpointWriteError, atomic_torch_save
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_torch_save({{'params': torch.zeros(100_000)}}, {path!r})
        except CheckpointWriteError as error:
            print(error)
            sys.exit(7)
    """)
    result = subprocess.run([sys.executable, '-c', script], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 7, result.stderr
    assert result.stdout.startswith(f"cannot write '{path}': ") and len(result.stdout.splitlines()) == 1
    assert open(path, 'rb').read() == before
    assert os.listdir(tmp_path) == ['net_g_10.pth']


def test_readable_checkpoint_says_what_an_unreadable_file_is(tmp_path):
    path = str(tmp_path / '3.state')
    torch.save({'weights': torch.randn(1000)}, path)
    assert readable_checkpoint(path) is None
    size = os.path.getsize(path)
    _truncate(path)
    assert readable_checkpoint(path) == (f'truncated, a zip archive cut short at {size // 2} bytes (its central '
                                         'directory is missing: an interrupted write or copy)')
    assert readable_checkpoint(str(tmp_path / 'none.state')) == 'missing'
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert readable_checkpoint(str(tmp_path / 'empty.pth')) == 'empty (0 bytes)'
    (tmp_path / 'notes.pth').write_text('lr: 2e-4\n')
    assert readable_checkpoint(str(tmp_path / 'notes.pth')) == ('not a PyTorch checkpoint (neither a zip archive nor a '
                                                                "torch pickle; it begins with b'lr: 2e-4\\n')")
    with zipfile.ZipFile(tmp_path / 'other.zip', 'w') as archive:
        archive.writestr('notes/readme.txt', 'not weights')
    assert readable_checkpoint(str(tmp_path /
                                   'other.zip')) == 'not a PyTorch checkpoint (a zip archive without data.pkl)'
    torch.save({'params': {'weight': torch.ones(3)}}, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    assert readable_checkpoint(str(tmp_path / 'legacy.pth')) is None  # torch's format before 1.6: loaded whole


def _run_folder(tmp_path, iterations, damaged=()):
    """An experiment's training_states and models with a state and net_g for each iteration."""
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    for iteration in iterations:
        torch.save({'iter': iteration}, states / f'{iteration}.state')
        torch.save({'params': {}}, models / f'net_g_{iteration}.pth')
    for name in damaged:
        _truncate(str(tmp_path / name))
    return {
        'auto_resume': True,
        'network_g': {},
        'path': {
            'training_states': str(states),
            'models': str(models),
            'resume_state': None
        }
    }


def test_auto_resume_passes_over_a_truncated_newest_state(tmp_path):
    opt = _run_folder(tmp_path, [10, 20, 30], damaged=['training_states/30.state'])
    path, warnings = choose_resume_state(opt)
    assert path == str(tmp_path / 'training_states' / '20.state')
    assert warnings[0].startswith('--auto_resume: training state 30 passed over: ') and '30.state' in warnings[0]
    assert warnings[-1] == f'--auto_resume: resuming from the newest readable training state {path}'


def test_auto_resume_passes_over_a_state_whose_model_file_is_damaged_or_missing(tmp_path):
    opt = _run_folder(tmp_path, [10, 20, 30], damaged=['models/net_g_30.pth'])
    os.remove(tmp_path / 'models' / 'net_g_20.pth')
    path, warnings = choose_resume_state(opt)
    assert path.endswith('10.state')
    assert 'net_g_30.pth' in warnings[0] and 'net_g_20.pth' in warnings[1] and 'is missing' in warnings[1]


def test_auto_resume_with_no_readable_state_stops_instead_of_starting_afresh(tmp_path):
    opt = _run_folder(tmp_path, [10], damaged=['training_states/10.state'])
    with pytest.raises(OptionError, match=r"--auto_resume: none of the 1 training states in '.*' can be read"):
        choose_resume_state(opt)
    assert choose_resume_state(dict(opt, path=dict(opt['path'], training_states=str(tmp_path / 'no'))))[0] is None


def test_an_unreadable_explicit_resume_state_is_an_option_error(tmp_path):
    opt = _run_folder(tmp_path, [10, 20], damaged=['training_states/20.state'])
    opt['auto_resume'] = False
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '20.state')
    with pytest.raises(OptionError, match=r"^path.resume_state: '.*20.state' cannot be read: "):
        choose_resume_state(opt)
    opt['path']['resume_state'] = str(tmp_path / 'training_states' / '10.state')
    assert choose_resume_state(opt) == (opt['path']['resume_state'], [])


def test_keep_states_keeps_the_newest_and_never_the_last_readable_one(tmp_path):
    folder = tmp_path / 'training_states'
    folder.mkdir()
    for iteration in (5, 10, 15, 20):
        torch.save({'iter': iteration}, folder / f'{iteration}.state')
    assert prune_training_states(str(folder), None) == ([], None)
    deleted, warning = prune_training_states(str(folder), 2)
    assert sorted(osp.basename(p) for p in deleted) == ['10.state', '5.state'] and warning is None
    assert sorted(os.listdir(folder)) == ['15.state', '20.state']
    _truncate(str(folder / '20.state'))
    torch.save({'iter': 25}, folder / '25.state')
    _truncate(str(folder / '25.state'))
    deleted, warning = prune_training_states(str(folder), 2)  # 25 and 20 damaged: 15 is the last readable one
    assert deleted == [] and 'none of the 2 newest training states' in warning
    assert sorted(os.listdir(folder)) == ['15.state', '20.state', '25.state']
    with pytest.raises(OptionError, match='logger.keep_states: must be an int >= 1'):
        parse_keep_states(0)
