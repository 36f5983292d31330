"""Attention-core complexity counted by mmengine against closed forms and against the papers' tables."""
import pytest
from helpers.runs import REPO_ROOT, check_ok, run_basicsr

from basicsr_nlattn import cli
from basicsr_nlattn.tools.flops import ENLCA_TABLE_4, attention_core_gflops


@pytest.fixture(scope='module')
def table_4_rows():
    return {row['name']: row['gflops'] for row in attention_core_gflops(64)}


def test_enlca_table_4_is_reproduced(table_4_rows):
    for name in ['NLA', 'conv3x3'] + [f'ENLCA-m{m}' for m in (256, 128, 64, 32, 16, 8, 4, 2)]:
        assert round(table_4_rows[name], 2) == pytest.approx(ENLCA_TABLE_4[name], abs=0.011), name


def test_counts_follow_the_closed_forms():
    size, qk, v = 30, 16, 64
    n = size * size
    rows = {row['name']: row['gflops'] for row in attention_core_gflops(qk, v, size)}
    # mmengine prices a general einsum through numpy's einsum_path, which adds a few thousand MACs: rel 1e-3
    assert rows['NLA'] == pytest.approx(2 * n * n * (qk + v) / 1e9, rel=1e-3)
    for m in (2, 128):
        # phi(Q), phi(K): n m qk each; phi(K)^T V: n m v; D: n m; phi(Q) context: n m v
        assert rows[f'ENLCA-m{m}'] == pytest.approx(2 * (2 * n * m * qk + 2 * n * m * v + n * m) / 1e9, rel=1e-3)
    chunks = -(-n // 144)
    per_round = chunks * 144 * 3 * 144 * (qk + v) + n * qk * (n // 144 + (n // 144) % 2) // 2
    for r in (1, 2, 4, 8):
        assert rows[f'NLSA-r{r}'] == pytest.approx(2 * r * per_round / 1e9, rel=1e-3)


def test_nlsa_table_5_nla_setting():
    rows = {row['name']: row['gflops'] for row in attention_core_gflops(16)}
    assert round(rows['NLA'], 1) == 16.0


def test_cli_flops_of_an_option_file(tmp_path):
    result = run_basicsr(['flops', '-opt', f'{REPO_ROOT}/options/train_NLSN_x2.yml', '--input_size', '12', '12'],
                         cwd=str(tmp_path))
    check_ok(result)
    assert '| (total) | 41.796 |' in result.stdout and '| body.0 |' in result.stdout


def test_cli_flops_names_a_missing_option_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(['flops', '-opt', 'nope.yml']) == 2
    assert capsys.readouterr().err == "basicsr flops: error: -opt: option file 'nope.yml' does not exist\n"


def test_cli_flops_names_a_bad_network_option(tmp_path, capsys):
    option_file = tmp_path / 'option.yml'
    option_file.write_text('network_g: {type: ENLCN, num_feat: 8, num_block: 0}\n')
    assert cli.main(['flops', '-opt', str(option_file)]) == 2
    assert capsys.readouterr().err == 'basicsr flops: error: network_g.num_block: must be >= 1, got 0\n'
