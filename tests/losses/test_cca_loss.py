"""CCA contrastive loss (Eq. 3-4, 6) and the TSparse L1 loss (Eq. 7) against brute force; gradients reach the CCA
fully connected layers."""
import pytest
import torch

from basicsr_nlattn.archs.attention import ChannelContrastiveAttention
from basicsr_nlattn.losses import CCAContrastiveLoss, CCASparsityLoss, cca_contrastive_loss, cca_sparsity_loss


def brute_force(weights, count, margin):
    """Per sample, in plain Python over the sorted list, then the batch mean."""
    losses = []
    for row in weights:
        ranked = sorted(row.tolist(), reverse=True)
        positive = sum(torch.tensor(ranked[:count], dtype=torch.float64).exp()) / count
        negative = sum(torch.tensor(ranked[-count:], dtype=torch.float64).exp()) / count
        losses.append(max(0.0, -torch.log(positive / negative).item() + margin))
    return sum(losses) / len(losses)


def full_sort(weights, count, margin):
    ranked = weights.sort(dim=1, descending=True).values
    ratio = ranked[:, :count].exp().mean(1) / ranked[:, -count:].exp().mean(1)
    return torch.relu(-torch.log(ratio) + margin).mean()


@pytest.mark.parametrize('n, count', [(0.15, 5), (0.10, 3), (0.4, 13), (4, 4)])  # C = 32
@pytest.mark.parametrize('margin', [1.0, 0.2])
def test_matches_brute_force_value_and_gradient(n, count, margin):
    weights = torch.rand(4, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    weights.requires_grad_()
    ours = cca_contrastive_loss(weights, n, margin)
    assert ours.item() == pytest.approx(brute_force(weights.detach(), count, margin), rel=1e-12, abs=1e-12)
    reference = full_sort(weights, count, margin)
    torch.testing.assert_close(torch.autograd.grad(ours, weights)[0], torch.autograd.grad(reference, weights)[0])


def test_sparsity_loss_is_eq_7():
    weights = torch.tensor([[0.5, -1.0, 0.25, 0.25], [1.0, 1.0, 0.0, 2.0]])
    assert cca_sparsity_loss(weights).item() == pytest.approx(((2.0 / 4) + (4.0 / 4)) / 2)


def _recorded_blocks():
    torch.manual_seed(0)
    blocks = [ChannelContrastiveAttention(32, reduction=4) for _ in range(2)]
    x = torch.randn(3, 32, 4, 4)
    for block in blocks:
        block(x)
    return blocks


def test_modules_average_blocks_weight_and_reach_the_fc_layers():
    blocks = _recorded_blocks()
    loss = CCAContrastiveLoss(loss_weight=0.5, n=0.15)(blocks)
    expected = 0.5 * (cca_contrastive_loss(blocks[0].recorded[0], 0.15, 1.0) +
                      cca_contrastive_loss(blocks[1].recorded[0], 0.15, 1.0)) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    for block in blocks:
        assert block.fc1.weight.grad.abs().sum() > 0 and block.fc2.weight.grad.abs().sum() > 0
    sparsity = CCASparsityLoss(loss_weight=2.0)(blocks)
    torch.testing.assert_close(sparsity,
                               2.0 * (blocks[0].recorded[0].abs().mean() + blocks[1].recorded[0].abs().mean()) / 2)


@pytest.mark.parametrize('n, match', [
    (0.5, r'as a fraction must be in \(0, 0.5\)'),
    (0.0, r'as a fraction must be in \(0, 0.5\)'),
    (0, 'as a count must be >= 1'),
    (True, 'must be an int count or a float fraction'),
])
def test_bad_n(n, match):
    with pytest.raises(ValueError, match=match):
        cca_contrastive_loss(torch.rand(2, 32), n, 1.0)
    with pytest.raises(ValueError, match='CCAContrastiveLoss.n'):
        CCAContrastiveLoss(n=n)


def test_count_of_half_the_channels_or_more():
    with pytest.raises(ValueError, match=r'n=17 gives 17 channels per set, but C=32'):
        cca_contrastive_loss(torch.rand(2, 32), 17, 1.0)


def test_without_records_says_why():
    with pytest.raises(ValueError, match='CCASparsityLoss: no ChannelContrastiveAttention block recorded'):
        CCASparsityLoss()([ChannelContrastiveAttention(32)])
