"""Every option key a model reads is read by the pre-flight check too: the models are built for real (BasicSR's own
``init_training_settings``, ``setup_optimizers`` and ``setup_schedulers`` for SRModel and ESRGANModel; ours for
ContrastiveSRModel and PCLModel) with options that record each key asked for, and so is the pre-flight check
(``check_options``). A key the model reads under ``train``, ``val``, ``logger``, ``datasets`` or ``path`` that the
check never looks at fails the test, named.
"""
import copy
from typing import Any, Dict, Set

import pytest
import torch
from basicsr.models.base_model import BaseModel
from basicsr.models.esrgan_model import ESRGANModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import MessageLogger
from basicsr.utils.registry import MODEL_REGISTRY
from helpers.options import tiny_demo_option
from helpers.recording_options import RecordingOptions, plain

from basicsr_nlattn.models.contrastive_sr_model import ContrastiveSRModel, parse_contrastive_training
from basicsr_nlattn.models.pcl_model import PCLModel, parse_pcl_training
from basicsr_nlattn.models.sr_options import parse_sr_training, parse_srgan_training
from basicsr_nlattn.models.training_options import training_parser
from basicsr_nlattn.tools.option_check import check_options

SECTIONS = ('train', 'val', 'logger', 'datasets', 'path')
EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4}
RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 8}
ADAM = {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.99]}
MODELS = {
    'SRModel': {
        'model_type': 'SRModel',
        'network_g': EDSR,
        'train': {
            'ema_decay': 0.999,
            'contrastive_opt': None
        }
    },
    'ESRGANModel': {
        'model_type': 'ESRGANModel',
        'network_g': RRDB,
        'network_d': {
            'type': 'VGGStyleDiscriminator',
            'num_in_ch': 3,
            'num_feat': 8
        },
        'train': {
            'contrastive_opt': None,
            'ldl_opt': {
                'type': 'L1Loss',
                'loss_weight': 1.0
            },
            'gan_opt': {
                'type': 'GANLoss',
                'gan_type': 'vanilla',
                'loss_weight': 0.005
            },
            'optim_d': ADAM,
            'net_d_iters': 1,
            'net_d_init_iters': 0
        }
    },
    'ContrastiveSRModel': {
        'model_type': 'ContrastiveSRModel',
        'train': {
            'ema_decay': 0.999,
            'grad_clip': 1.0,
            'nonfinite': {
                'action': 'skip'
            }
        },
        'val': {
            'tile': {
                'size': 16,
                'overlap': 4
            }
        }
    },
    'PCLModel': {
        'model_type': 'PCLModel',
        'network_g': EDSR,
        'network_d': {
            'type': 'HaarDiscriminator',
            'num_feat': 8,
            'num_stages': 2
        },
        'train': {
            'contrastive_opt': None,
            'optim_d': ADAM,
            'pcl_opt': {
                'num_pos': 2,
                'num_neg': 2,
                'layers': [0, 1]
            }
        }
    },
}


def merged(base: Dict[str, Any], changes: Dict[str, Any]) -> Dict[str, Any]:
    """``base`` with ``changes``: a section's keys merged into it, a network replaced, a None value removed."""
    opt = copy.deepcopy(base)
    for key, value in changes.items():
        if key in SECTIONS:
            opt[key] = {**opt.get(key, {}), **copy.deepcopy(value)}
            opt[key] = {name: item for name, item in opt[key].items() if item is not None}
        elif value is None:
            opt.pop(key, None)
        else:
            opt[key] = copy.deepcopy(value)
    return opt


def training_options(model: str) -> Dict[str, Any]:
    """The tiny demo option for ``model``, as BasicSR's parse_options leaves it on one CPU process."""
    opt = merged(tiny_demo_option('reads'), MODELS[model])
    opt['train']['scheduler'] = {'type': 'MultiStepLR', 'milestones': [100, 200], 'gamma': 0.5}
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False, num_gpu=0)
    for phase, dataset_opt in opt['datasets'].items():
        dataset_opt.update(phase=phase.split('_')[0], scale=opt['scale'])
    return opt


@pytest.fixture(scope='module')
def data_folders(tmp_path_factory):
    """Stand-ins for the demo's data folders (the check reads folders and LMDB keys, never images)."""
    root = tmp_path_factory.mktemp('reads')
    for lmdb in ('HR.lmdb', 'LR_bicubic_X4.lmdb'):
        (root / 'datasets' / 'demo' / 'train' / lmdb).mkdir(parents=True)
        (root / 'datasets' / 'demo' / 'train' / lmdb / 'meta_info.txt').write_text('0001.png (96,96,3) 1\n')
    for folder in ('HR', 'LR_bicubic/X4'):
        (root / 'datasets' / 'demo' / 'val' / folder).mkdir(parents=True)
    return root


def keys_read_by_the_model(opt: Dict[str, Any]) -> Set[str]:
    """The keys read by building the model on the CPU (training mode) and BasicSR's message logger of the loop."""
    recording = RecordingOptions(opt)
    torch.manual_seed(0)
    MODEL_REGISTRY.get(opt['model_type'])(recording)
    MessageLogger(recording, 1)
    return recording.reads


def keys_read_by_the_check(opt: Dict[str, Any]) -> Set[str]:
    recording = RecordingOptions(opt)
    check_options(recording)
    assert plain(recording) == opt  # the check reads copies: BasicSR pops 'type' out of optim_g and scheduler
    return recording.reads


@pytest.mark.parametrize('model', sorted(MODELS))
def test_the_pre_flight_check_reads_every_key_the_model_reads(data_folders, monkeypatch, model):
    monkeypatch.chdir(data_folders)
    opt = training_options(model)
    model_reads = {key for key in keys_read_by_the_model(opt) if key.split('.')[0] in SECTIONS}
    check_reads = keys_read_by_the_check(opt)
    unchecked = sorted(model_reads - check_reads)
    assert not unchecked, f'{model} reads keys that the pre-flight check never looks at: {unchecked}'
    expected = {
        'train.optim_g.type', 'train.optim_g.lr', 'train.optim_g.betas', 'train.scheduler.milestones',
        'train.scheduler.gamma', 'train.pixel_opt.type', 'train.ema_decay', 'logger.print_freq', 'train.total_iter',
        'path.pretrain_network_g'
    }
    expected |= {
        'ESRGANModel': {'train.gan_opt.gan_type', 'train.optim_d.lr', 'train.net_d_iters', 'train.ldl_opt.type'},
        'PCLModel': {'train.pcl_opt.num_pos', 'train.optim_d.lr', 'path.pretrain_network_d', 'val.tile'},
        'ContrastiveSRModel': {'train.contrastive_opt.n1', 'train.grad_clip', 'train.nonfinite', 'val.tile.size'},
        'SRModel': {'train.perceptual_opt'},
    }[model]
    assert expected <= model_reads, sorted(expected - model_reads)  # the listing is the model's real reading


def test_a_subclass_is_read_by_the_parser_of_the_nearest_class_that_has_one():

    class MySRModel(SRModel):  # a user's model, not registered
        pass

    class MyContrastiveModel(ContrastiveSRModel):
        pass

    assert training_parser(MySRModel) is parse_sr_training
    assert training_parser(ESRGANModel) is parse_srgan_training
    assert training_parser(MyContrastiveModel) is parse_contrastive_training
    assert training_parser(PCLModel) is parse_pcl_training
    assert training_parser(BaseModel) is None  # another family: only the options every model shares are checked
