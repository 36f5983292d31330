"""WithAttention: blocks inserted into BasicSR's networks from YAML, channel inference, base weights, errors; and
a block inside a user's own module feeding its loss."""
import copy
from os import path as osp

import pytest
import torch
from basicsr.archs import build_network
from helpers.logs import experiment_log
from helpers.models import inference_model
from helpers.options import tiny_demo_option, write_option
from helpers.runs import check_ok, run_basicsr
from torch import nn

from basicsr_nlattn.archs.attention import ENLCA, NLSA
from basicsr_nlattn.archs.with_attention_arch import default_insert_after
from basicsr_nlattn.losses import ENLCAContrastiveLoss
from basicsr_nlattn.utils import OptionError

TINY_RCAN = {
    'type': 'RCAN',
    'num_in_ch': 3,
    'num_out_ch': 3,
    'num_feat': 16,
    'num_group': 2,
    'num_block': 1,
    'squeeze_factor': 4,
    'upscale': 4
}
TINY_SWINIR = {
    'type': 'SwinIR',
    'upscale': 2,
    'in_chans': 3,
    'img_size': 16,
    'window_size': 4,
    'img_range': 1.,
    'depths': [1],
    'embed_dim': 12,
    'num_heads': [2],
    'mlp_ratio': 2,
    'upsampler': 'pixelshuffledirect',
    'resi_connection': '1conv'
}


def with_enlca(base=TINY_RCAN, insert_after=('body.0', 'body.1'), **attention):
    torch.manual_seed(0)
    return build_network({
        'type': 'WithAttention',
        'base': copy.deepcopy(base),
        'insert_after': list(insert_after),
        'attention': {
            'type': 'ENLCA',
            'num_random_features': 8,
            **attention
        }
    })


def test_blocks_run_after_the_named_modules_with_inferred_channels():
    net = with_enlca()
    assert [block.value_conv.in_channels for block in net.attention_blocks] == [16, 16]
    outputs = {}
    net.base.body[1].register_forward_hook(lambda m, i, o: outputs.setdefault('after_group', o))
    x = torch.rand(1, 3, 8, 8)
    assert net(x).shape == (1, 3, 32, 32)
    # the base's body.1 output seen downstream is the ENLCA block's output, not the group's
    group_out = net.base.body[1](
        net.attention_blocks[0](net.base.body[0](net.base.conv_first((x - net.base.mean) * net.base.img_range))))
    torch.testing.assert_close(outputs['after_group'], group_out)
    assert all(block.recorded is not None for block in net.attention_blocks)
    # the checkpoint format: the base's own keys under base., each block's under attention_blocks.<i>.
    block_keys = list(ENLCA(16, num_random_features=8).state_dict())
    assert list(net.state_dict()) == [f'base.{key}' for key in build_network(TINY_RCAN).state_dict()
                                      ] + [f'attention_blocks.{i}.{key}' for i in range(2) for key in block_keys]


def test_nlsa_after_edsr_blocks_and_explicit_channels():
    base = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 4, 'upscale': 2}
    net = build_network({
        'type': 'WithAttention',
        'base': base,
        'insert_after': ['body.1', 'body.3'],
        'attention': {
            'type': 'NLSA',
            'num_feat': 8,
            'reduction': 2,
            'chunk_size': 16
        }
    })
    assert all(isinstance(block, NLSA) for block in net.attention_blocks)
    assert net(torch.rand(2, 3, 6, 7)).shape == (2, 3, 12, 14)


def test_base_checkpoint_loads_and_new_keys_are_reported(tmp_path):
    torch.manual_seed(1)
    plain = build_network(TINY_RCAN)
    net = with_enlca()
    result = net.load_state_dict(plain.state_dict())
    assert sorted(result.missing_keys) == sorted(k for k in net.state_dict() if k.startswith('attention_blocks.'))
    assert result.unexpected_keys == []
    for name, tensor in plain.state_dict().items():
        torch.testing.assert_close(net.base.state_dict()[name], tensor, rtol=0, atol=0)
    # through BasicSR's loader (path.pretrain_network_g, strict): the same
    torch.save({'params': plain.state_dict()}, tmp_path / 'rcan.pth')
    network_g = {'type': 'WithAttention', 'base': TINY_RCAN, 'attention': {'type': 'ENLCA'}, 'insert_after': ['body.1']}
    model = inference_model(network_g, 4, str(tmp_path / 'rcan.pth'))
    loaded = model.get_bare_model(model.net_g).base.conv_first.weight
    torch.testing.assert_close(loaded, plain.conv_first.weight, rtol=0, atol=0)
    # our own checkpoints (prefixed keys) round-trip strictly
    fresh = with_enlca()
    fresh.load_state_dict(net.state_dict())
    torch.testing.assert_close(fresh.attention_blocks[1].random_features, net.attention_blocks[1].random_features)


RCAN_CANDIDATES = 'conv_first, body, body.0, body.1, conv_after_body, upsample, conv_last'


def test_unknown_module_lists_the_candidates():
    """The candidates: the base's top-level children and the children of its body, not deeper ones."""
    with pytest.raises(
            OptionError,
            match=r"^WithAttention.insert_after: unknown module\(s\) \['body.7'\] of RCAN; candidates .*: " +
            RCAN_CANDIDATES + '$'):
        with_enlca(insert_after=['body.7'])


