"""The resumable sampler, seeded samples and data faults on BasicSR's real PairedImageDataset (demo PNGs and LMDBs)."""
import random
import shutil
import subprocess
import sys
import textwrap
from os import path as osp

import numpy as np
import pytest
import torch
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.data.paired_image_dataset import PairedImageDataset
from helpers.runs import REPO_ROOT, subprocess_env
from torch.utils.data import DataLoader

from basicsr_nlattn.data import (BAD_SAMPLE_KEY, DataFault, ResumableSampler, ResumableSamples, SampleKey,
                                 data_fault_line)


def _dataset(root, backend='disk', **changes):
    train = osp.join(root, 'datasets', 'demo', 'train')
    opt = {
        'name': 'demo_train',
        'phase': 'train',
        'scale': 4,
        'gt_size': 32,
        'use_hflip': True,
        'use_rot': True,
        'io_backend': {
            'type': backend
        },
    }
    if backend == 'lmdb':
        opt.update(dataroot_gt=osp.join(train, 'HR.lmdb'), dataroot_lq=osp.join(train, 'LR_bicubic_X4.lmdb'))
    else:
        opt.update(
            dataroot_gt=osp.join(train, 'HR'), dataroot_lq=osp.join(train, 'LR_bicubic', 'X4'), filename_tmpl='{}x4')
    opt.update(changes)
    return PairedImageDataset(opt)


def test_the_sampler_keeps_basicsr_order_and_resumes_inside_an_epoch():
    dataset = list(range(11))
    for rank in (0, 1):
        ours, basicsr = ResumableSampler(dataset, 2, rank, ratio=3), EnlargedSampler(dataset, 2, rank, ratio=3)
        for epoch in (0, 4):
            ours.set_epoch(epoch)
            basicsr.set_epoch(epoch)
            keys = list(ours)
            assert [key.index for key in keys] == list(basicsr)
            assert [key.position for key in keys] == list(range(rank, ours.total_size, 2))
            assert {key.epoch for key in keys} == {epoch}
    sampler = ResumableSampler(dataset, 1, 0)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.resume_at(2, 7)
    assert len(sampler) == 4 and list(sampler) == whole[7:] and list(sampler) == whole[7:]  # kept until set_epoch
    sampler.set_epoch(3)
    assert len(list(sampler)) == 11
    sampler.set_epoch(2)
    assert list(sampler) == whole


def test_a_sample_gets_the_same_augmentation_in_any_order_any_worker_and_leaves_the_rngs_alone(demo_data_root):
    samples = ResumableSamples(_dataset(demo_data_root), 'datasets.train (demo_train)', manual_seed=3)
    keys = [SampleKey(0, position, position % 11) for position in range(6)]
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    forward = [samples[key]['gt'] for key in keys]
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == before
    backward = [samples[key]['gt'] for key in reversed(keys)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    assert not torch.equal(samples[SampleKey(1, 0, 0)]['gt'], forward[0])  # another epoch, another crop
    with_workers = DataLoader(samples, batch_size=2, sampler=keys, num_workers=2)
    batches = torch.cat([batch['gt'] for batch in with_workers])
    assert torch.equal(batches, torch.stack(forward))


def test_a_corrupt_png_is_named_in_one_line_also_from_a_worker(demo_data_root, tmp_path):
    root = tmp_path / 'copy'
    shutil.copytree(osp.join(demo_data_root, 'datasets', 'demo', 'train'), root / 'datasets' / 'demo' / 'train')
    broken = root / 'datasets' / 'demo' / 'train' / 'LR_bicubic' / 'X4' / 'brickx4.png'
    broken.write_bytes(broken.read_bytes()[:200])
    samples = ResumableSamples(_dataset(str(root)), 'datasets.train (demo_train)')
    index = [osp.basename(p['lq_path']) for p in samples.paths].index('brickx4.png')
    expected = (f"datasets.train (demo_train): cannot read the lq image of sample {index}: '{broken}' is not a "
                'readable image (corrupt or truncated)')
    with pytest.raises(DataFault) as fault:
        samples[SampleKey(0, 0, index)]
    assert str(fault.value) == expected
    loader = DataLoader(samples, batch_size=1, sampler=[SampleKey(0, 0, index)], num_workers=1)
    with pytest.raises(DataFault) as from_worker:
        next(iter(loader))
    assert 'Traceback' in str(from_worker.value) and data_fault_line(from_worker.value) == expected
    # skip_bad: the next readable sample instead, and which one it replaced
    skipping = ResumableSamples(_dataset(str(root)), 'datasets.train (demo_train)', skip_bad=True)
    sample = skipping[SampleKey(0, 0, index)]
    assert sample[BAD_SAMPLE_KEY] == expected and sample['lq_path'] == samples.paths[index + 1]['lq_path']
    assert skipping[SampleKey(0, 1, 0)][BAD_SAMPLE_KEY] == ''


def test_a_key_missing_from_an_lmdb_is_named(demo_data_root, tmp_path):
    train = tmp_path / 'datasets' / 'demo' / 'train'
    for name in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        shutil.copytree(osp.join(demo_data_root, 'datasets', 'demo', 'train', name), train / name)
        with open(train / name / 'meta_info.txt', 'a', encoding='utf-8') as file:
            file.write('zebra.png (480,480,3) 1\n')
    samples = ResumableSamples(_dataset(str(tmp_path), 'lmdb'), 'datasets.train (demo_train)')
    index = [p['gt_path'] for p in samples.paths].index('zebra')
    with pytest.raises(DataFault) as fault:
        samples[SampleKey(0, 0, index)]
    assert str(fault.value) == (f'datasets.train (demo_train): cannot read the lq image of sample {index}: key '
                                f"'zebra' of {train / 'LR_bicubic_X4.lmdb'} is missing")


def test_validation_samples_are_read_once_and_unreadable_ones_dropped_with_skip_bad(demo_data_root, tmp_path):
    import logging
    root = tmp_path / 'copy'
    shutil.copytree(osp.join(demo_data_root, 'datasets', 'demo', 'train'), root / 'datasets' / 'demo' / 'train')
    (root / 'datasets' / 'demo' / 'train' / 'HR' / 'camera.png').write_bytes(b'not a png')
    strict = ResumableSamples(_dataset(str(root), phase='val'), 'datasets.val (demo_val)')
    with pytest.raises(DataFault, match=r"^datasets.val \(demo_val\): cannot read the gt image of sample \d+: "):
        strict.drop_unreadable(logging.getLogger('test'))
    lenient = ResumableSamples(_dataset(str(root), phase='val'), 'datasets.val (demo_val)', skip_bad=True)
    dropped = lenient.drop_unreadable(logging.getLogger('test'))
    assert len(dropped) == 1 and 'camera.png' in dropped[0] and len(lenient) == 10
    assert all('camera' not in lenient[i]['gt_path'] for i in range(len(lenient)))


def test_a_process_whose_worker_raised_still_exits():
    """The workers ignore the stop signals, and multiprocessing's exit stops workers with SIGTERM: a process that
    keeps the iterator of a failed load (as a traceback does) must still exit, its workers asked to stop first."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO_ROOT!r})
        import basicsr_nlattn
        from torch.utils.data import DataLoader, Dataset
        from basicsr_nlattn.data import DataFault, ResumableSamples, SampleKey

        class Unreadable(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, index):
                raise OSError('unreadable')

        loader = DataLoader(ResumableSamples(Unreadable(), 'datasets.train (unreadable)'), batch_size=1,
                            sampler=[SampleKey(0, 0, 1)], num_workers=1)
        try:
            next(iter(loader))
        except DataFault as fault:
            kept = fault
            print('DataFault')
    """)
    result = subprocess.run([sys.executable, '-c', script],
                            env=subprocess_env(),
                            capture_output=True,
                            text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == 'DataFault\n', result.stderr[-2000:]
