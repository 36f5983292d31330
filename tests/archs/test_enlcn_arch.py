"""ENLCN: parameter counts of the official networks, block placement, forward/backward at x2/x3/x4."""
import pytest
import torch

from basicsr_nlattn.archs import ENLCN
from basicsr_nlattn.archs.attention import ENLCA
from basicsr_nlattn.archs.backbone import attention_positions
from basicsr_nlattn.utils import OptionError


@pytest.mark.parametrize('upscale, millions', [(2, 41.22), (3, 44.17), (4, 43.58)])
def test_parameter_count_matches_the_official_network(upscale, millions):
    with torch.device('meta'):
        net = ENLCN(upscale=upscale)
    count = sum(p.numel() for p in net.parameters())
    assert abs(count / 1e6 - millions) < 0.01, count
    assert sum(isinstance(m, ENLCA) for m in net.body) == 5
    assert [i for i, m in enumerate(net.body) if isinstance(m, ENLCA)] == [0, 9, 18, 27, 36]


def test_attention_positions():
    assert attention_positions(32, 8) == [0, 9, 18, 27, 36]
    assert attention_positions(4, 2) == [0, 3, 6]
    assert attention_positions(3, 8) == [0, 4]


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_forward_backward_tiny(upscale):
    torch.manual_seed(0)
    net = ENLCN(num_feat=16, num_block=4, upscale=upscale, attn_every=2)
    x = torch.rand(2, 3, 10, 11)
    out = net(x)
    assert out.shape == (2, 3, 10 * upscale, 11 * upscale)
    out.abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert net.body[0].query_conv.weight.grad.abs().sum() > 0


def test_mean_and_range_are_applied():
    net = ENLCN(num_feat=8, num_block=1, upscale=2, img_range=1.0)
    assert 'mean' not in net.state_dict()  # derived, not part of the checkpoint
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    # with a zero tail, the output is the mean image
    torch.testing.assert_close(net(torch.rand(1, 3, 4, 4)), net.mean.expand(1, 3, 8, 8))


def test_img_range_scales_the_trunk_input_and_output():
    """out = trunk((x - mean) * r) / r + mean, the trunk written out from the network's own layers."""
    torch.manual_seed(0)
    net = ENLCN(num_feat=8, num_block=1, upscale=2, img_range=255.0).double().eval()
    x = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    mean = net.mean  # DIV2K's mean, held in float32 precision
    torch.testing.assert_close(
        mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040], dtype=torch.float64), atol=1e-7, rtol=0)
    with torch.no_grad():
        head = net.conv_first((x - mean) * 255.0)
        trunk = net.conv_last(net.upsample(net.conv_after_body(net.body(head)) + head))
        torch.testing.assert_close(net(x), trunk / 255.0 + mean, rtol=1e-12, atol=1e-12)
        net.img_range = 1.0
        assert (net(x) - (trunk / 255.0 + mean)).abs().max() > 1e-3  # the range really changes the output


@pytest.mark.parametrize('kwargs, match', [
    ({
        'upscale': 5
    }, 'ENLCN.upscale must be 2, 3 or a power of 2'),
    ({
        'attn_every': 0
    }, 'ENLCN.attn_every must be >= 1'),
    ({
        'num_block': 0
    }, 'ENLCN.num_block must be >= 1'),
    ({
        'amplification': 0
    }, 'ENLCA.amplification must be > 0'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(OptionError, match=match):  # the ENLCA block's own ValueError included
        ENLCN(num_feat=8, **{'num_block': 2, **kwargs})
