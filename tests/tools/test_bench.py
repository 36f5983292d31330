"""basicsr bench on tiny sizes: the rows of every method and size, JSON, and the plot drawn from the same rows
(times are measured, never asserted)."""
import json

from basicsr_nlattn import cli
from basicsr_nlattn.tools.bench_plot import benchmark_figure

METHODS = ['exact', 'ENLCA-m16', 'NLSA-r1', 'NLSA-r2', 'NLSA-r4', 'NLSA-r8']


def test_bench_writes_json_and_plot_from_the_same_rows(tmp_path, capsys):
    json_path, plot_path = tmp_path / 'bench.json', tmp_path / 'bench.png'
    code = cli.main([
        'bench', '--sizes', '6', '10', '--num_feat', '8', '--num_random_features', '16', '--repeats', '1',
        '--skip_loss', '--json',
        str(json_path), '--plot',
        str(plot_path)
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert '| 10x10 | ENLCA-m16 |' in out and f'Wrote {plot_path}' in out
    rows = json.load(open(json_path))['attention']
    assert [(row['size'], row['method']) for row in rows] == [(size, method) for size in (6, 10) for method in METHODS]
    assert all(row['seconds'] > 0 and row['memory_mb'] > 0 for row in rows)
    assert plot_path.stat().st_size > 10000
    figure = benchmark_figure(rows, 'test')
    assert len(figure.axes) == 2
    for ax in figure.axes:
        assert [line.get_label() for line in ax.get_lines()] == METHODS
        assert all(len(line.get_xdata()) == 2 for line in ax.get_lines())
        assert ax.get_xscale() == ax.get_yscale() == 'log'
