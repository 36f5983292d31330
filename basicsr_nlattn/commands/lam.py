"""``basicsr lam``: Local Attribution Maps and Diffusion Indices of one or several networks, in one figure.

For each ``-opt`` file, its ``network_g`` (with ``--weights``, else ``path.pretrain_network_g``, else random weights
seeded by ``manual_seed``) is attributed on ``--input`` for the output box ``--box`` (SR pixels) by
:mod:`basicsr_nlattn.tools.lam`. Every flag, the image, the networks and the box are checked before the first
attribution, so bad input is one line (exit 2) and nothing is written.
"""
import argparse
import os
import sys
import time
from os import path as osp
from typing import Any, Dict, List, NamedTuple, Optional

HELP = 'Local Attribution Maps (LAM) of one or more networks for an output box, with their Diffusion Index (DI)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '-opt',
        required=True,
        action='append',
        metavar='FILE',
        help='option file whose network_g is attributed; repeat for several networks (one row each)')
    parser.add_argument('--input', required=True, metavar='IMAGE', help='the LR image the networks are run on')
    parser.add_argument(
        '--box',
        required=True,
        nargs=4,
        type=int,
        metavar=('Y', 'X', 'H', 'W'),
        help='the output box in SR pixels: top row, left column, height, width (at least 2 x 2)')
    parser.add_argument('--output', required=True, metavar='OUT.png', help='the figure to write')
    parser.add_argument(
        '--weights',
        nargs='+',
        metavar='FILE',
        help='checkpoints, one per -opt in the same order (params_ema, else params); default: '
        'path.pretrain_network_g of each option file, else random weights')
    parser.add_argument('--steps', type=int, default=50, help='points on the blurring path, >= 2. Default: 50')
    parser.add_argument(
        '--sigma', type=float, default=1.2, help='Gaussian blur of the baseline, in LR pixels, > 0. Default: 1.2')
    parser.add_argument(
        '--batch', type=int, default=10, help='path points per forward and backward (bounds the memory). Default: 10')
    parser.add_argument('--json', metavar='FILE', help='also write the DIs and the settings as JSON')


def _check_flags(args: argparse.Namespace) -> None:
    from matplotlib.figure import Figure

    from basicsr_nlattn.utils import OptionError
    if args.steps < 2:
        raise OptionError(f'--steps must be >= 2, got {args.steps}')
    if args.batch < 1:
        raise OptionError(f'--batch must be >= 1, got {args.batch}')
    if not args.sigma > 0:
        raise OptionError(f'--sigma must be > 0, got {args.sigma}')
    if args.weights is not None and len(args.weights) != len(args.opt):
        raise OptionError(f'--weights: {len(args.weights)} given for {len(args.opt)} -opt files; give one per -opt, '
                          'in the same order')
    top, left, height, width = args.box
    if top < 0 or left < 0 or height < 2 or width < 2:
        raise OptionError(f'--box {top} {left} {height} {width}: Y and X must be >= 0, H and W >= 2')
    extension = osp.splitext(args.output)[1].lstrip('.').lower()
    supported = Figure().canvas.get_supported_filetypes()
    if extension not in supported:
        raise OptionError(f"--output: '{args.output}' does not end with an image type matplotlib writes "
                          f"({', '.join(sorted(supported))})")


class _Prepared(NamedTuple):
    option_file: str
    label: str  # 'ENLCN (demo_ENLCN_x4)': the arch and the option file's name
    net: Any  # nn.Module in eval mode
    weights: Optional[str]  # the checkpoint read, None for random weights
    sr: Any  # Tensor (3, H, W): the network's output for the input


