"""The pre-flight check (tools/option_check.py): one bad value per documented option key stops ``basicsr train`` or
``basicsr test`` with one line that starts with the key, before any folder is made, archived or renamed.

The sweep runs the command in-process (``basicsr_nlattn.cli.main``, what the console script and ``python -m
basicsr_nlattn.train|test`` call); one real ``python -m basicsr_nlattn.test`` run here and ``basicsr train`` in
``tests/test_cli.py`` show the real commands behave the same. The data folders are stand-ins: the check reads the
folders and the LMDB keys, never the images.
"""
import copy
import glob
import os
import subprocess
import sys
from os import path as osp
from typing import Any, Dict

import pytest
import torch
from basicsr.utils.logger import initialized_logger
from helpers.options import tiny_demo_option, write_option
from helpers.runs import REPO_ROOT, subprocess_env

from basicsr_nlattn.cli import main
from basicsr_nlattn.tools import option_check
from basicsr_nlattn.tools.option_check import build_network_on_meta, check_inference_options, check_options
from basicsr_nlattn.utils import OptionError, load_option_file

NAME = 'sweep'
DELETE = object()  # a change that removes the key
ENLCN = tiny_demo_option(NAME)['network_g']  # 16 features, 2 residual blocks
NLSN = {'type': 'NLSN', 'num_feat': 16, 'num_block': 2, 'upscale': 4, 'attn_every': 2, 'chunk_size': 16, 'n_hashes': 2}
CCLNN = {**NLSN, 'type': 'CCLNN', 'num_feat': 32}
EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_block': 2, 'upscale': 4}
WITH_ATTENTION = {
    'type': 'WithAttention',
    'base': EDSR,
    'attention': {
        'type': 'NLSA',
        'chunk_size': 16
    },
    'insert_after': ['body.0']
}
SWINIR = {  # BasicSR's SwinIR calls Tensor.item in its constructor: no meta kernel, so it is built on the CPU
    'type': 'SwinIR',
    'upscale': 4,
    'img_size': 16,
    'window_size': 4,
    'embed_dim': 12,
    'depths': [1],
    'num_heads': [2],
    'mlp_ratio': 2,
    'upsampler': 'pixelshuffle'
}
BASES: Dict[str, Dict[str, Any]] = {
    'ENLCN': {},
    'NLSN': {
        'network_g': NLSN,
        'train.contrastive_opt': DELETE
    },
    'CCLNN': {
        'network_g': CCLNN,
        'train.contrastive_opt': {
            'type': 'CCAContrastiveLoss'
        }
    },
    'WithAttention': {
        'network_g': WITH_ATTENTION,
        'train.contrastive_opt': DELETE
    },
    'PCL': {
        'model_type': 'PCLModel',
        'network_d': {
            'type': 'HaarDiscriminator',
            'num_feat': 8,
            'num_stages': 4
        },
        'train.optim_d': {
            'type': 'Adam',
            'lr': 1e-4
        },
        'train.pcl_opt': {
            'num_pos': 2,
            'num_neg': 2,
            'layers': [0, 1]
        }
    },
    'test': {},
}


def train_option() -> Dict[str, Any]:
    return tiny_demo_option(NAME)


def basicsr_test_option() -> Dict[str, Any]:
    """The tiny demo as a ``basicsr test`` option: its validation set as ``test_1``, no training section."""
    opt = tiny_demo_option(NAME)
    opt['datasets'] = {'test_1': opt['datasets']['val']}
    opt['val'] = {'save_img': False, 'metrics': opt['val']['metrics']}
    opt['path'] = {'strict_load_g': True}
    del opt['train']
    return opt


