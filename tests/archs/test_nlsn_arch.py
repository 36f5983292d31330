"""NLSN: parameter counts of the official networks, block placement, forward/backward at x2/x3/x4."""
import pytest
import torch

from basicsr_nlattn.archs import NLSN
from basicsr_nlattn.archs.attention import NLSA


@pytest.mark.parametrize('upscale, millions', [(2, 41.80), (3, 44.75), (4, 44.16)])
def test_parameter_count_matches_the_official_network(upscale, millions):
    with torch.device('meta'):
        net = NLSN(upscale=upscale)
    count = sum(p.numel() for p in net.parameters())
    assert abs(count / 1e6 - millions) < 0.01, count
    assert [i for i, m in enumerate(net.body) if isinstance(m, NLSA)] == [0, 9, 18, 27, 36]
    assert all(m.n_hashes == 4 and m.chunk_size == 144 and m.res_scale == 0.1 for m in net.body if isinstance(m, NLSA))


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_forward_backward_tiny(upscale):
    torch.manual_seed(0)
    net = NLSN(num_feat=16, num_block=4, upscale=upscale, attn_every=2, chunk_size=16, n_hashes=2)
    x = torch.rand(2, 3, 9, 10)  # 90 positions: several chunks
    out = net(x)
    assert out.shape == (2, 3, 9 * upscale, 10 * upscale)
    out.abs().mean().backward()
    assert net.body[0].match_conv.weight.grad.abs().sum() > 0
    net.eval()
    torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)


def test_bad_options():
    with pytest.raises(ValueError, match='NLSA.n_hashes must be an int >= 1'):
        NLSN(num_feat=8, num_block=2, n_hashes=0)
    with pytest.raises(ValueError, match='NLSA.chunk_size must be >= 1'):
        NLSN(num_feat=8, num_block=2, chunk_size=0)
