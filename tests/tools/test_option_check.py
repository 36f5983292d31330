"""The pre-flight check (tools/option_check.py): one bad value per documented option key stops ``basicsr train`` or
``basicsr test`` with one line that starts with the key, before any folder is made, archived or renamed.

The sweep runs the command in-process (``basicsr_nlattn.cli.main``, what the console script and ``python -m
basicsr_nlattn.train|test`` call); one real ``python -m basicsr_nlattn.test`` run here and ``basicsr train`` in
``tests/test_cli.py`` show the real commands behave the same. The data folders are stand-ins: the check reads the
folders and the LMDB keys, never the images.
"""
import copy
import glob
import hashlib
import os
import subprocess
import sys
from os import path as osp
from typing import Any, Dict, Tuple

import pytest
import torch
from basicsr.utils.logger import initialized_logger
from helpers.options import tiny_demo_option, write_option
from helpers.runs import REPO_ROOT, basicsr_command, subprocess_env

from basicsr_nlattn.cli import main
from basicsr_nlattn.tools import network_scale, option_check
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
RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 8}
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
    'SRModel': {  # BasicSR's own models: their keys are checked by the parsers of models/sr_options.py
        'model_type': 'SRModel',
        'network_g': EDSR,
        'train.contrastive_opt': DELETE
    },
    'ESRGAN': {
        'model_type': 'ESRGANModel',
        'network_g': RRDB,
        'network_d': {
            'type': 'VGGStyleDiscriminator',
            'num_in_ch': 3,
            'num_feat': 8
        },
        'datasets.train.gt_size': 128,  # the discriminator's input size
        'train.contrastive_opt': DELETE,
        'train.gan_opt': {
            'type': 'GANLoss',
            'gan_type': 'vanilla',
            'loss_weight': 0.005
        },
        'train.optim_d': {
            'type': 'Adam',
            'lr': 1e-4
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
    }, 'CCAContrastiveLoss']}, "train.contrastive_opt[1]: must be a mapping with the type of a loss and its arguments"),
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
    # BasicSR's own keys: the logger and the loop (training/run_options.py)
    case('ENLCN', {'logger.save_checkpoint_freq': 0}, 'logger.save_checkpoint_freq: must be an int >= 1, got 0'),
    case('ENLCN', {'logger.save_checkpoint_freq': 2.5}, 'logger.save_checkpoint_freq: must be an int >= 1, got 2.5'),
    case('ENLCN', {'logger.print_freq': 0}, 'logger.print_freq: must be an int >= 1, got 0'),
    case('ENLCN', {'logger.use_tb_logger': 'yes'}, "logger.use_tb_logger: must be true or false, got 'yes'"),
    case('ENLCN', {'logger.use_tb_logger': DELETE}, 'logger.use_tb_logger: must be true or false, got None'),
    case(
        'ENLCN', {'logger.wandb': {
            'project': 'sr'
        }}, "logger.wandb.project: 'sr' needs logger.use_tb_logger: true (wandb syncs the tensorboard log), got "
        'use_tb_logger False'),
    case('ENLCN', {'logger': 'none'}, "logger: must be a mapping, got 'none'"),
    case('ENLCN', {'train.total_iter': 0}, 'train.total_iter: must be an int >= 1, got 0'),
    case('ENLCN', {'train.warmup_iter': -2}, 'train.warmup_iter: must be an int >= -1 (-1: no warm-up), got -2'),
    case('ENLCN', {'val.val_freq': 0}, 'val.val_freq: must be an int >= 1, got 0'),
    # validation (models/sr_options.py)
    case('ENLCN', {'val.save_img': 'no'}, "val.save_img: must be true or false, got 'no'"),
    case('ENLCN', {'val.metrics': ['psnr']}, "val.metrics: must be a mapping, got ['psnr']"),
    case('ENLCN', {'val.metrics.psnr.crop_border': DELETE},
         'val.metrics.psnr.crop_border: required by calculate_psnr, got nothing'),
    case('ENLCN', {'val.metrics.psnr.better': 'more'},
         "val.metrics.psnr.better: must be one of ['higher', 'lower'], got 'more'"),
    case('test', {'val.save_img': True}, 'val.suffix: needed when basicsr test saves images', 'test'),
    case('test', {'val': DELETE}, 'val: must be a mapping, got None', 'test'),
    # optimizers and schedulers (models/optimizer_options.py), for every model class
    case('ENLCN', {'train.optim_g.type': 'Adamm'},
         "train.optim_g.type: must be one of ['Adam'] (BasicSR's get_optimizer), got 'Adamm'; did you mean 'Adam'?"),
    case('ENLCN', {'train.optim_g.lr': 'abc'}, "train.optim_g.lr: must be a number >= 0, got 'abc'"),
    case('ENLCN', {'train.optim_g.lr': '2e-4'},
         "train.optim_g.lr: must be a number >= 0, got '2e-4' (YAML reads 2e-4 as a string: write !!float 2e-4)"),
    case('ENLCN', {'train.optim_g.lr': DELETE}, 'train.optim_g.lr: must be a number >= 0, got None'),
    case(
        'ENLCN', {'train.optim_g.betas': [2, 0.99]},
        "train.optim_g: torch.optim.Adam refuses {'lr': 0.0005, 'weight_decay': 0, 'betas': [2, 0.99]}: Invalid "
        'beta parameter at index 0: 2'),
    case('ENLCN', {'train.optim_g.beta': 0.9}, "train.optim_g: unknown key(s) ['beta'] of torch.optim.Adam"),
    case('ENLCN', {'train.optim_g': DELETE},
         'train.optim_g: must be a mapping with the type of an optimizer and its arguments, got None'),
    case(
        'ENLCN', {'train.scheduler.type': 'StepLRR'},
        "train.scheduler.type: must be one of ['MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR'] "
        "(BasicSR's setup_schedulers), got 'StepLRR'"),
    case('ENLCN', {'train.scheduler.milestones': ['abc']},
         "train.scheduler.milestones: must be a non-empty list of ints >= 1 in increasing order, got ['abc']"),
    case('ENLCN', {'train.scheduler.milestones': [800, 600]},
         'train.scheduler.milestones: must be a non-empty list of ints >= 1 in increasing order, got [800, 600]'),
    case('ENLCN', {'train.scheduler.gamma': 0}, 'train.scheduler.gamma: must be a number > 0, got 0'),
    case('ENLCN', {'train.scheduler.restarts': [0, 50]},
         'train.scheduler.restart_weights: must be a list of 2 numbers (one per entry of restarts), got [1]'),
    case('ENLCN', {'train.scheduler.step_size': 10},
         "train.scheduler: unknown key(s) ['step_size'] of MultiStepRestartLR"),
    case('ENLCN',
         {'train.scheduler': {
             'type': 'CosineAnnealingRestartLR',
             'periods': [10, 10],
             'restart_weights': [1]
         }}, 'train.scheduler.restart_weights: must be a list of 2 numbers (one per entry of periods), got [1]'),
    case('ENLCN', {'train.ema_decay': 1}, 'train.ema_decay: must be a number in [0, 1), got 1'),
    case(
        'ENLCN', {'train.pixel_opt': DELETE},
        'train.pixel_opt: ContrastiveSRModel needs a pixel or a perceptual loss (train.pixel_opt or '
        'train.perceptual_opt), got neither'),
    case('ENLCN', {'train.scheduler': {
        'type': 'CosineAnnealingRestartLR',
        'periods': [10],
        'eta_min': -1e-7
    }}, 'train.scheduler.eta_min: must be a number >= 0, got -1e-07'),
    case('PCL', {'train.freeze_d': 'yes'}, "train.freeze_d: must be true or false, got 'yes'"),
    case('PCL', {'train.discriminator_samples': 1}, 'train.discriminator_samples: must be true or false, got 1'),
    case('ENLCN', {'val.pbar': 1}, 'val.pbar: must be true or false, got 1'),
    case('test', {'val.suffix': 3}, 'val.suffix: must be a string or null, got 3', 'test'),
    case('test', {'datasets.train': {
        'name': 'x',
        'type': 'SingleImageDataset'
    }}, "datasets.train: must be named 'test*' or 'val*' (the phase the pipeline reads), got 'train'", 'test'),
    # BasicSR's SRModel and ESRGANModel, read by their parsers along the MRO
    case('SRModel', {'train.pixel_opt': DELETE}, 'train.pixel_opt: SRModel needs a pixel or a perceptual loss'),
    case('SRModel', {'train.optim_g.type': 'SGD'}, "train.optim_g.type: must be one of ['Adam']"),
    case('SRModel', {'train.ema_decay': -0.1}, 'train.ema_decay: must be a number in [0, 1), got -0.1'),
    case('SRModel', {
        'network_g.upscale': DELETE,
        'scale': 2
    }, 'network_g.upscale: must equal scale (2), got 4 (the default of EDSR)'),
    case('ESRGAN', {'train.gan_opt': DELETE}, 'train.gan_opt: ESRGANModel needs its GAN loss'),
    case('ESRGAN', {'train.gan_opt.gan_type': 'hinge2'}, 'train.gan_opt: GAN type hinge2 is not implemented.'),
    case('ESRGAN', {'network_d': DELETE}, 'network_d: ESRGANModel needs a discriminator'),
    case('ESRGAN', {'train.net_d_iters': 0}, 'train.net_d_iters: must be an int >= 1, got 0'),
    case('ESRGAN', {'train.net_d_init_iters': -1}, 'train.net_d_init_iters: must be an int >= 0, got -1'),
    case('ESRGAN', {'train.optim_d.type': 'Adamm'}, "train.optim_d.type: must be one of ['Adam']"),
    case('ESRGAN', {'train.ldl_opt': {
        'type': 'L1Loss',
        'reduction': 'median'
    }}, 'train.ldl_opt: Unsupported reduction mode: median'),
    case('ESRGAN', {'network_g.scale': 2}, 'network_g.scale: must equal scale (4), got 2 (given)'),
    case('PCL', {'train.net_d_iters': 0}, 'train.net_d_iters: must be an int >= 1, got 0'),
    case('PCL', {'train.optim_d.lr': '1e-4'}, "train.optim_d.lr: must be a number >= 0, got '1e-4' (YAML reads"),
    # scale against network_g's upscale: its argument, or a meta-device forward
    case('ENLCN', {'network_g.upscale': 2}, 'network_g.upscale: must equal scale (4), got 2 (given)'),
    case('WithAttention', {'scale': 2}, 'network_g.base.upscale: must equal scale (2), got 4 (given)'),
    case('ENLCN', {'scale': 0}, 'scale: must be an int >= 1 (the upscaling factor), got 0'),
    case('test', {'network_g.upscale': 2}, 'network_g.upscale: must equal scale (4), got 2', 'test'),
    # datasets (data/dataset_options.py)
    case('ENLCN', {'datasets.train.batch_size_per_gpu': 0}, 'datasets.train.batch_size_per_gpu: must be an int >= 1'),
    case('ENLCN', {'datasets.train.num_worker_per_gpu': -1},
         'datasets.train.num_worker_per_gpu: must be an int >= 0, got -1'),
    case('ENLCN', {'datasets.train.dataset_enlarge_ratio': 0},
         'datasets.train.dataset_enlarge_ratio: must be an int >= 1, got 0'),
    case('ENLCN', {'datasets.train.gt_size': 7},
         'datasets.train.gt_size: must be a multiple of scale (4): the LR patch is gt_size / scale pixels, got 7'),
    case('ENLCN', {'datasets.train.gt_size': DELETE},
         'datasets.train.gt_size: must be an int >= 1 (HR patch pixels), got None'),
    case('ENLCN', {'datasets.train.prefetch_mode': 'gpu'},
         "datasets.train.prefetch_mode: must be one of [None, 'cpu', 'cuda'], got 'gpu'"),
    case('ENLCN', {'datasets.train.prefetch_mode': 'cuda'},
         "datasets.train.pin_memory: must be true with prefetch_mode 'cuda'"),
    case('ENLCN', {'datasets.train.use_rot': 'yes'}, "datasets.train.use_rot: must be true or false, got 'yes'"),
    case(
        'ENLCN', {'datasets.train.io_backend.type': 'disc'},
        "datasets.train.io_backend.type: must be one of ['disk', 'memcached', 'lmdb'], got 'disc'; did you mean "
        "'disk'?"),
    case('ENLCN', {'datasets.train': DELETE}, 'datasets.train: basicsr train needs a training set'),
    case('ENLCN', {'datasets.test_1': {
        'name': 'x',
        'type': 'SingleImageDataset'
    }}, "datasets.test_1: must be named 'train' or 'val*' (the phase the pipeline reads), got 'test_1'"),
    # the checkpoints named in path (utils/checkpoint_files.py: read without loading the tensors)
    case(
        'ENLCN', {'path.pretrain_network_g': 'checkpoints/notes.pth'},
        "path.pretrain_network_g: 'checkpoints/notes.pth' cannot be read: not a PyTorch checkpoint (neither a zip "
        "archive nor a torch pickle; it begins with b'net_g: from '"),
    case('ENLCN', {'path.pretrain_network_g': 'checkpoints/truncated.pth'},
         "path.pretrain_network_g: 'checkpoints/truncated.pth' cannot be read: truncated, a zip archive cut short"),
    case('ENLCN', {'path.pretrain_network_g': 'checkpoints/empty.pth'},
         "path.pretrain_network_g: 'checkpoints/empty.pth' cannot be read: empty (0 bytes)"),
    case('ENLCN', {'path.resume_state': 'checkpoints/truncated.pth'},
         "path.resume_state: 'checkpoints/truncated.pth' cannot be read: truncated, a zip archive cut short"),
    case(
        'ENLCN', {
            'path.pretrain_network_g': 'checkpoints/weights.pth',
            'path.param_key_g': 'params_ema'
        },
        "path.param_key_g: 'checkpoints/weights.pth' has no entry 'params_ema' (nor 'params'); its entries that hold "
        "weights: weights, got 'params_ema'"),
    case('ENLCN', {
        'path.pretrain_network_g': 'checkpoints/whole.pth',
        'path.strict_load_g': 'yes'
    }, "path.strict_load_g: must be true or false, got 'yes'"),
    case('test', {'path.pretrain_network_g': 'checkpoints/truncated.pth'},
         "path.pretrain_network_g: 'checkpoints/truncated.pth' cannot be read: truncated", 'test'),
    # what BasicSR's parse_options reads before the pre-flight check (checked on the option file first)
    case('ENLCN', {'manual_seed': -1},
         'manual_seed: must be an int in [0, 4294967295] (or absent: a random seed), got -1'),
    case('ENLCN', {'manual_seed': 2**32}, 'manual_seed: must be an int in [0, 4294967295]'),
    case('ENLCN', {'manual_seed': 'abc'}, "manual_seed: must be an int in [0, 4294967295] (or absent: a random "
         "seed), got 'abc'"),
    case('ENLCN', {'dist_params.backend': 'tcp'}, "dist_params.backend: must be one of ['nccl', 'gloo', 'mpi'], got "
         "'tcp'"),
    case('ENLCN', {'dist_params.port': 0}, 'dist_params.port: must be an int in [1, 65535], got 0'),
    case('ENLCN', {'dist_params.host': 'node1'}, "dist_params: unknown key(s) ['host']; allowed: ['backend', 'port']"),
    case('ENLCN', {'num_gpu': -1}, "num_gpu: must be an int >= 0 (or 'auto': every visible GPU), got -1"),
    case('ENLCN', {'path': DELETE}, 'path: must be a mapping like {pretrain_network_g: ~}, got None'),
    case('test', {'manual_seed': -1}, 'manual_seed: must be an int in [0, 4294967295]', 'test'),
]