@pytest.mark.parametrize('insert_after', [[], 'body.0'])
def test_an_empty_or_string_insert_after_lists_the_candidates(insert_after):
    with pytest.raises(
            OptionError,
            match=r'^WithAttention.insert_after must be a non-empty list .*candidates: ' + RCAN_CANDIDATES + '$'):
        build_network({
            'type': 'WithAttention',
            'base': TINY_RCAN,
            'attention': {
                'type': 'ENLCA'
            },
            'insert_after': insert_after
        })


def test_a_base_without_a_body_needs_insert_after_and_lists_the_candidates():
    with pytest.raises(
            OptionError,
            match=r'^WithAttention.insert_after is required: SwinIR has no body of blocks .*candidates: conv_first, '
            r'patch_embed, patch_unembed, pos_drop, layers, norm, conv_after_body, upsample$'):
        build_network({'type': 'WithAttention', 'base': TINY_SWINIR, 'attention': {'type': 'ENLCA'}})


@pytest.mark.parametrize('num_body_blocks, expected', [
    (1, [0]),
    (2, [0, 1]),
    (5, [0, 1, 2, 3, 4]),
    (10, [1, 3, 5, 7, 9]),
    (32, [5, 11, 18, 24, 31]),
])
def test_default_places_five_blocks_evenly_after_body_blocks(num_body_blocks, expected):
    """Omitted insert_after: after min(5, len(body)) evenly spaced body blocks, the last included (docstring)."""
    base = nn.Module()
    base.body = nn.Sequential(*(nn.Identity() for _ in range(num_body_blocks)))
    assert default_insert_after(base) == [f'body.{index}' for index in expected]
    base.body = nn.ModuleList(base.body)
    assert default_insert_after(base) == [f'body.{index}' for index in expected]
    base.body = nn.Conv2d(3, 3, 1)  # a body that is one module: no default
    assert default_insert_after(base) is None


def test_default_on_rcan_runs_the_blocks_after_its_groups():
    torch.manual_seed(0)
    rcan = dict(TINY_RCAN, num_group=10, num_feat=8, squeeze_factor=2)
    net = build_network({'type': 'WithAttention', 'base': rcan, 'attention': {'type': 'ENLCA', 'reduction': 2}})
    assert net.insert_after == ['body.1', 'body.3', 'body.5', 'body.7', 'body.9']  # the README's placement
    torch.manual_seed(0)
    listed = build_network({
        'type': 'WithAttention',
        'base': rcan,
        'attention': {
            'type': 'ENLCA',
            'reduction': 2
        },
        'insert_after': ['body.1', 'body.3', 'body.5', 'body.7', 'body.9']
    })
    assert net.state_dict().keys() == listed.state_dict().keys()
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), listed.eval()(x), rtol=0, atol=0)
        # the block after body.9 runs: shifting its values (RCAN divides the output by img_range 255) shows
        net.attention_blocks[4].value_conv.bias.add_(50.0)
        assert (net(x) - listed(x)).abs().max() > 1e-3


@pytest.mark.parametrize('base, attention, match', [
    (TINY_RCAN, dict(type='NLSA', chunk_size=0), 'NLSA.chunk_size must be >= 1, got 0'),
    (dict(TINY_RCAN, upscale=5), dict(type='ENLCA'), 'scale 5 is not supported'),
])
def test_constructor_value_errors_are_option_errors(base, attention, match):
    """A ValueError of the block's or the base's (BasicSR's Upsample) constructor becomes an OptionError."""
    with pytest.raises(OptionError, match=match):
        build_network({'type': 'WithAttention', 'base': base, 'attention': attention, 'insert_after': ['body.0']})


def test_token_outputs_are_refused_with_the_swinir_hint():
    with pytest.raises(
            ValueError,
            match=r"'layers.0' outputs shape \(1, 1024, 12\), not \(b, c, h, w\).*"
            r"for SwinIR use 'conv_after_body'"):
        with_enlca(TINY_SWINIR, ['layers.0'])
    net = with_enlca(TINY_SWINIR, ['conv_after_body'])
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 32, 32)


def test_a_block_in_a_users_own_module_feeds_the_loss():

    class MyNet(nn.Module):

        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(3, 16, 3, 1, 1)
            self.attention = ENLCA(16, num_random_features=16)
            self.tail = nn.Conv2d(16, 3, 3, 1, 1)

        def forward(self, x):
            return self.tail(self.attention(self.head(x)))

    torch.manual_seed(0)
    net = MyNet().train()
    out = net(torch.rand(2, 3, 10, 10))
    loss = out.abs().mean() + ENLCAContrastiveLoss(loss_weight=1.0, n1=3, n2=10)(list(net.modules()))
    loss.backward()
    assert net.attention.query_conv.weight.grad.abs().sum() > 0 and net.head.weight.grad.abs().sum() > 0


def test_rcan_with_enlca_trains_through_yaml_and_logs_the_contrastive_loss(demo_data_root, tmp_path):
    opt = tiny_demo_option('rcan_enlca', total_iter=20)
    opt['network_g'] = {
        'type': 'WithAttention',
        'base': TINY_RCAN,
        'attention': {
            'type': 'ENLCA',
            'reduction': 2
        },
        'insert_after': ['body.0', 'body.1']
    }
    opt['train']['contrastive_opt']['start_iter'] = 5
    check_ok(run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=demo_data_root))
    log = experiment_log(osp.join(demo_data_root, 'experiments', 'rcan_enlca'))
    lines = [line for line in log.splitlines() if '[epoch:' in line]
    assert len(lines) == 2 and all('l_contrast' in line for line in lines)
    assert 'Network [WithAttention] is created.' in log
