"""``basicsr test`` ends with one markdown table of every set beside the paper's numbers, with the difference."""
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img
from helpers.logs import experiment_log
from helpers.options import write_option
from helpers.runs import REPO_ROOT, check_ok, run_basicsr, subprocess_env, torchrun_command
from skimage import data as skdata

from basicsr_nlattn import cli
from basicsr_nlattn.tools.paper_results import PUBLISHED, DatasetResult, comparison_table, paper_row_name
from basicsr_nlattn.utils import OptionError

TINY_ENLCN = {'type': 'ENLCN', 'num_feat': 8, 'num_block': 2, 'upscale': 4, 'attn_every': 1, 'num_random_features': 16}
METRICS = {
    'psnr': {
        'type': 'calculate_psnr',
        'crop_border': 4,
        'test_y_channel': True
    },
    'ssim': {
        'type': 'calculate_ssim',
        'crop_border': 4,
        'test_y_channel': True
    },
}


def test_published_rows_hold_the_papers_numbers():
    # Spot checks against the tables: ENLCA Table 1 (x4 Urban100), NLSA Table 1 (x3 Manga109), CCLNN Table 5.
    assert PUBLISHED[('ENLCN', 4)].results['Urban100'] == (27.12, 0.8141)
    assert PUBLISHED[('NLSN', 3)].results['Manga109'] == (34.57, 0.9508)
    assert PUBLISHED[('CCLNN', 2)].results['B100'] == (32.44, 0.9030)
    assert ('ENLCN', 3) not in PUBLISHED  # the ENLCA paper reports x2 and x4 only
    for paper in PUBLISHED.values():
        for psnr, ssim in paper.results.values():
            assert 20 < psnr < 45 and (ssim is None or 0.6 < ssim < 1)


def test_table_rows_differences_and_notes():
    opt = {'name': 'mine', 'scale': 4, 'network_g': {'type': 'ENLCN'}, 'val': {'metrics': METRICS}}
    results = [
        DatasetResult('Set5', 5, {
            'psnr': 32.7049,
            'ssim': 0.90101
        }),
        DatasetResult('BSD100', 100, {
            'psnr': 27.80,
            'ssim': 0.7440
        }),
        DatasetResult('DIV2K_val', 10, {
            'psnr': 29.0,
            'ssim': 0.8
        })
    ]
    table = comparison_table(opt, results)
    assert table.splitlines() == [
        '### mine: ENLCN x4 against ENLCA (Xia et al., AAAI 2022), Table 1', '',
        '| Dataset | Images | PSNR | Paper | Diff | SSIM | Paper | Diff |', '|---|---:|---:|---:|---:|---:|---:|---:|',
        '| Set5 | 5 | 32.70 | 32.67 | +0.03 | 0.9010 | 0.9004 | +0.0006 |',
        '| BSD100 | 100 | 27.80 | 27.82 | -0.02 | 0.7440 | 0.7452 | -0.0012 |',
        '| DIV2K_val | 10 | 29.00 | - | - | 0.8000 | - | - |'
    ]
    opt['val'].update(self_ensemble=True, metrics={'psnr': dict(METRICS['psnr'], test_y_channel=False)})
    opt['val']['compare_to_paper'] = 'NLSN'
    table = comparison_table(opt, results[:1])
    assert 'NLSN x4 against NLSA (Mei et al., CVPR 2021), Table 1' in table
    assert "x8 self-ensemble on (the papers' numbers are without it)" in table
    assert "val.metrics.psnr is not the papers' protocol (Y channel, crop_border: 4)" in table
    assert '| Set5 | 5 | 32.70 | 32.59 | +0.11 |' in table


def test_networks_without_published_numbers_get_our_columns_only():
    opt = {'name': 'edsr', 'scale': 3, 'network_g': {'type': 'ENLCN'}, 'val': {'metrics': METRICS}}
    table = comparison_table(opt, [DatasetResult('Set5', 5, {'psnr': 30.0, 'ssim': 0.9})])
    assert 'no published numbers for ENLCN x3' in table and '| Set5 | 5 | 30.00 | 0.9000 |' in table
    opt['val']['compare_to_paper'] = False
    assert paper_row_name(opt) is None
    opt['val']['compare_to_paper'] = 'ENLCNN'
    with pytest.raises(OptionError, match=r"val.compare_to_paper: must be one of \['CCLNN', 'CCLNN-L', 'ENLCN', "):
        paper_row_name(opt)


@pytest.fixture(scope='module')
def benchmark_workdir(tmp_path_factory):
    """Set5 (two photographs) and B100 (one) made by scripts/prepare_benchmarks.py, and a tiny ENLCN x4."""
    root = tmp_path_factory.mktemp('benchmarks')
    (root / 'raw' / 'Set5').mkdir(parents=True)
    (root / 'raw' / 'BSD100').mkdir()
    cv2.imwrite(str(root / 'raw' / 'Set5' / 'astronaut.png'), skdata.astronaut()[100:197, 150:260, ::-1])
    cv2.imwrite(str(root / 'raw' / 'Set5' / 'chelsea.png'), skdata.chelsea()[:90, 100:205, ::-1])
    cv2.imwrite(str(root / 'raw' / 'BSD100' / 'coffee.png'), skdata.coffee()[50:150, 200:320, ::-1])
    script = osp.join(REPO_ROOT, 'scripts', 'prepare_benchmarks.py')
    command = [
        sys.executable, script, '--input',
        str(root / 'raw'), '--output',
        str(root / 'datasets'), '--scales', '4'
    ]
    check_ok(subprocess.run(command, env=subprocess_env(), capture_output=True, text=True))
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(TINY_ENLCN)).state_dict()}, root / 'tiny.pth')
    return root


