"""ENLCA: the random-feature kernel (Eq. 4), the linear attention (Eq. 5-6), the block against the official block
written from the official formulas, its records and redraws."""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers.official_reference import official_enlca

from basicsr_nlattn.archs.attention import (ENLCA, folded_value_attention, orthogonal_gaussian_matrix,
                                            query_key_features, random_feature_attention, softmax_kernel_features)


def _unit(shape, seed):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def literal_phi(x, projection, eps):
    """Eq. 4 as written: m^-1/2 (exp(F x - |x|^2 / 2) + eps), (b, n, c) -> (b, n, m)."""
    return (torch.exp(x @ projection.T - x.pow(2).sum(-1, keepdim=True) / 2) + eps) / math.sqrt(projection.shape[0])


def literal_attention(query, key, value, projection, eps):
    """Eq. 5-6 with the explicit N x N kernel matrix of the literal features."""
    kernel = literal_phi(query, projection, eps) @ literal_phi(key, projection, eps).transpose(1, 2)
    return (kernel / kernel.sum(-1, keepdim=True)) @ value


def test_orthogonal_rows_within_a_block_and_gaussian_norms():
    matrix = orthogonal_gaussian_matrix(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert matrix.shape == (20, 8)
    block = F.normalize(matrix[:8], dim=1)
    torch.testing.assert_close(block @ block.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-10)
    many = orthogonal_gaussian_matrix(80000, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # rows are marginally N(0, I): E|f|^2 = c, and every coordinate has variance 1
    assert abs(many.pow(2).sum(1).mean().item() - 8) < 0.1
    torch.testing.assert_close(many.var(0), torch.ones(8, dtype=torch.float64), rtol=0, atol=0.03)


def test_random_features_estimate_exp_of_inner_product_without_bias():
    """Mean of phi(q).phi(k) over many draws (one large F) is exp(q.k) (Eq. 4)."""
    query, key = _unit((1, 3, 8), 0) * math.sqrt(2), _unit((1, 3, 8), 1) * math.sqrt(2)
    projection = orthogonal_gaussian_matrix(2**17, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    estimate = literal_phi(query, projection, 0)[0] @ literal_phi(key, projection, 0)[0].T
    exact = torch.exp(query[0] @ key[0].T)
    torch.testing.assert_close(estimate, exact, rtol=0.04, atol=0)


def _exact_attention(query, key, value):
    return F.scaled_dot_product_attention(query, key, value, scale=1.0)


def test_linear_attention_approaches_exact_softmax_attention_as_m_grows():
    # amplification 1: the estimator's variance grows like exp(|q + k|^2) (Eq. 7), so large k needs far more m
    query, key = _unit((2, 40, 8), 3), _unit((2, 40, 8), 4)
    value = torch.randn(2, 40, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = _exact_attention(query, key, value)
    errors = []
    for num_features in (4, 32, 256, 4096, 32768):
        per_seed = []
        for seed in range(4):
            projection = orthogonal_gaussian_matrix(
                num_features, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            approx = random_feature_attention(query, key, value, projection, eps=0)
            per_seed.append((approx - exact).norm() / exact.norm())
        errors.append(torch.stack(per_seed).mean().item())
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.02 and errors[0] > 10 * errors[-1], errors


@pytest.mark.parametrize('eps', [0, 1e-4])
@pytest.mark.parametrize('amplification', [1, 6, 12])
def test_linear_order_equals_the_literal_formula_with_its_eps(amplification, eps):
    """Eq. 5-6 in linear order, with the cancelling scale, equals the literal features' explicit N x N kernel."""
    scale = math.sqrt(amplification)
    query, key = _unit((2, 30, 8), 6) * scale, _unit((2, 30, 8), 7) * scale
    value = torch.randn(2, 30, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    projection = orthogonal_gaussian_matrix(16, 8, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    expected = literal_attention(query, key, value, projection, eps)
    torch.testing.assert_close(
        random_feature_attention(query, key, value, projection, eps=eps), expected, rtol=1e-10, atol=1e-12)


def test_features_are_the_literal_ones_up_to_a_cancelling_scale():
    """phi(q) up to one factor per query row, phi(k) up to one factor per batch item, eps included."""
    query, key = _unit((2, 7, 8), 13) * 3, _unit((2, 7, 8), 14) * 3
    projection = orthogonal_gaussian_matrix(16, 8, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    query_ratio = softmax_kernel_features(query, projection, is_query=True) / literal_phi(query, projection, 1e-4)
    key_ratio = softmax_kernel_features(key, projection, is_query=False) / literal_phi(key, projection, 1e-4)
    torch.testing.assert_close(query_ratio, query_ratio[..., :1].expand_as(query_ratio), rtol=1e-12, atol=0)
    torch.testing.assert_close(key_ratio, key_ratio[:, :1, :1].expand_as(key_ratio), rtol=1e-12, atol=0)
    assert query_ratio[..., 0].std() > 1e-3  # the scales do differ between rows: they must cancel, not be equal


def test_detached_stabiliser_keeps_the_exact_gradient():
    query = (_unit((1, 6, 4), 10) * 2).requires_grad_()
    key = (_unit((1, 6, 4), 11) * 2).requires_grad_()
    value = torch.randn(1, 6, 3, dtype=torch.float64, requires_grad=True)
    projection = orthogonal_gaussian_matrix(8, 4, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda q, k, v: random_feature_attention(q, k, v, projection, eps=0),
                                    (query, key, value))


def test_query_key_features_are_the_features_of_each():
    query, key = _unit((2, 9, 8), 16) * 2, _unit((2, 9, 8), 17) * 2
    projection = orthogonal_gaussian_matrix(16, 8, generator=torch.Generator().manual_seed(18), dtype=torch.float64)
    both = query_key_features(torch.stack([query, key], dim=1), projection)
    torch.testing.assert_close(
        both[:, 0], softmax_kernel_features(query, projection, is_query=True), rtol=1e-12, atol=0)
    torch.testing.assert_close(both[:, 1], softmax_kernel_features(key, projection, is_query=False), rtol=1e-12, atol=0)


@pytest.mark.parametrize('eps', [0, 1e-4])
def test_folded_values_equal_attention_of_the_formed_values(eps):
    """phi(K)^T (X W^T + 1 b^T) = (phi(K)^T X) W^T + (phi(K)^T 1) b^T: value and gradients equal the unfolded form's."""
    generator = torch.Generator().manual_seed(19)
    query, key = _unit((2, 30, 8), 20) * 2.5, _unit((2, 30, 8), 21) * 2.5
    inputs = torch.randn(2, 30, 6, generator=generator, dtype=torch.float64)
    weight = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    bias = torch.randn(5, generator=generator, dtype=torch.float64)
    projection = orthogonal_gaussian_matrix(16, 8, generator=torch.Generator().manual_seed(22), dtype=torch.float64)
    tensors = [t.requires_grad_() for t in (query, key, inputs, weight, bias)]
    folded = folded_value_attention(torch.stack([query, key], dim=1), inputs, weight, bias, projection, eps=eps)
    unfolded = random_feature_attention(query, key, inputs @ weight.T + bias, projection, eps=eps)
    torch.testing.assert_close(folded, unfolded, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(
        folded, literal_attention(query, key, inputs @ weight.T + bias, projection, eps), rtol=1e-10, atol=1e-12)
    upstream = torch.randn(folded.shape, generator=generator, dtype=torch.float64)
    for ours, reference in zip(
            torch.autograd.grad(folded, tensors, upstream), torch.autograd.grad(unfolded, tensors, upstream)):
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def _block(**kwargs):
    torch.manual_seed(0)
    return ENLCA(16, reduction=2, **kwargs)


def _official(block, x, amplification, res_scale):
    params = [(conv.weight, conv.bias) for conv in (block.query_conv, block.key_conv, block.value_conv)]
    return official_enlca(x, *params, block.random_features, amplification=amplification, res_scale=res_scale)


@pytest.mark.parametrize('amplification', [6, 12])
def test_block_equals_the_official_block_in_float64(amplification):
    """The official block (literal kernel, eps 1e-4, F.normalize eps 5e-5) with the same weights and F."""
    torch.manual_seed(0)
    block = ENLCA(256, amplification=amplification, res_scale=0.1).double().eval()
    x = torch.randn(2, 256, 24, 24, dtype=torch.float64)
    with torch.no_grad():
        ours, official = block(x), _official(block, x, amplification, 0.1)
    attention_term = (official - x).abs().max()
    assert attention_term > 1e-2
    assert (ours - official).abs().max() <= 1e-6 * attention_term


def test_folded_block_equals_the_literal_official_block_with_its_gradients_in_float64():
    """The folded value convolution and fused query/key convolution against the literal official computation (three
    convolutions, V formed, no stabiliser): output to 1e-10 of the attention term, and the gradients of all three
    convolutions' weights and biases and of the input."""
    torch.manual_seed(0)
    block = ENLCA(64, res_scale=0.1).double()
    x = torch.randn(2, 64, 12, 10, dtype=torch.float64, requires_grad=True)
    ours, official = block(x), _official(block, x, 6.0, 0.1)
    attention_term = (official - x).abs().max()
    assert attention_term > 1e-2
    assert (ours - official).abs().max() <= 1e-10 * attention_term
    upstream = torch.randn(ours.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inputs = [x] + [
        p for conv in (block.query_conv, block.key_conv, block.value_conv) for p in (conv.weight, conv.bias)
    ]
    for ours_grad, official_grad in zip(
            torch.autograd.grad(ours, inputs, upstream), torch.autograd.grad(official, inputs, upstream)):
        assert official_grad.abs().max() > 0
        torch.testing.assert_close(ours_grad, official_grad, rtol=1e-10, atol=1e-10 * official_grad.abs().max().item())


def test_block_matches_the_official_block_in_float32():
    torch.manual_seed(0)
    block = ENLCA(256, res_scale=0.1).eval()
    x = torch.randn(1, 256, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _official(block, x, 6.0, 0.1), rtol=1e-5, atol=1e-6)


def test_float32_stays_finite_and_official_at_256x256_with_amplification_12():
    torch.manual_seed(0)
    block = ENLCA(16, reduction=2, amplification=12, res_scale=1.0).eval()
    x = 3 * torch.randn(1, 16, 256, 256)
    with torch.no_grad():
        out = block(x)
        official = _official(block.double(), x.double(), 12.0, 1.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), official, rtol=0, atol=1e-4 * (official - x.double()).abs().max().item())


def test_normalisation_eps_is_the_official_one():
    """An embedding of norm far below 5e-5 is divided by 5e-5 (the official eps), not by its own norm."""
    block = _block().double().eval()
    for conv in (block.query_conv, block.key_conv):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.constant_(conv.bias, 1e-7)
    query, key, _ = block.embed(torch.randn(1, 16, 3, 3, dtype=torch.float64))
    torch.testing.assert_close(query.norm(dim=-1), torch.full((1, 9), 1e-7 * math.sqrt(8) / 5e-5, dtype=torch.float64))
    torch.testing.assert_close(key, query)


def test_gradients_reach_all_three_convolutions():
    block = _block()
    block(torch.randn(2, 16, 6, 6)).square().mean().backward()
    for conv in (block.query_conv, block.key_conv, block.value_conv):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('amplification', [1, 6, 12])
def test_finite_in_float32_for_large_amplification(amplification):
    block = _block(amplification=amplification)
    x = 50 * torch.randn(2, 16, 12, 12)
    out = block(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_attention_core_stays_float32_under_autocast(dtype):
    block = _block(amplification=12).eval()
    x = 10 * torch.randn(1, 16, 10, 10)
    reference = block(x)
    with torch.autocast(device_type='cpu', dtype=dtype):
        out = block(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # only the 1x1 convolutions ran in low precision
    torch.testing.assert_close(out, reference, rtol=0.05, atol=0.05 * reference.abs().max().item())


def test_records_unit_embeddings_only_in_training_with_recording_on():
    block = _block(num_random_features=8)
    x = torch.randn(2, 16, 4, 5)
    block.train()
    block(x)
    query, key = block.recorded
    assert query.shape == key.shape == (2, 20, 8)
    torch.testing.assert_close(query.norm(dim=-1), torch.ones(2, 20))
    block.clear_recorded()
    block.eval()
    block(x)
    assert block.recorded is None
    block.train()
    block.recording = False
    block(x)
    assert block.recorded is None


def test_random_features_are_a_persistent_buffer_redrawn_only_on_request():
    block = _block(num_random_features=24)
    assert block.state_dict()['random_features'].shape == (24, 8)
    before = block.random_features.clone()
    block.eval()
    block(torch.randn(1, 16, 4, 4))
    block.train()
    block(torch.randn(1, 16, 4, 4))
    torch.testing.assert_close(block.random_features, before, rtol=0, atol=0)
    block.redraw_random_features(torch.Generator().manual_seed(7))
    first = block.random_features.clone()
    assert not torch.equal(first, before)
    block.redraw_random_features(torch.Generator().manual_seed(7))
    torch.testing.assert_close(block.random_features, first, rtol=0, atol=0)
    fresh = _block(num_random_features=24)
    fresh.load_state_dict(block.state_dict())
    torch.testing.assert_close(fresh.random_features, first, rtol=0, atol=0)


def test_yaml_style_construction_and_parameter_count():
    from basicsr.archs import build_network
    block = build_network({'type': 'ENLCA', 'num_feat': 256})
    # two 1x1 convs 256 -> 64 and one 256 -> 256, as the official block
    assert sum(p.numel() for p in block.parameters()) == 2 * (256 * 64 + 64) + 256 * 256 + 256
    assert block.random_features.shape == (128, 64) and block.amplification == 6.0


@pytest.mark.parametrize('kwargs, match', [
    ({
        'amplification': 0
    }, 'ENLCA.amplification must be > 0'),
    ({
        'amplification': -1.5
    }, 'ENLCA.amplification must be > 0'),
    ({
        'num_random_features': 0
    }, 'ENLCA.num_random_features must be >= 1'),
    ({
        'reduction': 32
    }, r'ENLCA.reduction must be between 1 and num_feat \(16\), got 32'),
    ({
        'redraw_interval': -1
    }, 'ENLCA.redraw_interval must be >= 0'),
])
def test_bad_block_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ENLCA(16, **kwargs)
