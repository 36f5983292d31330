"""basicsr bench on tiny sizes: the rows of every method and size, JSON, and the plot drawn from the same rows;
the ENLCA eval table's rows and their agreement with the official formula (times are measured, never asserted)."""
import json

import pytest

from basicsr_nlattn import cli
from basicsr_nlattn.tools.bench_plot import benchmark_figure

METHODS = ['exact', 'ENLCA-m16', 'NLSA-r1', 'NLSA-r2', 'NLSA-r4', 'NLSA-r8']


def test_bench_writes_json_and_plot_from_the_same_rows(tmp_path, capsys):
    json_path, plot_path = tmp_path / 'bench.json', tmp_path / 'bench.png'
    code = cli.main([
        'bench', '--sizes', '6', '10', '--num_feat', '8', '--num_random_features', '16', '--repeats', '1',
        '--skip_loss', '--skip_eval', '--json',
        str(json_path), '--plot',
        str(plot_path)
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert '| 10x10 | ENLCA-m16 |' in out and f'Wrote {plot_path}' in out
    results = json.load(open(json_path))
    assert 'enlca_eval' not in results and 'official formula' not in out
    rows = results['attention']
    assert [(row['size'], row['method']) for row in rows] == [(size, method) for size in (6, 10) for method in METHODS]
    assert all(row['seconds'] > 0 and row['memory_mb'] > 0 for row in rows)
    assert plot_path.stat().st_size > 10000
    figure = benchmark_figure(rows, 'test')
    assert len(figure.axes) == 2
    for ax in figure.axes:
        assert [line.get_label() for line in ax.get_lines()] == METHODS
        assert all(len(line.get_xdata()) == 2 for line in ax.get_lines())
        assert ax.get_xscale() == ax.get_yscale() == 'log'


def test_bench_eval_table_at_tiny_sizes_agrees_with_the_official_formula(tmp_path, capsys):
    json_path = tmp_path / 'bench.json'
    code = cli.main([
        'bench', '--sizes', '4', '--num_feat', '8', '--num_random_features', '8', '--repeats', '1', '--skip_loss',
        '--eval_sizes', '6', '9', '--json',
        str(json_path)
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert 'ENLCA eval against the official formula' in out and '| 9x9 | 256 |' in out
    rows = json.load(open(json_path))['enlca_eval']
    assert [(row['size'], row['channels']) for row in rows] == [(6, 256), (9, 256)]
    for row in rows:
        assert row['ours_seconds'] > 0 and row['official_seconds'] > 0
        assert abs(row['speedup'] - row['official_seconds'] / row['ours_seconds']) < 1e-12
        assert row['relative_difference'] < 1e-5  # float32: the same output as the official formula


def test_bench_rejects_a_bad_eval_size(capsys):
    assert cli.main(['bench', '--eval_sizes', '0']) == 2
    assert '--eval_sizes' in capsys.readouterr().err


@pytest.mark.parametrize('flags, message', [
    (['--network', 'ENLCN', '--sizes', '4'], '--sizes: a flag of the attention mode, not read by the network mode '
     '(selected by --network)'),
    (['--network', 'ENLCN', '--skip_loss'], '--skip_loss: a flag of the attention mode, not read by the network mode'),
    (['--batch', '2'], '--batch: a flag of the network mode, not read by the attention mode '
     '(without --network or --floor)'),
    (['--compile', '--sizes', '4'], '--compile: a flag of the network mode, not read by the attention mode'),
])
def test_a_flag_of_another_mode_is_one_line_and_exit_2(capsys, flags, message):
    assert cli.main(['bench'] + flags) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f'basicsr bench: error: {message}') and captured.out == ''
    assert len(captured.err.splitlines()) == 1


def test_each_mode_gets_its_defaults():
    from basicsr_nlattn.commands.bench import selected_mode
    parser = cli.build_parser(['bench'])
    args = parser.parse_args(['bench', '--network', 'NLSN'])
    assert selected_mode(args).name == 'network'
    assert (args.scale, args.size, args.num_block, args.tile, args.batch, args.compile) == (4, 48, 8, [128,
                                                                                                       32], None, False)
    args = parser.parse_args(['bench'])
    assert selected_mode(args).name == 'attention'
    assert (args.sizes, args.eval_sizes, args.num_random_features, args.skip_loss) == ([48, 100,
                                                                                        150], [100, 200], 128, False)
