"""``basicsr plot EXPERIMENT_DIR``: training curves of an experiment, from its train logs (or tensorboard events).

Every logged loss term (``l_pix``, ``l_contrast``, ``l_pcl``, ``l_d``, ...), the learning rate and each validation
metric of each validation set, against the iteration. BasicSR writes one ``train_<name>_<time>.log`` per run into
the experiment folder, a resumed run (``--auto_resume``) a new one: the logs are joined in time order, and where a
resumed run repeats iterations (it restarted from an earlier training state) its records replace the earlier ones.
When the run also wrote tensorboard events (``logger.use_tb_logger``, ``tb_logger/<name>`` beside ``experiments/``),
the losses and metrics are read from them instead (the learning rate is only in the log).
"""
import glob
import math
import re
from os import path as osp
from typing import Dict, List, NamedTuple, Optional, Tuple

import yaml

from basicsr_nlattn.utils.atomic_write import save_figure
from basicsr_nlattn.utils.errors import OptionError

TRAIN_LINE = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^)]*)\)\]')
LOSS_TERM = re.compile(r'\b(l_\w+): (\S+)')
VALIDATION_LINE = re.compile(r'Validation (\S+)\s*$')
METRIC_LINE = re.compile(r'^\s*# (\w+): ([-+0-9.eE]+|nan|inf)')

Series = Dict[str, List[Tuple[int, float]]]  # name -> [(iteration, value)], iterations increasing


class Curves(NamedTuple):
    losses: Series  # 'l_pix' -> points
    learning_rate: Series  # 'lr' (the first parameter group) -> points
    metrics: Series  # '<set>/<metric>' -> points
    source: str  # 'train logs' or 'tensorboard events'


def _validation_frequency(experiment_dir: str) -> Optional[int]:
    for option_copy in sorted(glob.glob(osp.join(experiment_dir, '*.yml'))):
        with open(option_copy, encoding='utf-8') as file:
            opt = yaml.safe_load(file) or {}
        frequency = (opt.get('val') or {}).get('val_freq')
        if isinstance(frequency, (int, float)) and frequency > 0:
            return int(frequency)
    return None


def parse_train_log(path: str, val_freq: Optional[int] = None) -> Tuple[Series, Series, Series]:
    """Losses, learning rate and validation metrics of one BasicSR train log.

    A validation is logged without its iteration: it ran at the first multiple of ``val_freq`` at or after the
    iteration logged last (without ``val_freq``, at that iteration).
    """
    losses: Series = {}
    learning_rate: Series = {'lr': []}
    metrics: Series = {}
    last_iter, validation_set, validation_iter = 0, None, 0
    with open(path, encoding='utf-8', errors='replace') as file:
        for line in file:
            train = TRAIN_LINE.search(line)
            if train:
                last_iter = int(train.group(1).replace(',', ''))
                first_lr = train.group(2).split(',')[0].strip()
                if first_lr:
                    learning_rate['lr'].append((last_iter, float(first_lr)))
                for name, value in LOSS_TERM.findall(line[train.end():]):
                    losses.setdefault(name, []).append((last_iter, float(value)))
                validation_set = None
                continue
            validation = VALIDATION_LINE.search(line)
            if validation:
                validation_set = validation.group(1)
                validation_iter = math.ceil(last_iter / val_freq) * val_freq if val_freq and last_iter else last_iter
                continue
            metric = METRIC_LINE.search(line)
            if metric and validation_set is not None:
                points = metrics.setdefault(f'{validation_set}/{metric.group(1)}', [])
                if points and points[-1][0] == validation_iter:  # BasicSR validates once more after the last iter
                    points.pop()
                points.append((validation_iter, float(metric.group(2))))
    return losses, learning_rate, metrics


def _join(runs: List[Series]) -> Series:
    """Series of consecutive runs: each run's points replace those of earlier runs from its first iteration on."""
    joined: Series = {}
    for run in runs:
        starts = [points[0][0] for points in run.values() if points]
        if not starts:
            continue
        start = min(starts)
        for name in joined:
            joined[name] = [point for point in joined[name] if point[0] < start]
        for name, points in run.items():
            joined.setdefault(name, []).extend(points)
    return {name: points for name, points in joined.items() if points}


