"""The users' workflow end to end with the shipped option files, shrunk by BasicSR's ``--force_yml`` only:
DIV2K-shaped photographs -> prepare_div2k.py (sub-images, LMDBs) and prepare_benchmarks.py (five sets) ->
``basicsr train -opt options/train_ENLCN_x4.yml`` -> ``basicsr test -opt options/test_ENLCN_x4.yml`` -> the table."""
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
from helpers.logs import experiment_log
from helpers.runs import REPO_ROOT, check_ok, run_basicsr, subprocess_env
from skimage import data as skdata

TINY = ['network_g:num_feat=16', 'network_g:num_block=2', 'network_g:attn_every=1', 'num_gpu=0']


def run_script(name, *args):
    command = [sys.executable, osp.join(REPO_ROOT, 'scripts', name), *args]
    check_ok(subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=600), name)


def write_inputs(root):
    """DIV2K as downloaded (two HR photographs and their x4 LR) and one HR photograph per benchmark set."""
    for stem, photo in (('0001', skdata.astronaut()[:500, :500]), ('0002', skdata.coffee()[:396, :588])):
        hr = np.ascontiguousarray(photo[:, :, ::-1])
        (root / 'DIV2K' / 'DIV2K_train_HR').mkdir(parents=True, exist_ok=True)
        (root / 'DIV2K' / 'DIV2K_train_LR_bicubic' / 'X4').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / 'DIV2K' / 'DIV2K_train_HR' / f'{stem}.png'), hr)
        lr = cv2.resize(hr, (hr.shape[1] // 4, hr.shape[0] // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / 'DIV2K' / 'DIV2K_train_LR_bicubic' / 'X4' / f'{stem}x4.png'), lr)
    photos = {
        'Set5': skdata.chelsea,
        'Set14': skdata.rocket,
        'B100': skdata.astronaut,
        'Urban100': skdata.coffee,
        'Manga109': skdata.immunohistochemistry
    }
    for name, photo in photos.items():
        (root / 'raw' / name).mkdir(parents=True)
        cv2.imwrite(str(root / 'raw' / name / f'{name.lower()}.png'), photo()[:100, :130, ::-1])


def test_prepare_train_test_with_the_shipped_options(tmp_path):
    write_inputs(tmp_path)
    run_script('prepare_div2k.py', '--input', str(tmp_path / 'DIV2K'), '--output', str(tmp_path / 'datasets' / 'DIV2K'),
               '--scales', '4', '--workers', '2')
    run_script('prepare_benchmarks.py', '--input', str(tmp_path / 'raw'), '--output', str(tmp_path / 'datasets'),
               '--scales', '4')

    shrink_train = [
        *TINY, 'train:total_iter=4', 'datasets:train:batch_size_per_gpu=2', 'datasets:train:num_worker_per_gpu=1',
        'logger:print_freq=2', 'logger:use_tb_logger=false'
    ]
    train_option = osp.join(REPO_ROOT, 'options', 'train_ENLCN_x4.yml')
    train = run_basicsr(['train', '-opt', train_option, '--force_yml', *shrink_train], cwd=str(tmp_path))
    check_ok(train, 'basicsr train')
    log = experiment_log(str(tmp_path / 'experiments' / 'ENLCN_x4'))
    # 0001 (500x500): corners [0, 20] x [0, 20]; 0002 (396x588): one row of 396, corners [0, 108]: 4 + 2
    assert 'Number of train images: 6' in log
    assert '# psnr:' in log  # the final validation on the prepared Set5
    checkpoint = tmp_path / 'experiments' / 'ENLCN_x4' / 'models' / 'net_g_latest.pth'
    assert checkpoint.is_file()

    shrink_test = [*TINY, f'path:pretrain_network_g={checkpoint}', 'val:save_img=false']
    test_option = osp.join(REPO_ROOT, 'options', 'test_ENLCN_x4.yml')
    test = run_basicsr(['test', '-opt', test_option, '--force_yml', *shrink_test], cwd=str(tmp_path))
    check_ok(test, 'basicsr test')
    table = (tmp_path / 'results' / 'test_ENLCN_x4' / 'benchmark.md').read_text(encoding='utf-8').splitlines()
    assert table[0] == '### test_ENLCN_x4: ENLCN x4 against ENLCA (Xia et al., AAAI 2022), Table 1'
    rows = [
        line.split(' | ') for line in table
        if line.startswith('| ') and line[2:].split(' | ')[0] in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
    ]
    assert [row[0][2:] for row in rows] == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
    assert [row[3] for row in rows] == ['32.67', '28.94', '27.82', '27.12', '31.33']
    for row in rows:
        assert row[1] == '1'
        assert abs(float(row[2]) - float(row[3]) - float(row[4])) <= 0.011  # Diff = ours - paper, rounded
