"""CCLN block (Eq. 2), pixel attention, channel (contrastive) attention and the ablation switches."""
import pytest
import torch

from basicsr_nlattn.archs.attention import (NLSA, CCLNBlock, ChannelAttention, ChannelContrastiveAttention,
                                            PixelAttention)


def test_pixel_attention_gates_every_pixel():
    torch.manual_seed(0)
    pa = PixelAttention(8)
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(pa(x), x * torch.sigmoid(pa.conv(x)))
    assert sum(p.numel() for p in pa.parameters()) == 8 * 8 + 8


def test_channel_contrastive_attention_is_fig_2_and_records_its_weights():
    torch.manual_seed(0)
    cca = ChannelContrastiveAttention(32, reduction=16)
    x = torch.randn(3, 32, 4, 5)
    pooled = x.mean(dim=(2, 3))
    weights = torch.sigmoid(cca.fc2(torch.relu(cca.fc1(pooled))))
    torch.testing.assert_close(cca(x), x * weights[:, :, None, None])
    torch.testing.assert_close(cca.recorded[0], weights)
    assert cca.fc1.out_features == 2 and sum(p.numel() for p in cca.parameters()) == 2 * 32 * 2 + 2 + 32
    cca.eval()
    cca.clear_recorded()
    cca(x)
    assert cca.recorded is None


def test_block_is_the_sum_of_both_branches_with_their_identity_paths():
    torch.manual_seed(0)
    block = CCLNBlock(16, reduction=2, chunk_size=8, n_hashes=2, cca_reduction=4, res_scale=0.5).eval()
    x = torch.randn(2, 16, 5, 6)
    pa, nlsa = block.nonlocal_branch
    cca, res = block.local_branch
    nonlocal_out = nlsa(pa(x))
    local_in = cca(x)
    local_out = local_in + 0.5 * res.conv2(torch.relu(res.conv1(local_in)))
    torch.testing.assert_close(block(x), nonlocal_out + local_out)
    assert isinstance(nlsa, NLSA) and nlsa.res_scale == 0.5


@pytest.mark.parametrize('branches, nonlocal_present, local_present', [('both', True, True), ('local', False, True),
                                                                       ('nonlocal', True, False)])
def test_branch_ablation_removes_what_it_says(branches, nonlocal_present, local_present):
    torch.manual_seed(0)
    block = CCLNBlock(16, reduction=2, chunk_size=8, cca_reduction=4, branches=branches).eval()  # seeded hashing
    assert (block.nonlocal_branch is not None) == nonlocal_present
    assert (block.local_branch is not None) == local_present
    assert any(isinstance(m, NLSA) for m in block.modules()) == nonlocal_present
    assert any(isinstance(m, ChannelAttention) for m in block.modules()) == local_present
    x = torch.randn(1, 16, 4, 4)
    expected = (block.nonlocal_branch(x) if nonlocal_present else 0) + (block.local_branch(x) if local_present else 0)
    torch.testing.assert_close(block(x), expected)


def test_plain_channel_attention_records_nothing():
    block = CCLNBlock(16, reduction=2, chunk_size=8, cca_reduction=4, channel_attention='plain').train()
    assert not any(isinstance(m, ChannelContrastiveAttention) for m in block.modules())
    assert isinstance(block.local_branch[0], ChannelAttention)
    block(torch.randn(1, 16, 4, 4))
    assert not any(getattr(m, 'recorded', None) is not None for m in block.modules())


@pytest.mark.parametrize('kwargs, match', [
    ({
        'branches': 'neither'
    }, r"CCLNBlock.branches must be one of \['both', 'local', 'nonlocal'\], got 'neither'"),
    ({
        'channel_attention': 'spatial'
    }, r"CCLNBlock.channel_attention must be one of \['contrastive', 'plain'\]"),
    ({
        'cca_reduction': 64
    }, r'CCLNBlock.cca_reduction must be between 1 and num_feat \(16\), got 64'),
])
def test_bad_block_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CCLNBlock(16, **kwargs)