def benchmark_option(name):
    """A test option over the generated Set5 and BSD100 with the tiny ENLCN x4."""
    datasets = {
        f'test_{index}': {
            'name': set_name,
            'type': 'PairedImageDataset',
            'dataroot_gt': f'datasets/{folder}/GTmod12',
            'dataroot_lq': f'datasets/{folder}/LRbicx4',
            'io_backend': {
                'type': 'disk'
            }
        }
        for index, (set_name, folder) in enumerate([('Set5', 'Set5'), ('BSD100', 'B100')], start=1)
    }
    opt = {
        'name': name,
        'model_type': 'ContrastiveSRModel',
        'scale': 4,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': datasets,
        'network_g': TINY_ENLCN,
        'path': {
            'pretrain_network_g': 'tiny.pth',
            'strict_load_g': True
        },
        'val': {
            'save_img': False,
            'metrics': METRICS
        }
    }
    return opt


@pytest.fixture(scope='module')
def single_process_table(benchmark_workdir):
    """The table of one ``basicsr test`` process over the benchmark folder (run once for the tests that need it)."""
    root = benchmark_workdir
    opt = benchmark_option('test_tiny_ENLCN_x4')
    check_ok(run_basicsr(['test', '-opt', write_option(opt, str(root))], cwd=str(root)))
    with open(root / 'results' / 'test_tiny_ENLCN_x4' / 'benchmark.md', encoding='utf-8') as file:
        return file.read()


def test_basicsr_test_writes_the_table_of_every_set(benchmark_workdir, single_process_table):
    root = benchmark_workdir
    table = single_process_table
    assert table in experiment_log(str(root / 'results' / 'test_tiny_ENLCN_x4'), phase='test')

    # Our own forward and BasicSR's metrics, image by image, give the table's means.
    net = build_network(dict(TINY_ENLCN)).eval()
    net.load_state_dict(torch.load(root / 'tiny.pth', weights_only=True)['params'])
    rows = {}
    for name, folder in (('Set5', 'Set5'), ('BSD100', 'B100')):
        psnrs, ssims = [], []
        for image_name in sorted(osp.basename(p) for p in (root / 'datasets' / folder / 'GTmod12').iterdir()):
            gt = cv2.imread(str(root / 'datasets' / folder / 'GTmod12' / image_name))
            lq = cv2.imread(str(root / 'datasets' / folder / 'LRbicx4' / image_name)).astype(np.float32) / 255.
            with torch.no_grad():
                sr = tensor2img(net(img2tensor(lq).unsqueeze(0)))
            psnrs.append(calculate_psnr(sr, gt, crop_border=4, test_y_channel=True))
            ssims.append(calculate_ssim(sr, gt, crop_border=4, test_y_channel=True))
        rows[name] = (len(psnrs), np.mean(psnrs), np.mean(ssims))
    paper = PUBLISHED[('ENLCN', 4)].results
    lines = table.splitlines()
    assert lines[0] == '### test_tiny_ENLCN_x4: ENLCN x4 against ENLCA (Xia et al., AAAI 2022), Table 1'
    for name, key in (('Set5', 'Set5'), ('BSD100', 'B100')):
        count, psnr, ssim = rows[name]
        ref_psnr, ref_ssim = paper[key]
        expected = (f'| {name} | {count} | {psnr:.2f} | {ref_psnr:.2f} | {psnr - ref_psnr:+.2f} | {ssim:.4f} | '
                    f'{ref_ssim:.4f} | {ssim - ref_ssim:+.4f} |')
        assert expected in lines
    assert rows['Set5'][0] == 2 and rows['BSD100'][0] == 1


def test_bad_inference_options_are_named_before_testing(benchmark_workdir, tmp_path, capsys, monkeypatch):
    opt = {
        'name': 'bad',
        'model_type': 'ContrastiveSRModel',
        'scale': 4,
        'num_gpu': 0,
        'datasets': {},
        'network_g': TINY_ENLCN,
        'path': {},
        'val': {
            'save_img': False,
            'self_ensemble': 'yes'
        }
    }
    monkeypatch.chdir(tmp_path)
    assert cli.main(['test', '-opt', write_option(opt, str(tmp_path))]) == 2
    assert "val.self_ensemble: must be true or false, got 'yes'" in capsys.readouterr().err
    opt['val'] = {'save_img': False, 'tile': {'mode': 'quadrants'}}
    assert cli.main(['test', '-opt', write_option(opt, str(tmp_path))]) == 2
    assert "val.tile.mode: must be one of ['chop', 'tile'], got 'quadrants'" in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'results')


def test_torchrun_test_writes_the_same_table_once(benchmark_workdir, single_process_table):
    """Under torchrun rank 0 validates (compat) and writes the table; it equals the one-process table."""
    root = benchmark_workdir
    option_file = write_option(benchmark_option('test_tiny_ENLCN_x4_dist'), str(root), 'dist.yml')
    command = torchrun_command(2, 'basicsr_nlattn.test', ['-opt', option_file, '--launcher', 'pytorch'])
    check_ok(subprocess.run(command, cwd=str(root), env=subprocess_env(), capture_output=True, text=True, timeout=600))
    with open(root / 'results' / 'test_tiny_ENLCN_x4_dist' / 'benchmark.md', encoding='utf-8') as file:
        table = file.read()
    assert table.replace('_dist', '') == single_process_table
    assert experiment_log(str(root / 'results' / 'test_tiny_ENLCN_x4_dist'), phase='test').count('| Set5 | 2 |') == 1
