"""Haar wavelet transform and the PCL-SR embedding network."""
import pytest
import torch

from basicsr_nlattn.archs import HaarDiscriminator
from basicsr_nlattn.archs.haar_wavelet import haar_dwt, haar_idwt, high_frequency_bands


def test_dwt_then_inverse_is_exact_and_preserves_energy():
    x = torch.randn(2, 3, 10, 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    bands = haar_dwt(x)
    assert all(band.shape == (2, 3, 5, 7) for band in bands)
    torch.testing.assert_close(haar_idwt(*bands), x, rtol=0, atol=1e-14)
    torch.testing.assert_close(sum(band.pow(2).sum() for band in bands), x.pow(2).sum())  # orthonormal


def test_bands_of_simple_images():
    constant = torch.full((1, 1, 4, 4), 3.0)
    ll, lh, hl, hh = haar_dwt(constant)
    assert torch.all(ll == 6.0) and not lh.any() and not hl.any() and not hh.any()
    columns = torch.tensor([[1.0, -1.0] * 2] * 4).view(1, 1, 4, 4)  # changes along the width only
    _, lh, hl, hh = haar_dwt(columns)
    assert torch.all(lh == 2.0) and not hl.any() and not hh.any()
    assert high_frequency_bands(torch.rand(2, 3, 8, 8)).shape == (2, 9, 4, 4)
    with pytest.raises(ValueError, match='haar_dwt needs an even height and width'):
        haar_dwt(torch.rand(1, 1, 5, 4))


def test_discriminator_features_logits_and_gradients():
    torch.manual_seed(0)
    net = HaarDiscriminator(num_feat=8, num_stages=4)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    features = net.features(x)
    assert [tuple(f.shape[1:]) for f in features] == [(8, 16, 16), (8, 8, 8), (16, 8, 8), (16, 4, 4)]
    assert net(x).shape == (2, 1, 4, 4) and net.num_features == 4
    assert net.stages[0][0].in_channels == 9  # LH, HL, HH of 3 channels
    sum(f.mean() for f in features).backward()
    assert x.grad.abs().sum() > 0  # the embedding passes gradients to its input (the SR image)
    with pytest.raises(ValueError, match='HaarDiscriminator.num_stages must be >= 1'):
        HaarDiscriminator(num_stages=0)


def test_yaml_defaults_build():
    from basicsr.archs import build_network
    net = build_network({'type': 'HaarDiscriminator'})
    assert net.num_features == 6
