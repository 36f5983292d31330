"""NLSA: exact attention within one chunk, Eq. 8-11 against a brute force over explicit buckets, the official block
(written from the official formulas) under the same seed, reproducible evaluation, fresh training rotations,
gradients."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from helpers.official_reference import official_nlsa
from torch.overrides import TorchFunctionMode

from basicsr_nlattn.archs.attention import NLSA
from basicsr_nlattn.archs.attention import chunk_attention as chunk_attention_module
from basicsr_nlattn.archs.attention import combine_rounds
from basicsr_nlattn.archs.attention import nlsa as nlsa_module
from basicsr_nlattn.archs.attention import spherical_hash
from basicsr_nlattn.archs.attention.bucket_attention import sparse_attention
from basicsr_nlattn.archs.attention.chunk_attention import chunk_attention_forward
from basicsr_nlattn.archs.attention.nlsa import chunked_order, num_hash_buckets


def _block(**kwargs):
    torch.manual_seed(0)
    return NLSA(16, reduction=2, **kwargs).double()


def _embeddings(block, x):
    embed = block.match_conv(x).flatten(2).transpose(1, 2)
    return embed, F.normalize(embed, dim=-1, eps=5e-5), block.value_conv(x).flatten(2).transpose(1, 2)


@pytest.mark.parametrize('n_hashes', [1, 2, 4])
@pytest.mark.parametrize('size', [(3, 4), (4, 6)])  # 12 positions < chunk, and exactly one chunk of 24
def test_one_chunk_is_exact_softmax_attention(n_hashes, size):
    block = _block(chunk_size=24, n_hashes=n_hashes, res_scale=0.5)
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    query, key, value = _embeddings(block, x)
    exact = torch.softmax(query @ key.transpose(1, 2), dim=-1) @ value
    expected = x + 0.5 * exact.transpose(1, 2).reshape(x.shape)
    for mode in (block.train, block.eval):
        mode()
        torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)


def brute_force_nlsa(query, key, value, codes, chunk_size, num_buckets):
    """Eq. 8-11 for one batch item, written per query: the official order (round-offset codes, one torch.sort),
    pad with the sorted tail, chunk, attend to the own, the previous and the next chunk (with two chunks the other
    one twice, as the official code), combine rounds by Eq. 11."""
    rounds, n = codes.shape
    offset_codes = torch.cat([codes[r] + r * num_buckets for r in range(rounds)])
    flat_order = offset_codes.sort().indices.tolist()
    rounds_out, rounds_lse = [], []
    for r in range(rounds):
        order = [j % n for j in flat_order[r * n:(r + 1) * n]]
        padding = (-n) % chunk_size
        sequence = order + order[n - padding:] if padding else order
        num_chunks = len(sequence) // chunk_size
        out, lse = torch.empty_like(value), torch.empty(n, dtype=value.dtype)
        for rank, i in enumerate(order):
            own = rank // chunk_size
            chunk_ids = [own, (own - 1) % num_chunks, (own + 1) % num_chunks]
            members = [sequence[c * chunk_size + t] for c in chunk_ids for t in range(chunk_size)]
            logits = torch.stack([query[i] @ key[j] for j in members])
            lse[i] = torch.logsumexp(logits, 0)
            out[i] = (torch.softmax(logits, 0)[:, None] * value[members]).sum(0)
        rounds_out.append(out)
        rounds_lse.append(lse)
    lse = torch.stack(rounds_lse)  # (r, n)
    total = torch.logsumexp(lse, 0)
    # Eq. 11: weight of round r = sum_{j in delta_r} f / sum_r' sum_{j in delta_r'} f
    return sum(torch.exp(lse[r] - total)[:, None] * rounds_out[r] for r in range(len(rounds_out)))


@pytest.mark.parametrize(
    'size, chunk_size, n_hashes',
    [
        ((6, 8), 8, 2),  # 6 chunks, no padding, two rounds
        ((5, 7), 8, 3),  # 35 positions: padded with the sorted tail
        ((4, 5), 8, 2),  # 3 chunks (padded)
        ((3, 5), 8, 2),  # 2 chunks: the other one twice
    ])
def test_matches_brute_force_over_explicit_buckets(size, chunk_size, n_hashes):
    block = _block(chunk_size=chunk_size, n_hashes=n_hashes, res_scale=1.0).eval()
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    query, key, value = _embeddings(block, x)
    n = size[0] * size[1]
    codes = spherical_hash(query, block.rotations(query.shape[-1], n, x.device, torch.float64))
    assert codes.unique().numel() > 1  # the buckets really partition the positions
    output = block(x)
    for item in range(2):
        expected = brute_force_nlsa(query[item], key[item], value[item], codes[item], chunk_size,
                                    num_hash_buckets(n, chunk_size))
        torch.testing.assert_close(output[item], x[item] + expected.T.reshape(16, *size), rtol=1e-9, atol=1e-11)


def _official(block, x, rotations=None):
    return official_nlsa(
        x, (block.match_conv.weight, block.match_conv.bias), (block.value_conv.weight, block.value_conv.bias),
        n_hashes=block.n_hashes,
        chunk_size=block.chunk_size,
        res_scale=block.res_scale,
        rotations=rotations)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize(
    'size',
    [
        (48, 48),  # 16 chunks of 144
        (20, 23),  # 460 positions: 4 chunks, the last padded with the sorted tail
        (13, 17),  # 221 positions: 2 chunks, the other one twice
        (12, 12),  # exactly one chunk
    ])
def test_training_mode_equals_the_official_block_under_the_same_seed(size, dtype):
    torch.manual_seed(0)
    block = NLSA(16, reduction=4, res_scale=0.5).to(dtype).train()
    x = torch.randn(2, 16, *size, dtype=dtype)
    torch.manual_seed(123)
    ours = block(x)
    ours_rng = torch.get_rng_state()
    torch.manual_seed(123)
    with torch.no_grad():
        official = _official(block, x)
    torch.testing.assert_close(torch.get_rng_state(), ours_rng)  # one draw of the official shape, nothing more
    assert (official - x).abs().max() > 1e-2
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, official, rtol=tolerance, atol=tolerance)


def test_evaluation_is_the_official_computation_with_the_seeded_rotations():
    torch.manual_seed(0)
    block = NLSA(16, reduction=4).double().eval()
    x = torch.randn(1, 16, 20, 23, dtype=torch.float64)
    rotations = block.rotations(4, 20 * 23, x.device, torch.float64)
    assert rotations.shape == (4, 4, 2)
    torch.testing.assert_close(block(x), _official(block, x, rotations), rtol=1e-12, atol=1e-12)


def test_round_combination_is_eq_11_by_hand():
    outputs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]], dtype=torch.float64)  # (b=1, r=2, n=1, c=2)
    lse = torch.log(torch.tensor([[[3.0], [1.0]]], dtype=torch.float64))  # round sums of f: 3 and 1
    rounds = [(outputs[:, r].clone(), lse[:, r]) for r in range(2)]  # combined in place
    torch.testing.assert_close(combine_rounds(rounds), torch.tensor([[[0.75, 0.25]]], dtype=torch.float64))


def test_bucket_count():
    assert num_hash_buckets(144 * 10, 144) == 10
    assert num_hash_buckets(144 * 7 + 5, 144) == 8  # made even
    assert num_hash_buckets(100000, 144) == 128
    assert num_hash_buckets(30, 144) == 2


def test_evaluation_is_reproducible_training_is_fresh():
    block = _block(chunk_size=8, n_hashes=2)
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    block.eval()
    first, second = block(x), block(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    block.train()
    torch.manual_seed(1)
    a = block(x)
    b = block(x)
    assert (a - b).abs().max() > 1e-6


def test_evaluation_is_reproducible_across_processes(tmp_path):
    code = (
        'import torch, basicsr_nlattn\n'
        'from basicsr_nlattn.archs.attention import NLSA\n'
        'torch.manual_seed(0)\n'
        'block = NLSA(16, reduction=2, chunk_size=8, n_hashes=2).double().eval()\n'
        'x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)\n'
        'torch.manual_seed(12345)\n'  # the global RNG must not matter in eval
        f'torch.save(block(x), {str(tmp_path / "out.pt")!r})\n')
    subprocess.run([sys.executable, '-c', code], check=True, capture_output=True)
    torch.manual_seed(0)
    block = NLSA(16, reduction=2, chunk_size=8, n_hashes=2).double().eval()
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.load(tmp_path / 'out.pt'), rtol=0, atol=0)


def test_gradients_reach_both_convolutions():
    block = _block(chunk_size=8, n_hashes=2).float()
    block(torch.randn(2, 16, 7, 9)).square().mean().backward()
    for conv in (block.match_conv, block.value_conv):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_n_hashes_can_change_at_test_time():
    block = _block(chunk_size=8, n_hashes=4).eval()
    state = block.state_dict()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    four = block(x)
    block.n_hashes = 8
    assert block.state_dict().keys() == state.keys()
    assert (block(x) - four).abs().max() > 1e-9


def test_yaml_style_construction_and_parameter_count():
    from basicsr.archs import build_network
    block = build_network({'type': 'NLSA', 'num_feat': 256})
    assert sum(p.numel() for p in block.parameters()) == 64 * 256 * 9 + 64 + 256 * 256 + 256
    assert (block.chunk_size, block.n_hashes) == (144, 4)


@pytest.mark.parametrize('kwargs, match', [
    ({
        'chunk_size': 0
    }, 'NLSA.chunk_size must be >= 1'),
    ({
        'n_hashes': 0
    }, 'NLSA.n_hashes must be an int >= 1'),
    ({
        'max_buckets': 3
    }, 'NLSA.max_buckets must be an even number >= 2'),
    ({
        'reduction': 32
    }, r'NLSA.reduction must be between 1 and num_feat \(16\), got 32'),
])
def test_bad_block_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NLSA(16, **kwargs)


def _official_parameters(block):
    return [block.match_conv.weight, block.match_conv.bias, block.value_conv.weight, block.value_conv.bias]


@pytest.mark.parametrize('size', [(20, 23), (13, 17), (12, 12), (7, 9)])  # padded, two chunks, one chunk, < chunk
def test_gradients_equal_autograd_through_the_official_block_in_float64(size):
    torch.manual_seed(0)
    block = NLSA(16, reduction=4, chunk_size=144 if size[0] * size[1] >= 144 else 63, res_scale=0.5).double().train()
    x = torch.randn(2, 16, *size, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(2, 16, *size, dtype=torch.float64)
    torch.manual_seed(7)
    ours = torch.autograd.grad(block(x), [x] + list(block.parameters()), upstream)
    torch.manual_seed(7)
    official_out = official_nlsa(
        x, (block.match_conv.weight, block.match_conv.bias), (block.value_conv.weight, block.value_conv.bias),
        n_hashes=block.n_hashes,
        chunk_size=block.chunk_size,
        res_scale=block.res_scale)
    official = torch.autograd.grad(official_out, [x] + _official_parameters(block), upstream)
    for name, mine, theirs in zip(['input', 'match weight', 'match bias', 'value weight', 'value bias'], ours,
                                  official):
        assert theirs.abs().max() > 0, name
        assert (mine - theirs).abs().max() <= 1e-10 * theirs.abs().max(), name


def _chunk_major(num_chunks, batch, chunk, dim, halo, seed):
    generator = torch.Generator().manual_seed(seed)
    shape = (num_chunks + (2 if halo else 0), batch, chunk, dim)
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def literal_chunk_attention(query, key, value):
    """Eq. 10 per chunk, written out: softmax of each query against the concatenated window, and its logsumexp."""
    num_chunks = query.shape[0]
    halo = key.shape[0] != num_chunks
    outputs, lses = [], []
    for j in range(num_chunks):
        window = [j, j + 1, j + 2] if halo else [j]
        keys = torch.cat([key[t] for t in window], dim=1)  # (B, 3s, c')
        values = torch.cat([value[t] for t in window], dim=1)
        logits = query[j] @ keys.transpose(1, 2)
        outputs.append(torch.softmax(logits, dim=-1) @ values)
        lses.append(torch.logsumexp(logits, dim=-1))
    return torch.stack(outputs), torch.stack(lses)


@pytest.mark.parametrize('halo', [True, False])
def test_chunk_attention_is_the_literal_softmax(halo, monkeypatch):
    monkeypatch.setattr(chunk_attention_module, 'LOGITS_PER_GROUP', 2 * 5 * 5 * 3)  # groups of two chunks
    num_chunks = 5 if halo else 1
    query = _chunk_major(num_chunks, 2, 5, 3, False, 0)
    key = _chunk_major(num_chunks, 2, 5, 3, halo, 1)
    value = _chunk_major(num_chunks, 2, 5, 4, halo, 2)
    out, lse = chunk_attention_forward(query, key, value)
    expected_out, expected_lse = literal_chunk_attention(query, key, value)
    torch.testing.assert_close(out, expected_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(lse, expected_lse, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('n, chunk', [(18, 4), (7, 4), (4, 4), (3, 8)])  # padded, two chunks, one chunk, < chunk
def test_sparse_attention_passes_gradcheck(n, chunk, monkeypatch):
    monkeypatch.setattr(chunk_attention_module, 'LOGITS_PER_GROUP', 2 * chunk * chunk * 3)
    generator = torch.Generator().manual_seed(0)
    query, key = (torch.randn(2, n, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2))
    value = torch.randn(2, n, 4, generator=generator, dtype=torch.float64).requires_grad_()
    codes = torch.randint(0, 4, (2, 3, n), generator=generator)
    order, size = chunked_order(codes, 4, chunk)
    assert torch.autograd.gradcheck(lambda q, k, v: sparse_attention(q, k, v, order, size), (query, key, value))


def test_output_does_not_depend_on_the_group_size(monkeypatch):
    block = _block(chunk_size=8, n_hashes=3).eval()
    x = torch.randn(2, 16, 9, 11, dtype=torch.float64)
    whole = block(x)
    monkeypatch.setattr(chunk_attention_module, 'LOGITS_PER_GROUP', 1)  # one chunk per group
    torch.testing.assert_close(block(x), whole, rtol=1e-13, atol=1e-13)


class _LargestTensor(TorchFunctionMode):
    """Records the most elements of any tensor a torch function returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for item in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(item, torch.Tensor):
                self.largest = max(self.largest, item.numel())
        return result


