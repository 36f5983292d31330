"""``basicsr bench --plot OUT.png``: time and peak memory of each attention method against the input size."""
from collections import OrderedDict
from typing import Any, Dict, List


def benchmark_figure(rows: List[Dict[str, Any]], title: str):
    """Two log-log panels (time, peak memory) with one line per method, from the rows of ``bench_attention``.

    Args:
        rows (list[dict]): measurements with ``method``, ``positions`` (h * w), ``seconds`` and ``memory_mb``.
        title (str): the figure title (the machine).

    Returns:
        matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    by_method: 'OrderedDict[str, List[Dict[str, Any]]]' = OrderedDict()
    for row in rows:
        by_method.setdefault(row['method'], []).append(row)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, points in by_method.items():
        points = sorted(points, key=lambda row: row['positions'])
        positions = [row['positions'] for row in points]
        style = {'linewidth': 2.5, 'color': 'black'} if method == 'exact' else {}
        axes[0].plot(positions, [1e3 * row['seconds'] for row in points], marker='o', label=method, **style)
        axes[1].plot(positions, [row['memory_mb'] for row in points], marker='o', label=method, **style)
    for ax, label in zip(axes, ('time per pass (ms)', 'peak memory (MB)')):
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('positions h x w')
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which='both')
        ax.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure
