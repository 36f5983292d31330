"""The one network loader: every command reads the same weights from one checkpoint (params_ema over params), the
option file's param_key_g is honoured, random weights are seeded without touching the global random state."""
import copy

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.models.base_model import BaseModel
from basicsr.utils import img2tensor, tensor2img
from helpers.models import TINY_ENLCN
from helpers.options import write_option
from skimage import data as skimage_data

from basicsr_nlattn import cli
from basicsr_nlattn.tools import attention_maps, export, flops
from basicsr_nlattn.tools.network_loading import checkpoint_param_key, load_network
from basicsr_nlattn.tools.test import use_loader_param_key
from basicsr_nlattn.utils import OptionError


def _network(seed):
    torch.manual_seed(seed)
    return build_network(copy.deepcopy(TINY_ENLCN))


@pytest.fixture()
def two_weights(tmp_path):
    """An option file whose checkpoint holds different ``params`` (seed 1) and ``params_ema`` (seed 2)."""
    params, params_ema = _network(1).state_dict(), _network(2).state_dict()
    torch.save({'params': params, 'params_ema': params_ema}, tmp_path / 'both.pth')
    opt = {
        'name': 'load',
        'scale': 2,
        'network_g': TINY_ENLCN,
        'path': {
            'pretrain_network_g': str(tmp_path / 'both.pth')
        }
    }
    return tmp_path, write_option(opt, str(tmp_path)), opt, params, params_ema


def _assert_weights(net, state):
    for name, tensor in state.items():
        torch.testing.assert_close(net.state_dict()[name], tensor, rtol=0, atol=0)


def test_params_ema_over_params_and_param_key_g(two_weights):
    tmp_path, _, opt, params, params_ema = two_weights
    assert not torch.equal(params['conv_first.weight'], params_ema['conv_first.weight'])
    net = load_network(opt)
    assert not net.training
    _assert_weights(net, params_ema)
    _assert_weights(load_network({**opt, 'path': {**opt['path'], 'param_key_g': 'params'}}), params)
    with pytest.raises(
            OptionError,
            match=r"^path.param_key_g: '.*both.pth' has no entry 'ema' \(entries that are "
            r'mappings: params, params_ema\)'):
        load_network({**opt, 'path': {**opt['path'], 'param_key_g': 'ema'}})
    torch.save(params, tmp_path / 'bare.pth')  # a bare state dict: the mapping itself
    _assert_weights(load_network(opt, str(tmp_path / 'bare.pth')), params)


def test_every_command_reads_the_same_weights(two_weights, monkeypatch, capsys):
    tmp_path, option, opt, _, params_ema = two_weights
    seen = {}

    def recorded(name, result):

        def record(net, *args, **kwargs):
            seen[name] = net
            return result

        return record

    # attention and flops: the network they draw or count
    monkeypatch.setattr(attention_maps, 'attention_maps', recorded('attention', []))
    monkeypatch.setattr(attention_maps, 'attention_figure', lambda image, rows: None)
    monkeypatch.setattr(attention_maps, 'save_figure', lambda figure, output: None)
    cv2.imwrite(str(tmp_path / 'lr.png'), skimage_data.astronaut()[:24, :20, ::-1])
    assert cli.main([
        'attention', '-opt', option, '--input',
        str(tmp_path / 'lr.png'), '--point', '1', '1', '--output',
        str(tmp_path / 'maps.png')
    ]) == 0
    monkeypatch.setattr(flops, 'network_complexity', recorded('flops', ''))
    assert cli.main(['flops', '-opt', option]) == 0
    seen['export'] = export.prepare_network(option).net
    for name in ('attention', 'flops', 'export'):
        _assert_weights(seen[name], params_ema)
    # infer: the image it writes is the params_ema network's
    (tmp_path / 'inputs').mkdir()
    cv2.imwrite(str(tmp_path / 'inputs' / 'lr.png'), skimage_data.astronaut()[:24, :20, ::-1])
    assert cli.main(['infer', '-opt', option, '--input',
                     str(tmp_path / 'inputs'), '--output',
                     str(tmp_path / 'sr')]) == 0
    ema_net = _network(0).eval()
    ema_net.load_state_dict(params_ema)
    lq = img2tensor(cv2.imread(str(tmp_path / 'inputs' / 'lr.png')).astype(np.float32) / 255.).unsqueeze(0)
    with torch.no_grad():
        expected = tensor2img(ema_net(lq))
    written = cv2.imread(str(tmp_path / 'sr' / 'lr_x2.png'))
    assert np.abs(written.astype(int) - expected.astype(int)).max() == 0
    # test: BasicSR's model loads with the param_key the loader's rule picks
    path_opt = copy.deepcopy(opt)
    use_loader_param_key(path_opt)
    assert path_opt['path']['param_key_g'] == 'params_ema'
    model = BaseModel.__new__(BaseModel)
    model.opt = {'dist': False}
    tested = _network(0)
    model.load_network(tested, opt['path']['pretrain_network_g'], True, path_opt['path']['param_key_g'])
    _assert_weights(tested, params_ema)
    set_key = {'path': {'pretrain_network_g': 'x.pth', 'param_key_g': 'params'}}
    use_loader_param_key(set_key)
    assert set_key['path']['param_key_g'] == 'params'  # the option file's own choice stays


def test_checkpoint_param_key(tmp_path):
    for saved, key in (({'params': {}}, 'params'), ({'params': {}, 'params_ema': {}}, 'params_ema'), ({}, None)):
        torch.save(saved, tmp_path / 'net.pth')
        assert checkpoint_param_key(str(tmp_path / 'net.pth')) == key


def test_random_weights_are_seeded_and_leave_the_global_random_state_alone():
    opt = {'network_g': dict(TINY_ENLCN), 'manual_seed': 7}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = load_network(opt), load_network(opt)
    assert torch.equal(torch.get_rng_state(), state)
    _assert_weights(second, first.state_dict())
    other = load_network({**opt, 'manual_seed': 8})
    assert not torch.equal(other.state_dict()['conv_first.weight'], first.state_dict()['conv_first.weight'])


@pytest.mark.parametrize('change, message', [
    ({
        'network_g': {
            'type': 'ENLCN',
            'num_block': 0
        }
    }, r'^network_g.num_block: must be >= 1, got 0'),
    ({
        'path': {
            'pretrain_network_g': 'missing.pth'
        }
    }, r"^path.pretrain_network_g: checkpoint 'missing.pth' does not"),
])
def test_bad_options_name_the_option(change, message):
    with pytest.raises(OptionError, match=message):
        load_network({'network_g': dict(TINY_ENLCN), **change})
