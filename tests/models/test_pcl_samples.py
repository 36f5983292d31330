"""PCL-SR samples: positives carry more high-frequency energy than HR, negatives less; reproducible."""
import pytest
import torch
from skimage import data as skdata

from basicsr_nlattn.archs.haar_wavelet import high_frequency_bands
from basicsr_nlattn.models.pcl_samples import (gaussian_kernels, make_negatives, make_negatives_official,
                                               make_positives, make_positives_official)


@pytest.fixture(scope='module')
def hr():
    image = torch.from_numpy(skdata.astronaut()[100:196, 150:246]).permute(2, 0, 1).float() / 255
    return torch.stack([image, image.flip(-1)])


def high_frequency_energy(images):
    """Energy of LH, HL, HH per image: (..., c, h, w) -> (...)."""
    flat = images.reshape(-1, *images.shape[-3:])
    return high_frequency_bands(flat).pow(2).flatten(1).sum(1).view(images.shape[:-3])


def test_positives_sharper_and_negatives_blurrier_than_hr(hr):
    generator = torch.Generator().manual_seed(0)
    positives, negatives = make_positives(hr, 4, generator), make_negatives(hr, 4, generator)
    assert positives.shape == negatives.shape == (4, *hr.shape)
    torch.testing.assert_close(positives[0], hr, rtol=0, atol=0)
    reference = high_frequency_energy(hr)
    assert torch.all(high_frequency_energy(positives[1:]) > reference)
    assert torch.all(high_frequency_energy(negatives) < reference)


def test_reproducible_under_the_seed(hr):
    first = make_negatives(hr, 3, torch.Generator().manual_seed(5))
    second = make_negatives(hr, 3, torch.Generator().manual_seed(5))
    other = make_negatives(hr, 3, torch.Generator().manual_seed(6))
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_kernels_are_normalised_gaussians_of_their_size():
    kernels = gaussian_kernels(torch.tensor([3, 11]), torch.tensor([0.3, 1.5], dtype=torch.float64), 11)
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64))
    assert kernels[0, :4].abs().sum() == 0 and kernels[0, 4:7, 4:7].abs().sum() > 0  # 3x3 support
    assert kernels[1, 0, 0] > 0


@pytest.mark.parametrize('function, name', [(make_positives, 'num_pos'), (make_negatives, 'num_neg')])
def test_bad_counts(hr, function, name):
    with pytest.raises(ValueError, match=f'{name} must be >= 1, got 0'):
        function(hr, 0)


def test_official_sampling_option(hr):
    import torch.nn.functional as F
    lq = F.interpolate(hr, scale_factor=0.25, mode='bicubic', align_corners=False)
    generator = torch.Generator().manual_seed(0)
    positives = make_positives_official(hr, 3, generator)
    negatives = make_negatives_official(hr, lq, 3, generator)
    assert positives.shape == negatives.shape == (3, *hr.shape)
    torch.testing.assert_close(positives[0], hr, rtol=0, atol=0)
    assert positives.min() >= 0 and positives.max() <= 1
    upsampled = F.interpolate(lq, size=hr.shape[-2:], mode='bicubic', align_corners=False).clamp(0, 1)
    torch.testing.assert_close(negatives[0], upsampled)
    assert torch.all(high_frequency_energy(negatives) < high_frequency_energy(hr))