def changed(opt: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    """``opt`` with ``changes`` applied in order: dotted keys, a value or DELETE."""
    opt = copy.deepcopy(opt)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split('.')
        target = opt
        for name in parents:
            target = target[name]
        if value is DELETE:
            target.pop(leaf, None)
        else:
            target[leaf] = copy.deepcopy(value)
    return opt


def case(base: str, changes: Dict[str, Any], expected: str, command: str = 'train'):
    return pytest.param(command, {**BASES[base], **changes}, expected, id=f'{command}:{base}:' + ','.join(changes))


SWEEP = [
    # network_g of ENLCN (ENLCA's arguments are the network's)
    case('ENLCN', {'network_g.amplification': -1}, 'network_g.amplification: must be > 0, got -1'),
    case('ENLCN', {'network_g.num_random_features': 0}, 'network_g.num_random_features: must be >= 1, got 0'),
    case('ENLCN', {'network_g.reduction': 0}, 'network_g.reduction: must be between 1 and num_feat (16), got 0'),
    case('ENLCN', {'network_g.reduction': 32}, 'network_g.reduction: must be between 1 and num_feat (16), got 32'),
    case('ENLCN', {'network_g.redraw_interval': -1}, 'network_g.redraw_interval: must be >= 0 (0: never), got -1'),
    case('ENLCN', {'network_g.num_block': 0}, 'network_g.num_block: must be >= 1, got 0'),
    case('ENLCN', {'network_g.attn_every': 0}, 'network_g.attn_every: must be >= 1, got 0'),
    case('ENLCN', {'network_g.upscale': 5}, 'network_g.upscale: must be 2, 3 or a power of 2, got 5'),
    case('ENLCN', {'network_g.rgb_mean': [0.5, 0.5]}, 'network_g.rgb_mean: needs one value per channel'),
    case('ENLCN', {'network_g.num_feat': 0}, 'network_g.num_feat: must be >= 1, got 0'),
    case('ENLCN', {'network_g.num_in_ch': 0}, 'network_g.num_in_ch: must be >= 1, got 0'),
    case('ENLCN', {'network_g.img_range': 0}, 'network_g.img_range: must be > 0, got 0'),
    case('ENLCN', {'network_g.n_hashes': 4},
         "network_g: ENLCN.__init__() got an unexpected keyword argument 'n_hashes'"),
    case('ENLCN', {'network_g.type': 'ENLCNN'}, "network_g.type: unknown arch type 'ENLCNN'. Did you mean 'ENLCN'"),
    case('ENLCN', {'network_g.amplification': 'abc'}, 'network_g: a value of the wrong type ('),
    case(
        'ENLCN', {'num_gpu': 2}, 'num_gpu: 2 without a launcher (DataParallel) is not supported; run one process '
        'per GPU: torchrun --nproc_per_node=2 -m basicsr_nlattn.train'),
    case('ENLCN', {'network_g': DELETE}, 'network_g: must be a mapping with the network type'),
    # NLSN, CCLNN
    case('NLSN', {'network_g.chunk_size': 0}, 'network_g.chunk_size: must be >= 1, got 0'),
    case('NLSN', {'network_g.n_hashes': 0}, 'network_g.n_hashes: must be an int >= 1, got 0'),
    case('NLSN', {'network_g.reduction': 64}, 'network_g.reduction: must be between 1 and num_feat (16), got 64'),
    case('NLSN', {'network_g.amplification': 6},
         "network_g: NLSN.__init__() got an unexpected keyword argument 'amplification'"),
    case('CCLNN', {'network_g.branches': 'neither'},
         "network_g.branches: must be one of ['both', 'local', 'nonlocal'], got 'neither'"),
    case('CCLNN', {'network_g.channel_attention': 'spatial'},
         "network_g.channel_attention: must be one of ['contrastive', 'plain'], got 'spatial'"),
    case('CCLNN', {'network_g.cca_reduction': 0},
         'network_g.cca_reduction: must be between 1 and num_feat (32), got 0'),
    case('CCLNN', {'network_g.cca_reduction': 64},
         'network_g.cca_reduction: must be between 1 and num_feat (32), got 64'),
    case('CCLNN', {'network_g.n_hashes': 0}, 'network_g.n_hashes: must be an int >= 1, got 0'),
    # WithAttention: its own arguments, the base's and the block's
    case('WithAttention', {'network_g.attention': DELETE},
         "network_g: WithAttention.__init__() missing 1 required positional argument: 'attention'"),
    case('WithAttention', {'network_g.insert_after': ['body.9']},
         "network_g.insert_after: unknown module(s) ['body.9']"),
    case('WithAttention', {'network_g.insert_after': 'body.0'},
         'network_g.insert_after: must be a non-empty list of module names'),
    case('WithAttention', {'network_g.base.type': 'EDSRR'}, "network_g.base.type: 'EDSRR' is not a registered arch"),
    case('WithAttention', {'network_g.base.res_scale_typo': 1},
         "network_g: EDSR.__init__() got an unexpected keyword argument 'res_scale_typo'"),
    case('WithAttention', {'network_g.attention.max_buckets': 3},
         'network_g.attention.max_buckets: must be an even number >= 2, got 3'),
    case('WithAttention', {'network_g.attention.chunk_size': 0}, 'network_g.attention.chunk_size: must be >= 1, got 0'),
    case('WithAttention', {'network_g.attention.type': 'NLSB'},
         "network_g.attention.type: 'NLSB' is not a registered arch"),
    # PCLModel: network_d (HaarDiscriminator), train.pcl_opt, train.optim_d, train.freeze_d
    case('PCL', {'network_d.num_stages': 0}, 'network_d.num_stages: must be >= 1, got 0'),
    case('PCL', {'network_d.num_feat': 0}, 'network_d.num_feat: must be >= 1, got 0'),
    case('PCL', {'network_d.num_in_ch': 0}, 'network_d.num_in_ch: must be >= 1, got 0'),
    case('PCL', {'network_d.depth': 3},
         "network_d: HaarDiscriminator.__init__() got an unexpected keyword argument 'depth'"),
    case('PCL', {'network_d.type': 'Haar'}, "network_d.type: unknown arch type 'Haar'"),
    case('PCL', {'network_d': {
        'type': 'EDSR',
        'num_in_ch': 3,
        'num_out_ch': 3
    }}, "network_d.type: must be HaarDiscriminator, got 'EDSR'"),
    case('PCL', {'network_d': DELETE}, 'network_d: PCLModel needs an embedding network'),
    case('PCL', {'train.optim_d': DELETE}, 'train.optim_d: PCLModel trains network_d; give its optimizer'),
    case('PCL', {'train.freeze_d': True}, 'train.freeze_d: needs path.pretrain_network_d'),
    case('PCL', {'train.pcl_opt.num_pos': 0}, 'train.pcl_opt.num_pos: must be an int >= 1, got 0'),
    case('PCL', {'train.pcl_opt.num_neg': 0}, 'train.pcl_opt.num_neg: must be an int >= 1, got 0'),
    case('PCL', {'train.pcl_opt.sampling': 'both'},
         "train.pcl_opt.sampling: must be one of ['paper', 'official'], got 'both'"),
    case('PCL', {'train.pcl_opt.start_iter': -1}, 'train.pcl_opt.start_iter: must be an int >= 0, got -1'),
    case('PCL', {'train.pcl_opt.layers': [0, 9]},
         'train.pcl_opt.layers: unknown feature layer(s) [9]; the embedding network has 4'),
    case('PCL', {'train.pcl_opt.layers': []}, 'train.pcl_opt.layers: must be a non-empty list of stage indices'),
    case('PCL', {'train.pcl_opt.tau': 0}, 'train.pcl_opt.tau: must be > 0, got 0'),
    case('PCL', {'train.pcl_opt.temperature': 2}, "train.pcl_opt: unknown key(s) ['temperature']"),
    case('PCL', {'train.pcl_opt.type': 'L1Loss'},
         "train.pcl_opt.type: must be one of ['PCLContrastiveLoss'], got 'L1Loss'"),
    case('PCL', {'train.discriminator_opt': {
        'type': 'ContrastiveDiscriminatorLoss',
        'weight': 1
    }}, "train.discriminator_opt: ContrastiveDiscriminatorLoss.__init__() got an unexpected keyword argument"),
    # model_type, train.contrastive_opt, train.grad_clip, the other losses
    case('ENLCN', {'model_type': 'SRModle'}, "model_type: unknown model type 'SRModle'. Did you mean 'SRModel'"),
    case(
        'ENLCN', {'train.contrastive_opt.type': 'L1Loss'},
        "train.contrastive_opt.type: must be one of ['CCAContrastiveLoss', 'CCASparsityLoss', 'ENLCAContrastiveLoss'] "
        "(a contrastive loss), got 'L1Loss'"),
    case('ENLCN', {'train.contrastive_opt.type': 'ENLCALoss'}, "train.contrastive_opt.type: unknown loss type"),
    case('ENLCN', {'train.contrastive_opt.n1': 1.5},
         'train.contrastive_opt.n1: as a fraction must be in (0, 1), got 1.5'),
    case('ENLCN', {'train.contrastive_opt.n1': 'two'},
         "train.contrastive_opt.n1: must be an int count or a float fraction, got 'two'"),
    case('ENLCN', {'train.contrastive_opt.n2': -1}, 'train.contrastive_opt.n2: as a count must be >= 0, got -1'),
    case('ENLCN', {
        'train.contrastive_opt.n1': 0.7,
        'train.contrastive_opt.n2': 0.6
    }, 'train.contrastive_opt: ENLCAContrastiveLoss: fractions n1 + n2 must be <= 1, got n1=0.7, n2=0.6'),
    case('ENLCN', {'train.contrastive_opt.start_iter': -5}, 'train.contrastive_opt.start_iter: must be an int >= 0'),
    case('ENLCN', {'train.contrastive_opt.n3': 1}, "train.contrastive_opt: unknown key(s) ['n3']"),
    case('ENLCN', {'train.contrastive_opt': {
        'type': 'CCAContrastiveLoss'
    }}, 'train.contrastive_opt.type: CCAContrastiveLoss needs ChannelContrastiveAttention blocks in network_g'),
    case('CCLNN', {'train.contrastive_opt': [{
        'type': 'CCAContrastiveLoss'
    }, {
        'type': 'CCAContrastiveLoss',
        'n': 0.6
    }]}, 'train.contrastive_opt[1].n: as a fraction must be in (0, 0.5)'),
    case('ENLCN', {'train.contrastive_opt': [{
        'type': 'ENLCAContrastiveLoss'
    }, 'CCAContrastiveLoss']}, "train.contrastive_opt[1]: must be a mapping with a loss type and its arguments"),
    case('ENLCN', {'train.grad_clip': 0}, 'train.grad_clip: must be a number > 0, got 0'),
    case('ENLCN', {'train.amp': 'fp32'}, "train.amp: must be one of ['bf16', 'fp16'] or false, got 'fp32'"),
    case('ENLCN', {'train.compile': 'yes'}, "train.compile: must be true or false, got 'yes'"),
    case('ENLCN', {'train.accumulate': 0}, 'train.accumulate: must be an int >= 1, got 0'),
    case('PCL', {'train.accumulate': 2}, 'train.accumulate: must be 1 for PCLModel, got 2'),
    case('ENLCN', {'train.nonfinite': {
        'action': 'ignore'
    }}, "train.nonfinite.action: must be one of ['skip', 'stop'], got 'ignore'"),
    case('PCL', {'train.nonfinite': {
        'max_consecutive': -1
    }}, 'train.nonfinite.max_consecutive: must be an int >= 0, got -1'),
    case('ENLCN', {'train.nonfinite': {
        'actions': 'skip'
    }}, "train.nonfinite: unknown key(s) ['actions']"),
    case('ENLCN', {'logger.keep_states': 0}, 'logger.keep_states: must be an int >= 1 (or absent: keep all), got 0'),
    case('ENLCN', {'datasets.train.skip_bad': 'yes'}, "datasets.train.skip_bad: must be true or false, got 'yes'"),
    case('ENLCN', {'datasets.val.skip_bad_max_fraction': 2},
         'datasets.val.skip_bad_max_fraction: must be a number in [0, 1], got 2'),
    case('ENLCN', {'train.channels_last': 1}, 'train.channels_last: must be true or false, got 1'),
    case('ENLCN', {'val.amp': True}, "val.amp: must be one of ['bf16', 'fp16'] or false, got True"),
    case('ENLCN', {'train.pixel_opt.type': 'L1'}, "train.pixel_opt.type: unknown loss type 'L1'"),
    case('ENLCN', {'train.pixel_opt.reduction': 'median'}, 'train.pixel_opt: Unsupported reduction mode: median'),
    case('ENLCN', {'train.pixel_opt.weight': 1},
         "train.pixel_opt: L1Loss.__init__() got an unexpected keyword argument 'weight'"),
    case('ENLCN', {'train.perceptual_opt': {
        'type': 'VGGLoss'
    }}, "train.perceptual_opt.type: unknown loss type 'VGGLoss'"),
    # val, datasets, paths, name
    case('ENLCN', {'val.tile': {
        'mode': 'quad'
    }}, "val.tile.mode: must be one of ['chop', 'tile'], got 'quad'"),
    case('ENLCN', {'val.metrics.psnr.type': 'psnr'}, "val.metrics.psnr.type: unknown metric type 'psnr'"),
    case('ENLCN', {'datasets.train.type': 'PairedDataset'},
         "datasets.train.type: unknown dataset type 'PairedDataset'"),
    case('ENLCN', {'datasets.train.dataroot_gt': 'datasets/none.lmdb'},
         "datasets.train.dataroot_gt: folder 'datasets/none.lmdb' does not exist"),
    case('ENLCN', {'datasets.val.dataroot_lq': 'datasets/none'},
         "datasets.val.dataroot_lq: folder 'datasets/none' does not exist"),
    case('ENLCN', {'path.pretrain_network_g': 'none.pth'}, "path.pretrain_network_g: checkpoint 'none.pth' does not"),
    case('ENLCN', {'path.resume_state': 'none.state'}, "path.resume_state: training state 'none.state' does not"),
    case('ENLCN', {'name': ''}, 'name: every option file needs a name'),
    # basicsr test: the keys of inference
    case('test', {'val.tile': {
        'size': 0
    }}, 'val.tile.size: must be an int >= 1 (LR pixels), got 0', 'test'),
    case('test', {'val.tile': {
        'size': 8,
        'overlap': -1
    }}, 'val.tile.overlap: must be an int >= 0', 'test'),
    case('test', {'val.tile': {
        'mode': 'chop',
        'shave': -1
    }}, 'val.tile.shave: must be an int >= 0, got -1', 'test'),
    case('test', {'val.tile': {
        'mode': 'chop',
        'min_size': 0
    }}, 'val.tile.min_size: must be an int >= 1', 'test'),
    case('test', {'val.tile': {
        'size': 8,
        'stride': 4
    }}, "val.tile: unknown key(s) ['stride'] for mode 'tile'", 'test'),
    case('test', {'val.tile': 'chop'}, "val.tile: must be a mapping like {size: 64, overlap: 16}", 'test'),
    case('test', {'val.self_ensemble': 'yes'}, "val.self_ensemble: must be true or false, got 'yes'", 'test'),
    case('test', {'val.compare_to_paper': 'EDSR'}, 'val.compare_to_paper: must be one of', 'test'),
    case('test', {'network_g.amplification': -1}, 'network_g.amplification: must be > 0, got -1', 'test'),
    case('test', {'network_g.upscale': 0}, 'network_g.upscale: must be 2, 3 or a power of 2, got 0', 'test'),
    case('test', {'datasets.test_1.dataroot_gt': 'datasets/none'},
         "datasets.test_1.dataroot_gt: folder 'datasets/none' does not exist", 'test'),
    case('test', {'path.pretrain_network_g': 'none.pth'}, "path.pretrain_network_g: checkpoint 'none.pth'", 'test'),
]


def snapshot(root) -> Dict[str, int]:
    """Every path under ``root`` (the folder itself as '.') with its modification time in ns."""
    state = {'.': os.stat(root).st_mtime_ns}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = osp.join(folder, name)
            state[osp.relpath(path, root)] = os.lstat(path).st_mtime_ns
    return state


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """Stand-ins for the demo's folders (LMDBs with the same keys), and an earlier experiment and results folder."""
    root = tmp_path_factory.mktemp('preflight_work')
    for lmdb in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        (root / 'datasets' / 'demo' / 'train' / lmdb).mkdir(parents=True)
        (root / 'datasets' / 'demo' / 'train' / lmdb / 'meta_info.txt').write_text('0001.png (96,96,3) 1\n')
    for folder in ('HR', 'LR_bicubic/X4'):
        (root / 'datasets' / 'demo' / 'val' / folder).mkdir(parents=True)
    for phase in ('experiments', 'results'):
        (root / phase / NAME).mkdir(parents=True)
        (root / phase / NAME / 'net_g_1000.pth').write_text('precious')
    return root


@pytest.mark.parametrize('command, changes, expected', SWEEP)
def test_one_bad_value_stops_the_run_with_one_line_before_anything_is_written(workdir, tmp_path, monkeypatch, capsys,
                                                                              command, changes, expected):
    base = train_option() if command == 'train' else basicsr_test_option()
    option_file = write_option(changed(base, changes), str(tmp_path))
    monkeypatch.chdir(workdir)
    before = snapshot(workdir)
    try:
        status = main([command, '-opt', option_file])
    except SystemExit as stop:  # argparse's way; the pipelines return
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.splitlines() == [err.rstrip('\n')] and err.endswith('\n'), err  # exactly one line
    assert err.startswith(f'basicsr {command}: error: {expected}'), err
    assert 'Traceback' not in err
    assert snapshot(workdir) == before  # nothing made, renamed or archived; the old folders untouched


def test_the_sweep_covers_forty_keys():
    keys = {key for param in SWEEP for key in param.values[1] if key not in BASES[param.id.split(':')[1]]}
    assert len(keys) >= 40, sorted(keys)


@pytest.mark.parametrize('base', sorted(BASES))
def test_each_base_of_the_sweep_passes(workdir, monkeypatch, base):
    """So each case of the sweep fails on its one change."""
    monkeypatch.chdir(workdir)
    opt = changed(basicsr_test_option() if base == 'test' else train_option(), BASES[base])
    check_options({**opt, 'is_train': base != 'test'})


def test_the_module_entry_point_stops_the_same_way(workdir, tmp_path):
    """``python -m basicsr_nlattn.test`` (torchrun's entry point), a real process: one line, nothing touched."""
    option_file = write_option(changed(basicsr_test_option(), {'val.tile': {'mode': 'quad'}}), str(tmp_path))
    before = snapshot(workdir)
    result = subprocess.run([sys.executable, '-m', 'basicsr_nlattn.test', '-opt', option_file],
                            cwd=str(workdir),
                            env=subprocess_env(),
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr == ("basicsr test: error: val.tile.mode: must be one of ['chop', 'tile'], got 'quad'\n")
    assert snapshot(workdir) == before


def test_a_full_size_network_is_built_on_the_meta_device():
    net = build_network_on_meta({'network_g': {'type': 'ENLCN'}}, 'network_g')  # 256 features, 32 blocks
    tensors = list(net.parameters()) + list(net.buffers())
    assert tensors and all(tensor.is_meta for tensor in tensors)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(43.58e6, abs=0.005e6)  # the paper's x4 count


def test_a_network_without_meta_kernels_is_built_on_the_cpu_and_draws_nothing_from_the_global_generator():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    meta = build_network_on_meta({'network_g': ENLCN}, 'network_g')
    cpu = build_network_on_meta({'network_g': SWINIR}, 'network_g')
    assert all(p.is_meta for p in meta.parameters())
    assert all(p.device.type == 'cpu' for p in cpu.parameters())
    assert torch.equal(torch.get_rng_state(), state)  # the run's initialisation is the one without the check


def test_the_checks_leave_basicsrs_logger_to_the_pipeline(workdir, monkeypatch):
    """BasicSR's root logger gets its log file on its first call: the check must not be that call."""
    monkeypatch.chdir(workdir)
    monkeypatch.delitem(initialized_logger, 'basicsr', raising=False)
    check_options({**changed(train_option(), BASES['PCL']), 'is_train': True})
    assert 'basicsr' not in initialized_logger


OPTION_FILES = sorted(glob.glob(osp.join(REPO_ROOT, 'options', '**', '*.yml'), recursive=True))


@pytest.mark.parametrize('option_file', OPTION_FILES, ids=lambda path: osp.relpath(path, REPO_ROOT))
def test_every_shipped_option_file_passes_with_its_networks_on_the_meta_device(monkeypatch, option_file):
    opt = load_option_file(option_file)
    opt['is_train'] = osp.basename(option_file).startswith('train')
    monkeypatch.setattr(option_check, '_check_paths', lambda opt: None)  # their datasets are not on this machine
    built = []
    build = option_check.build_network_on_meta
    monkeypatch.setattr(option_check, 'build_network_on_meta',
                        lambda opt, key: built.append(build(opt, key)) or built[-1])
    check_options(opt)
    assert len(built) == 1 + (opt['is_train'] and 'network_d' in opt)
    if 'SwinIR' not in option_file:
        assert all(p.is_meta for net in built for p in net.parameters())


@pytest.mark.parametrize('changes, match', [
    ({
        'scale': DELETE
    }, r'^scale: must be an int >= 1 \(the upscaling factor\), got None$'),
    ({
        'network_g.amplification': 0
    }, r'^network_g.amplification: must be > 0, got 0$'),
    ({
        'val': {
            'tile': {
                'size': 0
            }
        }
    }, r'^val.tile.size: must be an int >= 1'),
])
def test_inference_options_are_the_same_checks(changes, match):
    opt = changed({'scale': 4, 'network_g': ENLCN}, changes)
    with pytest.raises(OptionError, match=match):
        check_inference_options(opt)