def _tensorboard_dir(experiment_dir: str) -> Optional[str]:
    experiment_dir = osp.abspath(experiment_dir)
    candidate = osp.join(osp.dirname(osp.dirname(experiment_dir)), 'tb_logger', osp.basename(experiment_dir))
    return candidate if glob.glob(osp.join(candidate, 'events.out.tfevents.*')) else None


def _read_tensorboard(directory: str) -> Tuple[Series, Series]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    accumulator = EventAccumulator(directory, size_guidance={'scalars': 0})
    accumulator.Reload()
    losses: Series = {}
    metrics: Series = {}
    for tag in accumulator.Tags()['scalars']:
        events = sorted({event.step: event.value for event in accumulator.Scalars(tag)}.items())
        if tag.startswith('losses/'):
            losses[tag[len('losses/'):]] = events
        elif tag.startswith('metrics/'):
            metrics[tag[len('metrics/'):]] = events
    return losses, metrics


def read_curves(experiment_dir: str) -> Curves:
    """All curves of ``experiment_dir`` (see the module docstring)."""
    if not osp.isdir(experiment_dir):
        raise OptionError(f"EXPERIMENT_DIR: '{experiment_dir}' is not a folder")
    logs = sorted(glob.glob(osp.join(experiment_dir, 'train_*.log')))
    if not logs:
        raise OptionError(f"EXPERIMENT_DIR: '{experiment_dir}' holds no train_*.log (BasicSR's train log)")
    val_freq = _validation_frequency(experiment_dir)
    parsed = [parse_train_log(log, val_freq) for log in logs]
    losses = _join([run[0] for run in parsed])
    learning_rate = _join([run[1] for run in parsed])
    metrics = _join([run[2] for run in parsed])
    source = 'train logs'
    tensorboard = _tensorboard_dir(experiment_dir)
    if tensorboard is not None:
        tb_losses, tb_metrics = _read_tensorboard(tensorboard)
        if tb_losses or tb_metrics:
            losses, metrics, source = tb_losses or losses, tb_metrics or metrics, 'tensorboard events'
    if not losses and not metrics:
        raise OptionError(f"EXPERIMENT_DIR: the train logs of '{experiment_dir}' hold no logged iteration yet")
    return Curves(losses, learning_rate, metrics, source)


def curves_figure(curves: Curves, title: str):
    """A matplotlib figure (Agg): one panel for the losses (log scale), one for the learning rate, one per
    validation metric (all sets of that metric together).

    Returns:
        matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    metric_names = sorted({name.split('/', 1)[1] for name in curves.metrics})
    panels = 2 + len(metric_names)
    figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    axes = axes[0]
    for name, points in sorted(curves.losses.items()):
        positive = [(i, v) for i, v in points if v > 0]
        if positive:
            axes[0].plot(*zip(*positive), label=name)
    axes[0].set_yscale('log')
    axes[0].set_title('losses')
    for name, points in curves.learning_rate.items():
        if points:
            axes[1].plot(*zip(*points), label=name)
    axes[1].set_title('learning rate')
    for ax, metric in zip(axes[2:], metric_names):
        for name, points in sorted(curves.metrics.items()):
            if name.endswith(f'/{metric}'):
                ax.plot(*zip(*points), marker='o', markersize=3, label=name.split('/', 1)[0])
        ax.set_title(f'validation {metric}')
    for ax in axes:
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    figure.suptitle(f'{title} ({curves.source})', fontsize=9)
    figure.tight_layout()
    return figure


def draw_curves(experiment_dir: str, output: str) -> str:
    """``basicsr plot``: write the curves of ``experiment_dir`` to ``output``; returns where they were read from."""
    curves = read_curves(experiment_dir)
    figure = curves_figure(curves, osp.basename(osp.normpath(experiment_dir)))
    save_figure(figure, output)
    return curves.source
