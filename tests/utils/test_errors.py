"""OptionError is the one type for bad options (a ValueError), in every layer; errors that are not about options
stay plain ValueErrors."""
import pytest
import torch

from basicsr_nlattn.archs import HaarDiscriminator
from basicsr_nlattn.archs.haar_wavelet import haar_dwt
from basicsr_nlattn.losses import CCAContrastiveLoss, ENLCAContrastiveLoss, PCLContrastiveLoss, enlca_contrastive_loss
from basicsr_nlattn.models.contrastive_sr_model import parse_contrastive_opt, parse_grad_clip
from basicsr_nlattn.models.pcl_model import parse_pcl_opt
from basicsr_nlattn.tools.paper_results import paper_row_name
from basicsr_nlattn.utils import OptionError, as_option_errors


def test_option_error_is_a_value_error():
    assert issubclass(OptionError, ValueError)


def test_as_option_errors_turns_value_errors_into_option_errors_and_leaves_the_rest():
    with pytest.raises(OptionError, match='^NLSA.chunk_size must be >= 1, got 0$') as caught:
        with as_option_errors():
            raise ValueError('NLSA.chunk_size must be >= 1, got 0')
    assert type(caught.value.__cause__) is ValueError
    original = OptionError('val.tile.size: must be an int >= 1, got 0')
    with pytest.raises(OptionError) as caught:
        with as_option_errors():
            raise original
    assert caught.value is original
    with pytest.raises(TypeError):
        with as_option_errors():
            raise TypeError('not an option check')


@pytest.mark.parametrize('check, match', [
    (lambda: HaarDiscriminator(num_stages=0), 'HaarDiscriminator.num_stages must be >= 1'),
    (lambda: ENLCAContrastiveLoss(n1=0), 'ENLCAContrastiveLoss.n1 as a count must be >= 1'),
    (lambda: CCAContrastiveLoss(n=0.6), r'CCAContrastiveLoss.n as a fraction must be in \(0, 0.5\)'),
    (lambda: PCLContrastiveLoss(tau=0), 'PCLContrastiveLoss.tau must be > 0'),
    (lambda: parse_contrastive_opt(dict(type='ENLCAContrastiveLoss', start_iter=-5)),
     'train.contrastive_opt.start_iter: must be an int >= 0, got -5'),
    (lambda: parse_grad_clip(0), 'train.grad_clip: must be a number > 0'),
    (lambda: parse_pcl_opt({'sampling': 'both'}), 'train.pcl_opt.sampling: must be one of'),
    (lambda: paper_row_name(dict(val=dict(compare_to_paper='EDSR'))), 'val.compare_to_paper: must be one of'),
])
def test_option_checks_of_every_layer_raise_option_error(check, match):
    with pytest.raises(OptionError, match=match):
        check()


@pytest.mark.parametrize('call, match', [
    (lambda: haar_dwt(torch.zeros(1, 3, 5, 4)), 'haar_dwt needs an even height and width'),
    (lambda: enlca_contrastive_loss(torch.zeros(2, 4, 3), torch.zeros(2, 5, 3), 1, 1, 1.0, 6.0),
     r'query and key must both be \(B, N, C\)'),
])
def test_errors_about_tensors_stay_plain_value_errors(call, match):
    with pytest.raises(ValueError, match=match) as caught:
        call()
    assert not isinstance(caught.value, OptionError)
