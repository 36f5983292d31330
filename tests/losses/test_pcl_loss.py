"""PCL-SR's contrastive loss (Eq. 8-10) and contrastive discriminator loss (Eq. 7) against brute force."""
import math

import pytest
import torch

from basicsr_nlattn.losses import (ContrastiveDiscriminatorLoss, PCLContrastiveLoss, contrastive_discriminator_loss,
                                   pcl_contrastive_loss)


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def brute_similarity(x, y):
    c, h, w = x.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            total += float(x[:, i, j] @ y[:, i, j] / (x[:, i, j].norm() * y[:, i, j].norm()))
    return total / (h * w)


def test_contrastive_loss_matches_the_equations_by_hand():
    layers = [(3, 4, 5), (2, 3, 3)]
    b, num_pos, num_neg, tau = 2, 3, 4, 0.5
    anchor = [_rand(b, *s, seed=i) for i, s in enumerate(layers)]
    positives = [_rand(num_pos, b, *s, seed=10 + i) for i, s in enumerate(layers)]
    negatives = [_rand(num_neg, b, *s, seed=20 + i) for i, s in enumerate(layers)]
    expected = 0.0
    for f, p, n in zip(anchor, positives, negatives):
        for i in range(b):
            negative_sum = sum(math.exp(brute_similarity(f[i], n[k, i]) / tau) for k in range(num_neg))
            terms = []
            for j in range(num_pos):
                positive = math.exp(brute_similarity(f[i], p[j, i]) / tau)
                terms.append(-math.log(positive / (positive + negative_sum)))
            expected += sum(terms) / num_pos  # Eq. 8
    expected /= b * len(layers)  # Eq. 10
    assert pcl_contrastive_loss(anchor, positives, negatives, tau).item() == pytest.approx(expected, rel=1e-12)


def test_contrastive_loss_module_picks_layers_and_weights():
    features = [_rand(2, 3, 4, 4, seed=i) for i in range(5)]
    positives = [_rand(2, 2, 3, 4, 4, seed=10 + i) for i in range(5)]
    negatives = [_rand(3, 2, 3, 4, 4, seed=20 + i) for i in range(5)]
    loss = PCLContrastiveLoss(loss_weight=0.1, layers=[1, 3])(features, positives, negatives)
    expected = 0.1 * pcl_contrastive_loss([features[1], features[3]], [positives[1], positives[3]],
                                          [negatives[1], negatives[3]])
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match=r'unknown feature layer\(s\) \[7\]; the embedding network has 5'):
        PCLContrastiveLoss(layers=[0, 7])(features, positives, negatives)
    with pytest.raises(ValueError, match='PCLContrastiveLoss.layers must be a non-empty list'):
        PCLContrastiveLoss(layers=[])


def test_discriminator_loss_matches_eq_7_by_hand():
    real = _rand(2, 1, 2, 2, seed=1)
    fake = _rand(2, 1, 2, 2, seed=2)
    r, f = real.flatten().tolist(), fake.flatten().tolist()
    real_term = sum(-math.log(math.exp(x) / (math.exp(x) + sum(math.exp(y) for y in f))) for x in r) / len(r)
    fake_term = sum(-math.log(math.exp(-y) / (math.exp(-y) + sum(math.exp(-x) for x in r))) for y in f) / len(f)
    assert contrastive_discriminator_loss(real, fake).item() == pytest.approx(real_term + fake_term, rel=1e-12)
    assert ContrastiveDiscriminatorLoss(loss_weight=2.0)(real, fake).item() == pytest.approx(
        2 * (real_term + fake_term), rel=1e-12)
    # separating real (high) from fake (low) logits lowers the loss
    assert contrastive_discriminator_loss(real + 5, fake - 5) < contrastive_discriminator_loss(real, fake)
