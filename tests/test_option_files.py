"""Every shipped option file loads, names registered classes, and states the papers' recipes."""
import glob
from os import path as osp

import pytest
import torch
from basicsr.archs import build_network
from helpers.runs import REPO_ROOT

import basicsr_nlattn  # noqa: F401
from basicsr_nlattn.models.contrastive_sr_model import parse_contrastive_opt
from basicsr_nlattn.models.tiled_inference import parse_tile_options
from basicsr_nlattn.tools.option_check import _check_registered, _typed_entries
from basicsr_nlattn.utils import load_option_file

OPTION_FILES = sorted(glob.glob(osp.join(REPO_ROOT, 'options', '**', '*.yml'), recursive=True))
MILLIONS = {
    'ENLCN': {
        2: 41.22,
        3: 44.17,
        4: 43.58
    },
    'NLSN': {
        2: 41.80,
        3: 44.75,
        4: 44.16
    },
    'CCLNN': {
        2: 48.07,
        3: 51.02,
        4: 50.43
    }
}


@pytest.mark.parametrize('option_file', OPTION_FILES, ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_option_file_names_registered_classes(option_file):
    opt = load_option_file(option_file)
    for key, name, kind in _typed_entries(opt):
        _check_registered(key, name, kind)
    parse_contrastive_opt(opt.get('train', {}).get('contrastive_opt'))
    parse_tile_options((opt.get('val') or {}).get('tile'))
    for metric in (opt.get('val') or {}).get('metrics', {}).values():
        assert metric['crop_border'] == opt['scale'] and metric['test_y_channel'] is True


@pytest.mark.parametrize('arch', ['ENLCN', 'NLSN', 'CCLNN'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_train_options_state_the_paper_recipe(arch, scale):
    opt = load_option_file(osp.join(REPO_ROOT, 'options', f'train_{arch}_x{scale}.yml'))
    assert opt['scale'] == opt['network_g']['upscale'] == scale and opt['network_g']['type'] == arch
    assert opt['model_type'] == 'ContrastiveSRModel'
    train_set = opt['datasets']['train']
    assert train_set['io_backend']['type'] == 'lmdb' and train_set['dataroot_gt'].endswith('.lmdb')
    assert train_set['gt_size'] == 48 * scale and train_set['batch_size_per_gpu'] == 16
    train = opt['train']
    betas = [0.9, 0.999] if arch == 'CCLNN' else [0.9, 0.99]
    assert train['optim_g'] == {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': betas}
    assert train['scheduler']['milestones'] == [200000, 400000, 600000, 800000]
    assert train['scheduler']['gamma'] == 0.5 and train['total_iter'] == 1000000
    assert train['pixel_opt']['type'] == 'L1Loss'
    if arch == 'ENLCN':
        contrast = train['contrastive_opt']
        assert (contrast['loss_weight'], contrast['n1'], contrast['n2'], contrast['margin'],
                contrast['start_iter']) == (1e-3, 0.02, 0.08, 1.0, 150000)
    elif arch == 'CCLNN':
        contrast = train['contrastive_opt']
        assert (contrast['type'], contrast['loss_weight'], contrast['n'], contrast['margin'],
                contrast['start_iter']) == ('CCAContrastiveLoss', 4e-3, 0.10 if scale == 4 else 0.15, 1.0, 150000)
    else:
        assert 'contrastive_opt' not in train
        assert (opt['network_g']['chunk_size'], opt['network_g']['n_hashes']) == (144, 4)
    with torch.device('meta'):
        net = build_network(opt['network_g'])
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - MILLIONS[arch][scale]) < 0.01


@pytest.mark.parametrize('arch', ['ENLCN', 'NLSN', 'CCLNN'])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_test_options_cover_the_five_benchmarks(arch, scale):
    opt = load_option_file(osp.join(REPO_ROOT, 'options', f'test_{arch}_x{scale}.yml'))
    names = [dataset['name'] for dataset in opt['datasets'].values()]
    assert names == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
    assert all(f'LRbicx{scale}' in dataset['dataroot_lq'] for dataset in opt['datasets'].values())
    assert opt['val']['tile'] == {'mode': 'chop'}
    assert opt['path']['pretrain_network_g'].endswith(f'{arch}_x{scale}.pth')
    assert opt['network_g']['type'] == arch and opt['network_g']['upscale'] == scale


def test_cclnn_light_option():
    opt = load_option_file(osp.join(REPO_ROOT, 'options', 'train_CCLNN-L_x2.yml'))
    network = opt['network_g']
    assert (network['num_feat'], network['num_block'], network['branches'],
            network['channel_attention']) == (128, 16, 'both', 'contrastive')
    train = opt['train']
    assert train['total_iter'] == 500000 and train['scheduler']['milestones'] == [150000, 300000, 450000]
    assert train['contrastive_opt']['start_iter'] == 75000
    with torch.device('meta'):
        net = build_network(network)
    assert sum(type(m).__name__ == 'CCLNBlock' for m in net.body) == 3


SHRINK = {
    'RCAN': {
        'num_feat': 16,
        'num_block': 1,
        'squeeze_factor': 4
    },
    'EDSR': {
        'num_feat': 8
    },
    'SwinIR': {
        'img_size': 16,
        'window_size': 4,
        'depths': [1],
        'embed_dim': 12,
        'num_heads': [2]
    },
}


@pytest.mark.parametrize('name', ['train_RCAN_ENLCA_x4', 'train_EDSR_NLSA_x4', 'train_SwinIR_ENLCA_x4'])
def test_with_attention_options_build_and_run_at_tiny_width(name):
    opt = load_option_file(osp.join(REPO_ROOT, 'options', f'{name}.yml'))
    network = opt['network_g']
    assert network['type'] == 'WithAttention' and opt['model_type'] == 'ContrastiveSRModel'
    network['base'].update(SHRINK[network['base']['type']])
    torch.manual_seed(0)
    net = build_network(network)
    assert len(net.attention_blocks) == len(network['insert_after'])
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 64, 64)
    if 'ENLCA' in name:
        assert opt['train']['contrastive_opt']['type'] == 'ENLCAContrastiveLoss'


@pytest.mark.parametrize('name, lr, grad_clip', [('EDSR', 5e-6, None), ('RCAN', 5e-5, 1.0), ('NLSN', 5e-6, None),
                                                 ('ENLCN', 5e-6, None)])
def test_pcl_fine_tuning_options(name, lr, grad_clip):
    from basicsr_nlattn.models.pcl_model import parse_pcl_opt
    opt = load_option_file(osp.join(REPO_ROOT, 'options', f'train_{name}_PCL_x4.yml'))
    assert opt['model_type'] == 'PCLModel' and opt['network_g']['type'] == name
    assert opt['network_d']['type'] == 'HaarDiscriminator'
    train = opt['train']
    assert train['optim_g']['lr'] == lr and train.get('grad_clip') == grad_clip
    assert train['scheduler']['periods'] == [200000] * 3 and train['total_iter'] == 600000
    pcl = parse_pcl_opt(train['pcl_opt'])
    assert (pcl['num_pos'], pcl['num_neg'], pcl['loss']['loss_weight'], pcl['loss']['layers']) == (4, 4, 0.1,
                                                                                                   [0, 1, 2, 3])
    with torch.device('meta'):
        build_network(opt['network_g'])
        build_network(opt['network_d'])


TRAIN_OPTION_FILES = sorted(glob.glob(osp.join(REPO_ROOT, 'options', 'train_*.yml')))


@pytest.mark.parametrize('option_file', TRAIN_OPTION_FILES, ids=osp.basename)
def test_train_options_read_what_prepare_div2k_writes(option_file):
    """The LMDBs by default, the PNG sub-image folders as the commented disk variant; the paths are the ones that
    scripts/prepare_div2k.py writes under datasets/DIV2K."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('prepare_div2k', osp.join(REPO_ROOT, 'scripts', 'prepare_div2k.py'))
    prepare_div2k = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_div2k)
    opt = load_option_file(option_file)
    train = opt['datasets']['train']
    layout = prepare_div2k.Layout('datasets/DIV2K', (opt['scale'], ))
    (hr_lmdb, hr_folder), (lr_lmdb, lr_folder) = layout.folders().items()
    assert train['io_backend'] == {'type': 'lmdb'}
    assert (train['dataroot_gt'], train['dataroot_lq']) == (hr_lmdb, lr_lmdb)
    with open(option_file, encoding='utf-8') as file:
        text = file.read()
    for commented in (f'# dataroot_gt: {hr_folder}', f'# dataroot_lq: {lr_folder}', '#   type: disk'):
        assert commented in text