def snapshot(root) -> Dict[str, Tuple[int, str]]:
    """Every path under ``root`` (the folder itself as '.') with its modification time in ns and, for a file, the
    digest of its bytes."""
    state = {'.': (os.stat(root).st_mtime_ns, '')}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = osp.join(folder, name)
            digest = hashlib.sha256(open(path, 'rb').read()).hexdigest() if name in files else ''
            state[osp.relpath(path, root)] = (os.lstat(path).st_mtime_ns, digest)
    return state


def write_bad_checkpoints(folder) -> None:
    """A text file, an empty file, a zip checkpoint cut in half (a killed write or copy) and a checkpoint whose
    only entry is ``weights``."""
    folder.mkdir()
    (folder / 'notes.pth').write_text('net_g: from the paper\n')
    (folder / 'empty.pth').write_bytes(b'')
    torch.save({'params': {'weight': torch.zeros(64)}}, folder / 'whole.pth')
    whole = (folder / 'whole.pth').read_bytes()
    (folder / 'truncated.pth').write_bytes(whole[:len(whole) // 2])
    torch.save({'weights': {'weight': torch.zeros(4)}}, folder / 'weights.pth')


def make_workdir(root):
    """Stand-ins for the demo's folders (LMDBs with the same keys), bad checkpoints, and an earlier experiment and
    results folder, in ``root``."""
    for lmdb in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        (root / 'datasets' / 'demo' / 'train' / lmdb).mkdir(parents=True)
        (root / 'datasets' / 'demo' / 'train' / lmdb / 'meta_info.txt').write_text('0001.png (96,96,3) 1\n')
    for folder in ('HR', 'LR_bicubic/X4'):
        (root / 'datasets' / 'demo' / 'val' / folder).mkdir(parents=True)
    for phase in ('experiments', 'results'):
        (root / phase / NAME).mkdir(parents=True)
        (root / phase / NAME / 'net_g_1000.pth').write_text('precious')
    write_bad_checkpoints(root / 'checkpoints')
    return root


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp('preflight_work'))


def run_in_process(workdir, monkeypatch, capsys, command: str, option_file: str, expected: str) -> None:
    """``basicsr <command> -opt <option_file>`` in ``workdir``: status 2, one line that starts with ``expected``,
    no traceback, nothing under ``workdir`` made, changed, renamed or archived."""
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


@pytest.mark.parametrize('command, changes, expected', SWEEP)
def test_one_bad_value_stops_the_run_with_one_line_before_anything_is_written(workdir, tmp_path, monkeypatch, capsys,
                                                                              command, changes, expected):
    base = train_option() if command == 'train' else basicsr_test_option()
    option_file = write_option(changed(base, changes), str(tmp_path))
    run_in_process(workdir, monkeypatch, capsys, command, option_file, expected)


@pytest.mark.parametrize('changes, missing, expected', [
    ({
        'logger.use_tb_logger': True,
        'logger.wandb': {
            'project': 'sr'
        }
    }, 'wandb', "logger.wandb.project: 'sr' needs the wandb package (pip install wandb), which is not installed"),
    ({
        'logger.use_tb_logger': True
    }, 'tensorboard', 'logger.use_tb_logger: true needs the tensorboard package (pip install tensorboard)'),
])
def test_a_logger_whose_package_is_missing_stops_the_run(workdir, tmp_path, monkeypatch, capsys, changes, missing,
                                                         expected):
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed: importing it raises
    option_file = write_option(changed(train_option(), changes), str(tmp_path))
    run_in_process(workdir, monkeypatch, capsys, 'train', option_file, expected)


def test_a_yaml_syntax_error_is_one_line_with_its_place(workdir, tmp_path, monkeypatch, capsys):
    option_file = tmp_path / 'broken.yml'
    option_file.write_text('name: sweep\ntrain:\n  optim_g: {type: Adam, lr: 1e-4\nval: {}\n')
    run_in_process(
        workdir, monkeypatch, capsys, 'train', str(option_file),
        f"-opt: '{option_file}' line 4, column 4: did not find expected ',' or '}}' (while parsing a flow "
        'mapping)\n')


def test_the_sweep_covers_a_hundred_keys():
    keys = {key for param in SWEEP for key in param.values[1] if key not in BASES[param.id.split(':')[1]]}
    assert len(keys) >= 100, sorted(keys)


@pytest.mark.parametrize('base', sorted(BASES))
def test_each_base_of_the_sweep_passes(workdir, monkeypatch, base):
    """So each case of the sweep fails on its one change."""
    monkeypatch.chdir(workdir)
    opt = changed(basicsr_test_option() if base == 'test' else train_option(), BASES[base])
    check_options({**opt, 'is_train': base != 'test'})


def test_a_name_basicsr_finds_by_its_suffix_passes(workdir, monkeypatch):
    """BasicSR registers its U-Net discriminator as ``UNetDiscriminatorSN_basicsr`` and ``Registry.get`` finds it as
    ``UNetDiscriminatorSN``: the check accepts what BasicSR builds."""
    monkeypatch.chdir(workdir)
    opt = changed(train_option(), {**BASES['ESRGAN'], 'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3}})
    check_options({**opt, 'is_train': True})
    with pytest.raises(OptionError, match="network_d.type: unknown arch type 'UNetDiscriminatorS'"):
        check_options({**changed(opt, {'network_d.type': 'UNetDiscriminatorS'}), 'is_train': True})


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


REAL_RUNS = [  # (changes, the key the one line starts with); None: a YAML syntax error
    ({
        'logger.save_checkpoint_freq': 0
    }, 'logger.save_checkpoint_freq: must be an int >= 1, got 0'),
    ({
        'train.optim_g.type': 'Adamm'
    }, "train.optim_g.type: must be one of ['Adam']"),
    ({
        'path.pretrain_network_g': 'checkpoints/truncated.pth'
    }, "path.pretrain_network_g: 'checkpoints/truncated.pth' cannot be read: truncated"),
    ({
        'manual_seed': -1
    }, 'manual_seed: must be an int in [0, 4294967295]'),
    (None, "-opt: 'option.yml' line 4, column 4: did not find expected ',' or '}'"),
]


def test_the_real_basicsr_train_stops_the_same_way(tmp_path):
    """Real ``basicsr train`` processes, started together: exit status 2, one line on stderr, no traceback; the
    working folder (an earlier experiment of the same name, the data) byte for byte as it was, nothing new in it."""
    runs = []
    for number, (changes, expected) in enumerate(REAL_RUNS):
        folder = make_workdir(tmp_path / f'run{number}')
        if changes is None:
            (folder / 'option.yml').write_text(f'name: {NAME}\ntrain:\n  optim_g: {{type: Adam, lr: 1e-4\nval: {{}}\n')
            option_file = 'option.yml'
        else:
            option_file = write_option(changed(train_option(), changes), str(tmp_path), f'option{number}.yml')
        before = snapshot(folder)
        process = subprocess.Popen(
            basicsr_command() + ['train', '-opt', option_file],
            cwd=str(folder),
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True)
        runs.append((process, folder, before, expected))
    for process, folder, before, expected in runs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, err
        assert len(err.splitlines()) == 1 and err.startswith(f'basicsr train: error: {expected}'), err
        assert 'Traceback' not in err
        assert snapshot(folder) == before  # no _archived_ folder, no tb_logger, the old experiment untouched


def test_a_network_without_an_upscale_argument_is_measured_by_a_meta_forward():
    with torch.device('meta'):
        shuffle = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    assert network_scale._forward_upscale(shuffle, {}) == 2
    cpu = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    assert network_scale._forward_upscale(cpu, {}) is None  # built on the CPU: not run
    nlsa = build_network_on_meta({'network_g': WITH_ATTENTION}, 'network_g')
    assert network_scale._forward_upscale(nlsa, WITH_ATTENTION) is None  # NLSA's forward cannot run on meta: skipped


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