def _prepare_networks(args: argparse.Namespace, lq, box) -> List[_Prepared]:
    """Every network of ``-opt``, loaded and run once on ``lq`` (1, 3, h, w), the box checked against its output
    and the scales against each other: all the checks, before any attribution."""
    import torch

    from basicsr_nlattn.tools.network_loading import load_network, weights_file
    from basicsr_nlattn.utils import OptionError, load_option_file
    prepared = []
    for index, option_file in enumerate(args.opt):
        opt = load_option_file(option_file)
        given = args.weights[index] if args.weights else None
        net, weights = load_network(opt, given), weights_file(opt, given)
        label = f"{opt['network_g']['type']} ({opt.get('name', osp.basename(option_file))})"
        try:
            with torch.no_grad():
                sr = net(lq)[0]
        except RuntimeError as error:
            first_line = str(error).strip().splitlines()[0]
            raise OptionError(f"--input: {label} cannot take the {lq.shape[2]}x{lq.shape[3]} image "
                              f"'{args.input}': {first_line}") from error
        out_h, out_w = sr.shape[-2:]
        if box.top + box.height > out_h or box.left + box.width > out_w:
            raise OptionError(f'--box {box.top} {box.left} {box.height} {box.width}: outside the {out_h}x{out_w} '
                              f'output of {label} (rows 0..{out_h - 1}, columns 0..{out_w - 1})')
        prepared.append(_Prepared(option_file, label, net, weights, sr))
    scales = sorted({item.sr.shape[-1] / lq.shape[-1] for item in prepared})
    if len(scales) > 1:
        raise OptionError(f"-opt: the networks upscale by different factors ({', '.join(f'x{s:g}' for s in scales)}); "
                          'one --box names one region only at one scale')
    return prepared


def _attribute(item: _Prepared, args: argparse.Namespace, lq, box):
    """LAM of one network with a progress bar: its figure row and its JSON record."""
    from tqdm import tqdm

    from basicsr_nlattn.tools import lam
    started = time.perf_counter()
    with tqdm(total=args.steps, desc=item.label, unit='point', file=sys.stderr) as bar:
        result = lam.path_integrated_gradients(
            item.net, lq[0], box, sigma=args.sigma, steps=args.steps, batch=args.batch, progress=bar.update)
    seconds = time.perf_counter() - started
    heat = lam.attribution_map(result.attribution)
    index = lam.diffusion_index(heat)
    crop = item.sr[:, box.top:box.top + box.height, box.left:box.left + box.width]
    difference = result.objective_input - result.objective_baseline
    total = float(result.attribution.sum())
    record = {
        'option_file': item.option_file,
        'network': item.label,
        'weights': item.weights,
        'diffusion_index': index,
        'objective_input': result.objective_input,
        'objective_baseline': result.objective_baseline,
        'attribution_sum': total,
        'completeness_relative_error': abs(total - difference) / max(abs(difference), 1e-12),
        'seconds': seconds,
    }
    return lam.LamRow(item.label, heat, index, crop), record


def _write_json(path: str, args: argparse.Namespace, lq, box, scale: float, records: List[Dict[str, Any]]) -> None:
    import json

    from basicsr_nlattn.utils.atomic_write import write_text
    settings = {
        'input': args.input,
        'input_size': list(lq.shape[-2:]),
        'box': box._asdict(),
        'scale': scale,
        'steps': args.steps,
        'sigma': args.sigma,
        'batch': args.batch,
    }
    write_text(path, json.dumps({'settings': settings, 'networks': records}, indent=2))


def run(args: argparse.Namespace) -> int:
    """``basicsr lam``: 0; bad input raises OptionError (one line, exit 2 from the dispatcher) before any write."""
    # The package is imported (compat applied, archs registered) before any of its modules, this one included.
    from basicsr_nlattn.tools import lam
    from basicsr_nlattn.tools.attention_maps import read_rgb
    from basicsr_nlattn.utils.atomic_write import save_figure
    _check_flags(args)
    lq = read_rgb(args.input)
    box = lam.Box(*args.box)
    prepared = _prepare_networks(args, lq, box)
    for item in prepared:
        if item.weights is None:
            sys.stderr.write(f"basicsr lam: warning: '{item.option_file}' has no weights (neither --weights nor "
                             'path.pretrain_network_g): random weights\n')
    rows, records = zip(*(_attribute(item, args, lq, box) for item in prepared))
    scale = prepared[0].sr.shape[-1] / lq.shape[-1]
    figure = lam.lam_figure(lq[0], box, scale, rows)
    for output in (args.output, args.json):
        if output and osp.dirname(output):
            os.makedirs(osp.dirname(output), exist_ok=True)
    save_figure(figure, args.output, dpi=80)
    if args.json:
        _write_json(args.json, args, lq, box, scale, list(records))
    print(f'Wrote {args.output}' + (f' and {args.json}' if args.json else '') + ':')
    for record in records:
        print(f"  {record['network']}: DI {record['diffusion_index']:.2f}, completeness error "
              f"{100 * record['completeness_relative_error']:.2f} %, {record['seconds']:.1f} s")
    return 0
