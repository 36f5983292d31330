"""CCLNN: the paper's parameter counts, placement, the light variant, forward/backward at x2/x3/x4."""
import pytest
import torch

from basicsr_nlattn.archs import CCLNN
from basicsr_nlattn.archs.attention import CCLNBlock


@pytest.mark.parametrize('upscale, millions', [(2, 48.07), (3, 51.02), (4, 50.43)])
def test_parameter_count_matches_the_paper(upscale, millions):
    with torch.device('meta'):
        net = CCLNN(upscale=upscale)
    assert abs(sum(p.numel() for p in net.parameters()) / 1e6 - millions) < 0.01
    assert [i for i, m in enumerate(net.body) if isinstance(m, CCLNBlock)] == [0, 9, 18, 27, 36]


def test_light_variant_has_three_blocks():
    with torch.device('meta'):
        net = CCLNN(upscale=2, num_feat=128, num_block=16)
    assert [i for i, m in enumerate(net.body) if isinstance(m, CCLNBlock)] == [0, 9, 18]


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_forward_backward_tiny(upscale):
    torch.manual_seed(0)
    net = CCLNN(num_feat=32, num_block=2, upscale=upscale, chunk_size=16, n_hashes=2)
    out = net(torch.rand(2, 3, 7, 9))
    assert out.shape == (2, 3, 7 * upscale, 9 * upscale)
    out.abs().mean().backward()
    cca = net.body[0].local_branch[0]
    assert cca.fc1.weight.grad.abs().sum() > 0 and net.body[0].nonlocal_branch[1].match_conv.weight.grad is not None