@pytest.mark.parametrize('grad', [False, True])
def test_no_tensor_of_rounds_x_positions_x_window_exists(grad, monkeypatch):
    """Neither in evaluation nor in training: the largest tensor is an input-sized one, or one group's logits."""
    monkeypatch.setattr(chunk_attention_module, 'LOGITS_PER_GROUP', 2 * 16 * 16 * 3)
    torch.manual_seed(0)
    block = NLSA(8, reduction=2, chunk_size=16, n_hashes=4).train(grad)
    x = torch.randn(1, 8, 24, 30)  # 720 positions, 45 chunks of 16
    rounds_window = 4 * 720 * 3 * 16
    with torch.set_grad_enabled(grad), _LargestTensor() as mode:
        block(x).sum()
    rotated = 4 * 720 * num_hash_buckets(720, 16) // 2  # the hashing's x R, (b, rounds, n, m / 2)
    assert mode.largest <= max(x.numel(), rotated, 2 * 16 * 16 * 3)
    assert max(x.numel(), rotated, 2 * 16 * 16 * 3) < rounds_window / 2


def test_training_saves_no_logits_for_the_backward():
    torch.manual_seed(0)
    block = NLSA(8, reduction=2, chunk_size=16, n_hashes=4).train()
    x = torch.randn(2, 8, 24, 30, requires_grad=True)
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = block(x)
    out.sum().backward()
    per_round_window = 2 * 720 * 3 * 16  # one round's logits: b x n x 3 chunk
    assert saved and max(saved) < per_round_window / 4


def test_spherical_hash_is_the_first_argmax_of_the_cross_polytope_ties_included(monkeypatch):
    """Literally argmax [x R, -x R], in blocks of positions; integer entries make ties within a half, between the
    halves (x R = -x R' for another column) and all-zero rows."""
    monkeypatch.setattr(nlsa_module, 'HASH_BLOCK_ELEMENTS', 2 * 3 * 4 * 7)  # blocks of 7 positions
    generator = torch.Generator().manual_seed(0)
    embed = torch.randint(-2, 3, (2, 40, 3), generator=generator).double()
    rotations = torch.randint(-1, 2, (3, 3, 4), generator=generator).double()
    rotations[:, :, 3] = -rotations[:, :, 1]  # a column and its negative: ties between the halves
    rotated = torch.einsum('bnc,crm->brnm', embed, rotations)
    literal = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)
    assert (rotated.amax(-1) == -rotated.amin(-1)).any()  # the constructed ties occur
    assert torch.equal(spherical_hash(embed, rotations), literal)
