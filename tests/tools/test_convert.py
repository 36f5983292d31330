"""Converter: a synthetic official checkpoint (the official key layout, random values) converted and loaded
strictly gives the same output as the official network, written from the official formulas over the official
layout (``tests/helpers/official_reference.py``; NLSN in training mode under the same seed, on several chunks)."""
import json
import math
from os import path as osp

import pytest
import torch
import torch.nn.functional as F
from helpers.models import inference_model
from helpers.official_reference import official_enlca, official_nlsa
from helpers.runs import check_ok, run_basicsr

import basicsr_nlattn  # noqa: F401
from basicsr_nlattn import cli
from basicsr_nlattn.tools.convert import NETWORKS, CheckpointError, convert_checkpoint, convert_state_dict

KEYS = json.load(open(osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'official_state_dict_keys.json')))
RGB_MEAN = torch.tensor([0.4488, 0.4371, 0.4040])


def synthetic_official(name, seed=0):
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in KEYS[name]:
        if key.endswith('mean.weight'):
            state[key] = torch.eye(3).view(3, 3, 1, 1)
        elif key == 'sub_mean.bias':
            state[key] = -RGB_MEAN
        elif key == 'add_mean.bias':
            state[key] = RGB_MEAN.clone()
        elif key.endswith('projection_matrix'):
            state[key] = torch.randn(*shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[key] = torch.randn(*shape, generator=generator) / math.sqrt(fan_in) * (0.5 if len(shape) > 1 else 0.1)
    return state


def official_forward(state, x, res_scale=0.1):
    """The official ENLCN / NLSN forward over the official keys (NLSN draws its rotations from the global RNG)."""

    def conv(name):
        return state[f'{name}.weight'], state[f'{name}.bias']

    x = F.conv2d(x, state['sub_mean.weight'], state['sub_mean.bias'])
    x = F.conv2d(x, state['head.0.weight'], state['head.0.bias'], padding=1)
    res, index = x, 0
    while f'body.{index}.weight' not in state:
        prefix = f'body.{index}.'
        if f'{prefix}conv_match1.0.weight' in state:
            res = official_enlca(res, conv(f'{prefix}conv_match1.0'), conv(f'{prefix}conv_match2.0'),
                                 conv(f'{prefix}conv_assembly.0'), state[f'{prefix}attn_fn.projection_matrix'])
        elif f'{prefix}conv_match.0.weight' in state:
            res = official_nlsa(
                res, conv(f'{prefix}conv_match.0'), conv(f'{prefix}conv_assembly.0'), res_scale=res_scale)
        else:
            inner = F.relu(F.conv2d(res, state[f'{prefix}body.0.weight'], state[f'{prefix}body.0.bias'], padding=1))
            res = res + res_scale * F.conv2d(
                inner, state[f'{prefix}body.2.weight'], state[f'{prefix}body.2.bias'], padding=1)
        index += 1
    res = F.conv2d(res, state[f'body.{index}.weight'], state[f'body.{index}.bias'], padding=1) + x
    step = 0
    while f'tail.0.{step}.weight' in state:
        weight = state[f'tail.0.{step}.weight']
        res = F.pixel_shuffle(
            F.conv2d(res, weight, state[f'tail.0.{step}.bias'], padding=1),
            int(math.isqrt(weight.shape[0] // weight.shape[1])))
        step += 2
    out = F.conv2d(res, state['tail.1.weight'], state['tail.1.bias'], padding=1)
    return F.conv2d(out, state['add_mean.weight'], state['add_mean.bias'])


@pytest.mark.parametrize('arch, scale', [('ENLCN', 2), ('ENLCN', 3), ('ENLCN', 4), ('NLSN', 2), ('NLSN', 3),
                                         ('NLSN', 4)])
def test_converted_checkpoint_loads_strictly_and_reproduces_the_official_forward(tmp_path, arch, scale):
    official = synthetic_official(f'{arch}_x{scale}', seed=scale)
    torch.save(official, tmp_path / 'official.pt')
    convert_checkpoint(arch, scale, str(tmp_path / 'official.pt'), str(tmp_path / 'ours.pth'))
    model = inference_model({'type': arch, 'upscale': scale}, scale, str(tmp_path / 'ours.pth'))
    if arch == 'ENLCN':
        lq = torch.rand(1, 3, 14, 17, generator=torch.Generator().manual_seed(1))
        model.feed_data({'lq': lq})
        model.test()
        ours = model.output
        with torch.no_grad():
            expected = official_forward(official, lq)
        net = model.get_bare_model(model.net_g)
        torch.testing.assert_close(net.body[9].random_features, official['body.9.attn_fn.projection_matrix'])
    else:  # the official rotations are drawn in training mode: both networks in training mode, same seed
        lq = torch.rand(1, 3, 13, 23, generator=torch.Generator().manual_seed(1))  # 299 positions: 3 chunks, padded
        net = model.get_bare_model(model.net_g).train()
        with torch.no_grad():
            torch.manual_seed(7)
            ours = net(lq)
            torch.manual_seed(7)
            expected = official_forward(official, lq)
    assert ours.shape == (1, 3, lq.shape[2] * scale, lq.shape[3] * scale)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert (ours - lq.mean()).abs().mean() > 1e-2  # not a trivial, near-constant output


def test_wrong_scale_and_wrong_arch_are_named():
    with pytest.raises(
            CheckpointError,
            match=r"key 'tail.0.0.weight' has shape \(1024, 256, 3, 3\), an official "
            r'ENLCN x3 has \(2304, 256, 3, 3\)'):
        convert_state_dict(synthetic_official('ENLCN_x4'), 'ENLCN', 3)
    with pytest.raises(CheckpointError, match=r"unexpected key 'tail.0.2.weight': not part of an official ENLCN x2"):
        convert_state_dict(synthetic_official('ENLCN_x4'), 'ENLCN', 2)
    with pytest.raises(CheckpointError, match=r"unexpected key 'body.0.conv_match.0.weight' for body entry 0"):
        convert_state_dict(synthetic_official('NLSN_x2'), 'ENLCN', 2)
    with pytest.raises(CheckpointError, match=r"unexpected key 'body.0.conv_match1.0.weight' for body entry 0"):
        convert_state_dict(synthetic_official('ENLCN_x2'), 'NLSN', 2)
    incomplete = synthetic_official('ENLCN_x2')
    del incomplete['body.36.attn_fn.projection_matrix']
    with pytest.raises(
            CheckpointError, match=r"lacks 1 key\(s\) of an official ENLCN x2, first: "
            r"\['body.36.random_features'\]"):
        convert_state_dict(incomplete, 'ENLCN', 2)
    shifted = synthetic_official('ENLCN_x2')
    shifted['sub_mean.bias'] = torch.zeros(3)
    with pytest.raises(CheckpointError, match='sub_mean.bias: the checkpoint subtracts the mean'):
        convert_state_dict(shifted, 'ENLCN', 2)


def test_cli_convert(tmp_path, capsys, monkeypatch):
    torch.save(synthetic_official('ENLCN_x4'), tmp_path / 'model_x4.pt')
    monkeypatch.chdir(tmp_path)
    assert cli.main(['convert', '--arch', 'ENLCN', '--scale', '2', 'model_x4.pt', 'out.pth']) == 2
    err = capsys.readouterr().err
    assert err.startswith('basicsr convert: error: ') and 'tail.0.' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'out.pth').exists()
    assert cli.main(['convert', '--arch', 'ENLCN', '--scale', '4', 'missing.pt', 'x.pth']) == 2
    assert "input checkpoint 'missing.pt' does not exist" in capsys.readouterr().err
    result = run_basicsr(['convert', '--arch', 'ENLCN', '--scale', '4', 'model_x4.pt', 'out.pth'], cwd=str(tmp_path))
    check_ok(result)  # the real console script
    assert 'pretrain_network_g: out.pth' in result.stdout
    assert set(torch.load(tmp_path / 'out.pth', weights_only=True)) == {'params'}


def test_cli_arch_choices_match_the_converter(capsys):
    parser = cli.build_parser(['convert'])
    for arch in NETWORKS:
        assert parser.parse_args(['convert', '--arch', arch, '--scale', '4', 'in.pt', 'out.pth']).arch == arch
    with pytest.raises(SystemExit):
        parser.parse_args(['convert', '--arch', 'EDSR', '--scale', '4', 'in.pt', 'out.pth'])
    assert "invalid choice: 'EDSR' (choose from" in capsys.readouterr().err
