"""ENLCA contrastive loss (Eq. 8-10) against a brute-force full sort, value and gradient."""
import pytest
import torch
import torch.nn.functional as F
from helpers.full_sort_loss import full_sort_contrastive_loss

import basicsr_nlattn.losses.enlca_loss as enlca_loss_module
from basicsr_nlattn.archs.attention import ENLCA
from basicsr_nlattn.losses import ENLCAContrastiveLoss, enlca_contrastive_loss


def _embeddings(batch=2, positions=30, channels=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    query = F.normalize(torch.randn(batch, positions, channels, generator=generator, dtype=torch.float64), dim=-1)
    key = F.normalize(torch.randn(batch, positions, channels, generator=generator, dtype=torch.float64), dim=-1)
    return query.requires_grad_(), key.requires_grad_()


@pytest.mark.parametrize(
    'n1, n2, num_pos, negative_start',
    [
        (0.1, 0.3, 3, 9),  # fractions of N = 30
        (0.02, 0.08, 1, 2),  # the paper's fractions: round(0.6) = 1, round(2.4) = 2
        (4, 10, 4, 10),  # counts
        (5, 2, 5, 2),  # overlapping sets are allowed
    ])
@pytest.mark.parametrize('hinge', [True, False])
@pytest.mark.parametrize('chunk_elements', [7, 1 << 24])
def test_matches_full_sort_value_and_gradient(monkeypatch, n1, n2, num_pos, negative_start, hinge, chunk_elements):
    monkeypatch.setattr(enlca_loss_module, '_SIMILARITY_ELEMENTS_PER_CHUNK', chunk_elements)
    margin, amplification = 1.0 if hinge else 0.5, 6.0
    query, key = _embeddings()
    ours = enlca_contrastive_loss(query, key, n1, n2, margin, amplification, hinge=hinge)
    our_grads = torch.autograd.grad(ours, (query, key))
    reference = full_sort_contrastive_loss(query, key, num_pos, negative_start, margin, amplification, hinge)
    reference_grads = torch.autograd.grad(reference, (query, key))
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
    for our_grad, reference_grad in zip(our_grads, reference_grads):
        torch.testing.assert_close(our_grad, reference_grad, rtol=1e-9, atol=1e-12)


def test_hinge_clamps_each_query_separately():
    query, key = _embeddings(seed=3)
    hinged = enlca_contrastive_loss(query, key, 3, 3, margin=0.0, amplification=6.0)
    literal = enlca_contrastive_loss(query, key, 3, 3, margin=0.0, amplification=6.0, hinge=False)
    assert hinged.item() > literal.item()  # some per-query terms are negative, the hinge drops them
    assert hinged.item() >= 0


def test_loss_module_averages_blocks_and_applies_the_weight():
    torch.manual_seed(0)
    blocks = [ENLCA(8, reduction=2, amplification=a, num_random_features=4) for a in (2.0, 6.0)]
    x = torch.randn(2, 8, 5, 6)
    for block in blocks:
        block(x)
    loss = ENLCAContrastiveLoss(loss_weight=0.5, n1=0.1, n2=0.3)(blocks + [torch.nn.Conv2d(1, 1, 1)])
    expected = 0.5 * (enlca_contrastive_loss(*blocks[0].recorded, 0.1, 0.3, 1.0, 2.0) +
                      enlca_contrastive_loss(*blocks[1].recorded, 0.1, 0.3, 1.0, 6.0)) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert blocks[0].query_conv.weight.grad.abs().sum() > 0


def test_module_without_records_says_why():
    with pytest.raises(ValueError, match='no ENLCA block recorded'):
        ENLCAContrastiveLoss()([ENLCA(8, reduction=2).eval()])


@pytest.mark.parametrize('n1, n2, match', [
    (0.5, 0.6, r'fractions n1 \+ n2 must be <= 1'),
    (0, 5, 'n1 as a count must be >= 1'),
    (-0.1, 0.2, r'n1 as a fraction must be in \(0, 1\)'),
    (1.5, 2, r'n1 as a fraction must be in \(0, 1\)'),
    ('2%', 0.1, 'n1 must be an int count or a float fraction'),
])
def test_bad_amounts(n1, n2, match):
    query, key = _embeddings()
    with pytest.raises(ValueError, match=match):
        enlca_contrastive_loss(query, key, n1, n2, 1.0, 6.0)
    with pytest.raises(ValueError, match='ENLCAContrastiveLoss'):
        ENLCAContrastiveLoss(n1=n1, n2=n2)


def test_counts_larger_than_the_input():
    query, key = _embeddings(positions=12)
    with pytest.raises(ValueError, match=r'n1=5, n2=10 need 15 ranks but the input has only N=12'):
        enlca_contrastive_loss(query, key, 5, 10, 1.0, 6.0)


def test_bad_amplification_and_shapes():
    query, key = _embeddings()
    with pytest.raises(ValueError, match='amplification must be > 0'):
        enlca_contrastive_loss(query, key, 2, 4, 1.0, 0.0)
    with pytest.raises(ValueError, match=r'must both be \(B, N, C\)'):
        enlca_contrastive_loss(query, key[:, :5], 2, 4, 1.0, 6.0)
