"""The floor table: multiply-adds as counted by hand, the floor and ratio arithmetic, and the benchmark's official
NLSA formula equal to the test oracle."""
import json

import pytest
import torch
from helpers.official_reference import official_nlsa

from basicsr_nlattn import cli
from basicsr_nlattn.archs.attention import ENLCA, NLSA
from basicsr_nlattn.archs.attention.nlsa import num_hash_buckets
from basicsr_nlattn.tools import bench_floor as bench_floor_module
from basicsr_nlattn.tools.bench_floor import bench_floor, format_floor_table, official_formula_nlsa
from basicsr_nlattn.tools.flops import count_macs


@pytest.mark.parametrize('size', [(20, 23), (30, 40), (5, 6)])  # padded chunks, 9 chunks, one chunk below 144
def test_nlsa_multiply_adds_are_the_hand_count(size):
    channels, embed = 16, 4
    block = NLSA(channels).eval()
    n = size[0] * size[1]
    chunk = min(144, n)
    padded = -(-n // chunk) * chunk
    window = 3 * chunk if padded > chunk else chunk
    hashing = n * embed * 4 * num_hash_buckets(n, 144) // 2 if n >= 144 else 0
    # rounds x padded queries x window x (query.key + weights.value), the 3x3 and 1x1 convolutions, the hashing
    expected = 4 * padded * window * (embed + channels) + n * 9 * channels * embed + n * channels**2 + hashing
    assert count_macs(block, (torch.randn(1, channels, *size), )) == expected


def test_enlca_multiply_adds_are_the_hand_count():
    block = ENLCA(16, num_random_features=32).eval()
    n, embed, features = 10 * 12, 4, 32
    # query|key product, features of both, phi(K)^T X, its product with W, normaliser, output
    expected = n * 16 * 2 * embed + 2 * n * embed * features + n * features * 16 + features * 16 * 16 + n * features \
        + n * features * 16
    assert count_macs(block, (torch.randn(1, 16, 10, 12), )) == pytest.approx(expected, rel=1e-3)


def test_official_formula_of_the_benchmark_is_the_oracle():
    torch.manual_seed(0)
    block = NLSA(16, res_scale=0.5).double().eval()
    x = torch.randn(2, 16, 20, 23, dtype=torch.float64)
    rotations = block.rotations(4, 20 * 23, x.device, torch.float64)
    expected = official_nlsa(
        x, (block.match_conv.weight, block.match_conv.bias), (block.value_conv.weight, block.value_conv.bias),
        res_scale=0.5,
        rotations=rotations)
    torch.testing.assert_close(official_formula_nlsa(block, x), expected, rtol=1e-12, atol=1e-12)


def test_floor_rows_and_table():
    rows = bench_floor([('NLSA', 8, 16, 20), ('ENLCA', 16, 10, 12)], repeats=1, matmul_size=64)
    assert [row['block'] for row in rows] == ['NLSA(8)', 'ENLCA(16)']
    for row in rows:
        floor_ms = 2 * row['gmacs'] * 1e9 / (row['matmul_gflops'] * 1e9) * 1e3
        assert row['floor_ms'] == pytest.approx(floor_ms)
        assert row['ratio'] == pytest.approx(row['ms'] / row['floor_ms'])
        assert row['speedup'] == pytest.approx(row['official_ms'] / row['ms'])
        assert row['relative_difference'] < 1e-5 and row['memory_mb'] > 0
    assert rows[0]['gmacs'] * 1e9 == count_macs(NLSA(8).eval(), (torch.randn(1, 8, 16, 20), ))
    table = format_floor_table(rows, 'test machine').splitlines()
    assert table[0] == 'Attention blocks against their floor (evaluation, batch 1, test machine)'
    assert len(table) == 4 + len(rows) and table[4].startswith('| NLSA(8) | 1x8x16x20 |')


def test_floor_mode_of_basicsr_bench_prints_the_table_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_floor_module, 'FLOOR_CASES', (('NLSA', 8, 16, 20), ('ENLCA', 16, 10, 12)))
    monkeypatch.setattr(bench_floor_module, 'TRAINING_CASE', (2, 8, 16, 20))
    output = tmp_path / 'floor.json'
    assert cli.main(['bench', '--floor', '--repeats', '1', '--matmul_size', '64', '--json', str(output)]) == 0
    printed = capsys.readouterr().out
    assert 'Attention blocks against their floor' in printed and '| NLSA(8) | 1x8x16x20 |' in printed
    written = json.loads(output.read_text())
    assert [row['block'] for row in written['rows']] == ['NLSA(8)', 'ENLCA(16)'] and written['machine']
    assert '| NLSA(8) | 2x8x16x20 |' in printed and written['training_step']['input'] == '2x8x16x20'


@pytest.mark.parametrize('argv, message', [
    (['--floor', '--num_feat', '32'], '--num_feat: not read by the floor mode'),
    (['--floor', '--sizes', '48'], '--sizes: a flag of the attention mode, not read by the floor mode'),
    (['--floor', '--network', 'NLSN'], '--floor: selects the floor mode, --network the network mode; give one'),
    (['--matmul_size', '512'], '--matmul_size: a flag of the floor mode, not read by the attention mode'),
    (['--floor', '--repeats', '0'], '--repeats and --matmul_size must be >= 1'),
])
def test_floor_mode_refuses_flags_it_does_not_read(argv, message, capsys):
    assert cli.main(['bench'] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_official_formula_trains_to_the_gradients_of_the_block():
    """The training row compares like with like: the benchmark's official formula and the block give the same
    input gradient (eval rotations, float64)."""
    torch.manual_seed(0)
    block = NLSA(8, chunk_size=16).double().eval()
    x = torch.randn(2, 8, 9, 10, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(block(x).square().sum(), x)[0]
    theirs = torch.autograd.grad(official_formula_nlsa(block, x).square().sum(), x)[0]
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
