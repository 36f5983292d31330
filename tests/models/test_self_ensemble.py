"""The x8 self-ensemble: the eight symmetries of EDSR's forward_x8 (flips and transpose), inverses, and the model
option ``val.self_ensemble`` combined with tiling."""
import itertools

import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from helpers.models import inference_model

from basicsr_nlattn.models.self_ensemble import SYMMETRIES, apply_symmetry, invert_symmetry, self_ensemble_forward


def flips_and_transpose(image, vflip, hflip, transpose):
    """EDSR-PyTorch's forward_x8 transforms, written independently: each is its own inverse in reverse order."""
    if vflip:
        image = image.flip(-2)
    if hflip:
        image = image.flip(-1)
    if transpose:
        image = image.transpose(-2, -1)
    return image


def brute_force_x8(net, lq):
    outputs = []
    for vflip, hflip, transpose in itertools.product((False, True), repeat=3):
        sr = net(flips_and_transpose(lq, vflip, hflip, transpose))
        if transpose:
            sr = sr.transpose(-2, -1)
        if hflip:
            sr = sr.flip(-1)
        if vflip:
            sr = sr.flip(-2)
        outputs.append(sr)
    return torch.stack(outputs).mean(0)


def test_the_eight_symmetries_are_distinct_and_invert():
    image = torch.arange(12.).reshape(1, 1, 3, 4)
    transformed = [apply_symmetry(image, turns, flip) for turns, flip in SYMMETRIES]
    assert len({(tuple(t.shape), tuple(t.flatten().tolist())) for t in transformed}) == 8
    for (turns, flip), image_g in zip(SYMMETRIES, transformed):
        assert torch.equal(invert_symmetry(image_g, turns, flip), image)


@pytest.fixture(scope='module')
def edsr():
    torch.manual_seed(0)
    return EDSR(3, 3, num_feat=8, num_block=1, upscale=2).eval()


def test_self_ensemble_equals_the_flip_transpose_ensemble(edsr):
    lq = torch.rand(2, 3, 9, 13)
    with torch.no_grad():
        ensemble = self_ensemble_forward(edsr, lq)
        torch.testing.assert_close(ensemble, brute_force_x8(edsr, lq), rtol=0, atol=1e-6)
        assert (ensemble - edsr(lq)).abs().max() > 1e-3  # a random net is not equivariant: the option matters


def test_model_option_ensembles_the_tiled_forward():
    network_g = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2}
    model = inference_model(network_g, 2, tile={'size': 6, 'overlap': 8}, self_ensemble=True)
    lq = torch.rand(1, 3, 11, 14, generator=torch.Generator().manual_seed(1))
    model.feed_data({'lq': lq})
    model.test()
    with torch.no_grad():
        expected = brute_force_x8(model.net_g, lq)  # overlap 8 covers the receptive field: tiles change nothing
    torch.testing.assert_close(model.output, expected, rtol=0, atol=1e-5)
