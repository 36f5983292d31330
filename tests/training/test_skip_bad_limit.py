"""``datasets.train.skip_bad`` has a limit: past ``skip_bad_max_fraction`` of the set, the run stops with one line
(exit 2) and what it wrote is whole. BasicSR's training pipeline through ``basicsr train``'s entry point, in this
process, on a copy of the demo LMDBs that lists three keys they do not hold."""
import os
import re
import shutil
from os import path as osp

import torch
from helpers.files import file_bytes
from helpers.logs import experiment_log
from helpers.long_runs import long_run_option, train_in_process, write_long_run

FAULT = 2


def test_more_unreadable_samples_than_skip_bad_max_fraction_stop_the_run(demo_data_root, tmp_path, capsys):
    """14 samples, 3 of them missing, ``skip_bad_max_fraction: 0.1``: one replaced sample is allowed, the second
    stops the run with one line naming the dataset, the count and the last sample, exit 2, no traceback. A
    checkpoint every iteration: those written before the stop are all there and readable, none is partial, the
    data are unchanged. Without the limit the run would train its 24 iterations and exit 0."""
    shutil.copytree(osp.join(demo_data_root, 'datasets'), tmp_path / 'datasets')
    train = str(tmp_path / 'datasets' / 'demo' / 'train')
    for name in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        with open(osp.join(train, name, 'meta_info.txt'), 'a', encoding='utf-8') as file:
            file.writelines(f'{key}.png (480,480,3) 1\n' for key in ('gnu', 'yak', 'zebra'))
    data = file_bytes(train)
    root = str(tmp_path / 'too_many_bad')
    opt = long_run_option('NLSN', 'too_many_bad', root, str(tmp_path), total_iter=24, save_freq=1)
    opt['val']['val_freq'] = 10**6
    opt['datasets']['train'].update(skip_bad=True, skip_bad_max_fraction=0.1)

    assert train_in_process(write_long_run(opt, str(tmp_path), 'too_many_bad.yml')) == FAULT
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith('basicsr train')]
    assert len(lines) == 1 and 'Traceback' not in stderr, stderr[-3000:]
    assert re.fullmatch(
        r'basicsr train: datasets.train: 2 unreadable samples, more than skip_bad_max_fraction 0.1 of 14; last: '
        r"datasets.train \(demo_train\): cannot read the (lq|gt) image of sample 1[123]: key '(gnu|yak|zebra)' of "
        rf'{re.escape(train)}/(HR|LR_bicubic_X4).lmdb is missing', lines[0]), lines[0]
    assert experiment_log(root).count('replaced by the next readable sample (skip_bad)') == 2

    states = sorted(os.listdir(osp.join(root, 'training_states')), key=lambda name: int(name.split('.')[0]))
    saved = len(states)
    assert 1 <= saved < 24 and states == [f'{iteration}.state' for iteration in range(1, saved + 1)]
    for iteration in range(1, saved + 1):
        assert torch.load(osp.join(root, 'training_states', f'{iteration}.state'), weights_only=False)['iter'] == \
            iteration
        torch.load(osp.join(root, 'models', f'net_g_{iteration}.pth'), weights_only=True)
    assert sorted(os.listdir(osp.join(root, 'models'))) == sorted(f'net_g_{i}.pth' for i in range(1, saved + 1))
    assert file_bytes(train) == data
