"""Tiled and chopped inference equal the whole-image forward for a conv-only network; the chop is the official
forward_chop for a network with global attention; val.tile is validated."""
import pytest
import torch
from basicsr.archs.edsr_arch import EDSR
from helpers.models import inference_model
from helpers.official_reference import official_forward_chop

from basicsr_nlattn.archs.enlcn_arch import ENLCN
from basicsr_nlattn.models.tiled_inference import chop_forward, parse_tile_options, tiled_forward


@pytest.fixture(scope='module')
def conv_net():
    torch.manual_seed(0)
    # receptive field radius in LR pixels: conv_first, 2 x 2 block convs, conv_after_body and the upsampler conv
    # (7), plus conv_last at HR (1/2): an overlap of 8 covers it, 7 does not
    return EDSR(3, 3, num_feat=8, num_block=2, upscale=2).eval()


@pytest.mark.parametrize('size', [5, 8, 13])
def test_tiled_equals_untiled_when_the_overlap_covers_the_receptive_field(conv_net, size):
    lq = torch.rand(2, 3, 21, 17)
    with torch.no_grad():
        whole, tiled = conv_net(lq), tiled_forward(conv_net, lq, 2, size=size, overlap=8)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-5)


def test_tiles_without_overlap_differ(conv_net):
    lq = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert (tiled_forward(conv_net, lq, 2, size=10, overlap=0) - conv_net(lq)).abs().max() > 1e-3


@pytest.mark.parametrize('min_size', [10**6, 200])  # one level of quadrants, and recursive chopping
def test_chop_equals_untiled_when_the_shave_covers_the_receptive_field(conv_net, min_size):
    lq = torch.rand(1, 3, 37, 30)
    with torch.no_grad():
        chopped = chop_forward(conv_net, lq, 2, shave=10, min_size=min_size)
        torch.testing.assert_close(chopped, conv_net(lq), rtol=0, atol=1e-5)


@pytest.fixture(scope='module')
def attention_net():
    """A network whose output depends on the quadrant: ENLCA attends over the whole input it is given."""
    torch.manual_seed(0)
    return ENLCN(num_feat=8, num_block=2, upscale=2, attn_every=1, reduction=2, res_scale=1.0).eval()


@pytest.mark.parametrize(
    'size, shave, min_size',
    [
        ((50, 61), 10, 120000),  # one level: quadrants of 36 x 48 (35 + 1, 40 + 8)
        ((48, 64), 10, 120000),  # exact multiples: 34 -> 36 and 42 -> 48, the official rounding always adds
        ((90, 77), 10, 2000),  # recursive: 56 x 56 quadrants are chopped again into 40 x 40
        ((45, 52), 3, 500),  # another shave, recursion of two levels
    ])
def test_chop_is_the_official_forward_chop(attention_net, size, shave, min_size):
    lq = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = chop_forward(attention_net, lq, 2, shave=shave, min_size=min_size)
        official = official_forward_chop(attention_net, lq, 2, shave=shave, min_size=min_size)
        whole = attention_net(lq)
    torch.testing.assert_close(ours, official, rtol=0, atol=1e-6)
    assert (ours - whole).abs().max() > 1e-4  # the quadrants really change the result


def test_chop_where_the_official_slicing_breaks_clips_the_quadrant_to_the_image(attention_net):
    """LR height 20: the rounded quadrant height (20 // 2 + 10 -> 24) exceeds the image; the official code breaks."""
    lq = torch.rand(1, 3, 20, 70, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with pytest.raises(RuntimeError):
            official_forward_chop(attention_net, lq, 2)
        ours = chop_forward(attention_net, lq, 2)
        # clipped quadrants: full height, the official 48 columns at each side
        left, right = attention_net(lq[..., :48]), attention_net(lq[..., 70 - 48:])
    torch.testing.assert_close(ours[..., :70], left[..., :70], rtol=0, atol=1e-6)
    torch.testing.assert_close(ours[..., 70:], right[..., 96 - 70:], rtol=0, atol=1e-6)


@pytest.mark.parametrize('tile', [{'size': 6, 'overlap': 8}, {'mode': 'chop'}])
def test_model_test_runs_tiled_and_matches_the_whole_image(tile):
    network_g = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2}
    tiled = inference_model(network_g, 2, tile=tile)
    whole = inference_model(network_g, 2)
    whole.net_g.load_state_dict(tiled.net_g.state_dict())
    for model in (tiled, whole):
        model.feed_data({'lq': torch.rand(1, 3, 23, 19, generator=torch.Generator().manual_seed(0))})
        model.test()
    assert tiled.tile is not None and whole.tile is None
    torch.testing.assert_close(tiled.output, whole.output, rtol=0, atol=1e-5)


@pytest.mark.parametrize('tile, match', [
    ({
        'size': 0
    }, r'val.tile.size: must be an int >= 1'),
    ({
        'size': 64,
        'overlap': -1
    }, r'val.tile.overlap: must be an int >= 0'),
    ({
        'size': 64,
        'shave': 10
    }, r"val.tile: unknown key\(s\) \['shave'\] for mode 'tile'"),
    ({
        'mode': 'quadrants'
    }, r"val.tile.mode: must be one of \['chop', 'tile'\]"),
    ({
        'mode': 'chop',
        'min_size': 0
    }, r'val.tile.min_size: must be an int >= 1'),
    ([64, 16], r'val.tile: must be a mapping'),
])
def test_bad_tile_options(tile, match):
    with pytest.raises(ValueError, match=match):
        parse_tile_options(tile)


def test_tile_defaults():
    assert parse_tile_options({'size': 32}) == {'mode': 'tile', 'size': 32, 'overlap': 0}
    assert parse_tile_options({'mode': 'chop'}) == {'mode': 'chop', 'shave': 10, 'min_size': 120000}
    assert parse_tile_options(None) is None
