"""``basicsr plot``: the training curves of an experiment folder (:mod:`basicsr_nlattn.tools.plot`)."""
import argparse
import os

HELP = 'draw the training curves of an experiment folder (losses, learning rate, validation metrics)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('experiment', metavar='EXPERIMENT_DIR', help='experiments/<name> (its train_*.log files)')
    parser.add_argument('--output', metavar='OUT.png', help='the figure to write. Default: EXPERIMENT_DIR/curves.png')


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError when the folder holds no train log."""
    from basicsr_nlattn.tools.plot import draw_curves
    output = args.output or os.path.join(args.experiment, 'curves.png')
    source = draw_curves(args.experiment, output)
    print(f'Wrote {output} (from the {source})')
    return 0
