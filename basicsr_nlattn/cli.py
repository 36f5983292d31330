"""The ``basicsr`` command: ``basicsr train`` and ``basicsr test`` run BasicSR's own pipelines with this plugin.

basicsr 1.4.2 ships no console script, and its ``basicsr/train.py`` puts ``experiments/`` next to site-packages.
Here every run writes ``experiments/``, ``results/`` and ``tb_logger/`` under the current working directory (or
under ``path.experiments_root`` / ``path.results_root`` when the option file sets them). The flags are BasicSR's,
with BasicSR's meaning; they are passed on to ``basicsr.utils.options.parse_options`` unchanged.
"""
import argparse
import os
import sys
from typing import Callable, List, Optional

from basicsr_nlattn.commands import lam as lam_command

COMMANDS = {
    'train': 'train a network from an option file (BasicSR\'s train_pipeline)',
    'test': 'test a trained network on the datasets of an option file (BasicSR\'s test pipeline), ending with a '
    'markdown table beside the paper\'s numbers',
    'convert': 'convert an official checkpoint to this package\'s layout ({"params": state_dict})',
    'bench': 'time and memory of ENLCA against exact attention and the official formula, and of the contrastive loss '
    'against a full sort; with --network, of a whole network beside EDSR (training step, inference, an Urban100 image)',
    'flops': 'GFLOPs of the attention cores beside the papers\' tables, or of an option file\'s network per module',
    'attention': 'draw where chosen query pixels attend in every ENLCA and NLSA block of an option file\'s network',
    'plot': 'draw the training curves of an experiment folder (losses, learning rate, validation metrics)',
    'export': 'export an option file\'s network to ONNX, checked with onnxruntime against PyTorch before writing',
    'lam': lam_command.HELP,
}
PIPELINES = ('train', 'test')
# Kept here, not imported from tools.convert, so that --help does not import torch; a test keeps them in step.
CONVERTIBLE_ARCHS = ('ENLCN', 'NLSN')


def _add_pipeline_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument('-opt', required=True, metavar='FILE', help='path to the option YAML file')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher: none (one process), pytorch (under torchrun: one process per GPU, or gloo on CPU), '
        'slurm (srun). Default: none')
    if command == 'train':
        parser.add_argument(
            '--auto_resume',
            action='store_true',
            help='resume from the newest training state in <experiments_root>/training_states, if any')
        parser.add_argument(
            '--debug',
            action='store_true',
            help="prefix the experiment name with 'debug_', log every iteration, validate and save every 8")
    parser.add_argument('--local_rank', type=int, default=0, help='set by old launchers; torchrun uses LOCAL_RANK')
    parser.add_argument(
        '--force_yml',
        nargs='+',
        default=None,
        metavar='KEY=VALUE',
        help='override options, nested keys joined by ":", e.g. train:total_iter=1000 val:val_freq=500')


def build_parser(commands: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The ``basicsr`` argument parser, with a subcommand for each name in ``commands`` (default: all)."""
    parser = argparse.ArgumentParser(
        prog='basicsr',
        description='BasicSR with the basicsr_nlattn plugin (ENLCN, NLSN, CCLNN, PCL). Runs write experiments/, '
        'results/ and tb_logger/ under the current directory.',
        epilog='examples:\n  basicsr train -opt options/demo/train_demo_x4.yml\n'
        '  torchrun --nproc_per_node=4 -m basicsr_nlattn.train -opt FILE --launcher pytorch\n'
        '  basicsr test -opt options/test_ENLCN_x4.yml',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in commands or list(COMMANDS):
        subparser = subparsers.add_parser(command, help=COMMANDS[command], description=COMMANDS[command])
        if command in PIPELINES:
            _add_pipeline_arguments(subparser, command)
        elif command == 'convert':
            _add_convert_arguments(subparser)
        elif command == 'bench':
            _add_bench_arguments(subparser)
        elif command == 'attention':
            _add_attention_arguments(subparser)
        elif command == 'plot':
            _add_plot_arguments(subparser)
        elif command == 'export':
            _add_export_arguments(subparser)
        elif command == 'lam':
            lam_command.add_arguments(subparser)
        else:
            _add_flops_arguments(subparser)
    return parser


def _add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--sizes', type=int, nargs='+', default=[48, 100, 150], help='input sizes (pixels a side)')
    parser.add_argument(
        '--num_feat',
        type=int,
        default=64,
        help='channels of the block input (with --network: trunk width). Default: 64')
    parser.add_argument('--num_random_features', type=int, default=128, help='ENLCA m. Default: 128')
    parser.add_argument('--device', default='cpu', help='cpu or cuda. Default: cpu')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per row (median). Default: 3')
    parser.add_argument('--skip_loss', action='store_true', help='skip the contrastive-loss comparison')
    parser.add_argument(
        '--eval_sizes',
        type=int,
        nargs='+',
        default=[100, 200],
        help='input sizes of the ENLCA eval table (256 channels, ours against the official formula). Default: 100 200')
    parser.add_argument('--skip_eval', action='store_true', help='skip the ENLCA eval table')
    parser.add_argument('--json', metavar='FILE', help='also write the rows as JSON')
    parser.add_argument('--plot', metavar='OUT.png', help='also draw time and memory against the input size')
    network = parser.add_argument_group(
        'whole networks', 'with --network, only this table: a training step, an inference pass and one Urban100-sized '
        'image (whole, tiled, chopped) beside BasicSR\'s EDSR of the same --num_feat and --num_block (res_scale 0.1); '
        'the defaults are a CPU-sized trunk, the papers\' is --num_feat 256 --num_block 32 --batch 16')
    network.add_argument('--network', metavar='NAME', help='ENLCN, NLSN, CCLNN or EDSR')
    network.add_argument('--scale', type=int, default=4, help='upscale, 2, 3 or 4. Default: 4')
    network.add_argument('--batch', type=int, help='LR patches per training step. Default: 2 on cpu, 16 on cuda')
    network.add_argument('--size', type=int, default=48, help='LR patch side. Default: 48')
    network.add_argument('--num_block', type=int, default=8, help='residual blocks. Default: 8')
    network.add_argument('--amp', metavar='DTYPE', help='bf16 or fp16: run the passes under torch.autocast')
    network.add_argument('--compile', action='store_true', help='torch.compile both networks (timed after warm-up)')
    network.add_argument(
        '--image_size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='LR size of the whole-image rows. Default: an Urban100 image, 1024x768 HR (384 512 at x2, 192 256 at x4)')
    network.add_argument(
        '--tile',
        type=int,
        nargs=2,
        default=[128, 32],
        metavar=('SIZE', 'OVERLAP'),
        help='LR tile side and overlap of the tiled rows. Default: 128 32')


def run_network_bench(args: argparse.Namespace) -> int:
    """``basicsr bench --network NAME``: 0, or 2 with one line naming a bad flag."""
    import basicsr_nlattn  # noqa: F401
    from basicsr_nlattn.tools.bench_network import NetworkBenchSettings, run_network_benchmark
    from basicsr_nlattn.utils import OptionError
    batch = args.batch if args.batch is not None else 16 if args.device.startswith('cuda') else 2
    settings = NetworkBenchSettings(
        args.network,
        scale=args.scale,
        batch=batch,
        size=args.size,
        num_feat=args.num_feat,
        num_block=args.num_block,
        device=args.device,
        repeats=args.repeats,
        amp=args.amp,
        compile=args.compile,
        image_size=tuple(args.image_size) if args.image_size else None,
        tile=tuple(args.tile))
    try:
        run_network_benchmark(settings, json_path=args.json)
    except OptionError as error:
        sys.stderr.write(f'basicsr bench: error: {error}\n')
        return 2
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """``basicsr bench``: print the tables (and write JSON); measurements are side by side in this process."""
    if args.network is not None:
        return run_network_bench(args)
    if any(size < 1 for size in args.sizes + args.eval_sizes) or args.repeats < 1:
        sys.stderr.write('basicsr bench: error: --sizes, --eval_sizes and --repeats must be >= 1\n')
        return 2
    import basicsr_nlattn  # noqa: F401
    from basicsr_nlattn.tools.bench import run_benchmarks
    run_benchmarks(
        args.sizes,
        args.num_feat,
        args.num_random_features,
        args.device,
        args.repeats,
        with_loss=not args.skip_loss,
        eval_sizes=[] if args.skip_eval else args.eval_sizes,
        json_path=args.json,
        plot_path=args.plot)
    return 0


def _add_attention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '-opt',
        required=True,
        metavar='FILE',
        help='option file whose network_g is drawn (with '
        'path.pretrain_network_g if set, random weights otherwise)')
    parser.add_argument('--input', required=True, metavar='IMAGE', help='the (LR) image the network is run on')
    parser.add_argument(
        '--point',
        required=True,
        nargs=2,
        type=int,
        action='append',
        metavar=('Y', 'X'),
        help='a query pixel of the input image (row, column); repeat for several')
    parser.add_argument('--output', required=True, metavar='OUT.png', help='the figure to write')
    parser.add_argument(
        '--force_yml',
        nargs='+',
        default=None,
        metavar='KEY=VALUE',
        help='override options as BasicSR does, e.g. path:pretrain_network_g=experiments/NAME/models/net_g_latest.pth')


def run_attention(args: argparse.Namespace) -> int:
    """``basicsr attention``: 0, or 2 with one line for a bad point, image or network."""
    import basicsr_nlattn  # noqa: F401
    from basicsr_nlattn.tools.attention_maps import draw_attention
    from basicsr_nlattn.utils import OptionError
    try:
        rows = draw_attention(args.opt, args.input, [tuple(point) for point in args.point], args.output, args.force_yml)
    except OptionError as error:
        sys.stderr.write(f'basicsr attention: error: {error}\n')
        return 2
    print(f'Wrote {args.output}: {rows} rows (block x point)')
    return 0


def _add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('experiment', metavar='EXPERIMENT_DIR', help='experiments/<name> (its train_*.log files)')
    parser.add_argument('--output', metavar='OUT.png', help='the figure to write. Default: EXPERIMENT_DIR/curves.png')


def run_plot(args: argparse.Namespace) -> int:
    """``basicsr plot``: 0, or 2 with one line when the folder holds no train log."""
    from basicsr_nlattn.tools.plot import draw_curves
    from basicsr_nlattn.utils import OptionError
    output = args.output or os.path.join(args.experiment, 'curves.png')
    try:
        source = draw_curves(args.experiment, output)
    except OptionError as error:
        sys.stderr.write(f'basicsr plot: error: {error}\n')
        return 2
    print(f'Wrote {output} (from the {source})')
    return 0


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '-opt',
        required=True,
        metavar='FILE',
        help='option file whose network_g is exported, with the weights of --weights or path.pretrain_network_g '
        '(random weights when neither is given)')
    parser.add_argument('--output', required=True, metavar='OUT.onnx', help='the ONNX model to write (or replace)')
    parser.add_argument('--weights', metavar='FILE', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=[64, 64],
        metavar=('H', 'W'),
        help='LR input size, fixed in the model (with --dynamic: the size traced and checked first). Default: 64 64')
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch, height and width (not for networks with NLSA blocks: NLSN, CCLNN)')


def run_export(args: argparse.Namespace) -> int:
    """``basicsr export``: 0, or 2 with one line for a bad network, checkpoint, size or a model that fails the
    check (nothing written then)."""
    # isort: off
    import basicsr_nlattn  # noqa: F401  (compat first: basicsr does not import on today's torchvision without it)
    from basicsr_nlattn.tools.export import (OPSET_VERSION, ExportError, export_onnx, parse_size, prepare_network,
                                             require_onnxruntime)
    from basicsr_nlattn.utils import OptionError
    # isort: on
    try:
        size = parse_size(args.size)
        require_onnxruntime()
        prepared = prepare_network(args.opt, args.weights)
        checks = export_onnx(prepared, args.output, size, args.dynamic)
    except (OptionError, ExportError) as error:
        sys.stderr.write(f'basicsr export: error: {error}\n')
        return 2
    if prepared.weights is None:  # after the export: a failed one says one line only
        sys.stderr.write('basicsr export: warning: neither --weights nor path.pretrain_network_g is set, exported '
                         f'random weights (manual_seed {prepared.seed})\n')
    axes = 'dynamic batch, height and width' if args.dynamic else 'fixed size'
    print(f'Wrote {args.output}: {prepared.arch} ({prepared.weights or "random weights"}), ONNX opset '
          f'{OPSET_VERSION}, {axes}')
    for check in checks:
        print(f'  {check.summary()}')
    return 0


def _add_flops_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-opt', metavar='FILE', help='count network_g of this option file instead of the cores')
    parser.add_argument(
        '--input_size',
        type=int,
        nargs=2,
        default=[64, 64],
        metavar=('H', 'W'),
        help='LR input size for -opt. Default: 64 64')
    parser.add_argument('--max_depth', type=int, default=2, help='module depth of the -opt table. Default: 2')


def run_flops(args: argparse.Namespace) -> int:
    """``basicsr flops``: the attention cores in both papers' settings, or one option file's network."""
    if min(args.input_size) < 1:
        sys.stderr.write('basicsr flops: error: --input_size must be >= 1\n')
        return 2
    # isort: off
    import basicsr_nlattn  # noqa: F401  (compat first: basicsr does not import on today's torchvision without it)
    from basicsr.archs import build_network
    from basicsr_nlattn.tools import flops
    from basicsr_nlattn.utils import OptionError, load_option_file
    # isort: on
    if args.opt is None:
        print('Attention cores at 100x100, 64 channels in and out; GFLOPs = 2 x multiply-accumulates (mmengine).')
        print('\nENLCA paper, Table 4 setting (64-dim queries and keys):')
        print(flops.format_core_table(flops.attention_core_gflops(64), flops.ENLCA_TABLE_4, 'ENLCA Table 4'))
        print('\nNLSA paper, Table 5 setting as we read it (16-dim queries and keys: NLA 16.0 exactly):')
        print(flops.format_core_table(flops.attention_core_gflops(16), flops.NLSA_TABLE_5, 'NLSA Table 5'))
        return 0
    try:
        opt = load_option_file(args.opt)
        if 'network_g' not in opt:
            raise OptionError(f"network_g: the option file '{args.opt}' has no network_g")
        net = build_network(opt['network_g'])
    except OptionError as error:
        sys.stderr.write(f'basicsr flops: error: {error}\n')
        return 2
    height, width = args.input_size
    print(f"{opt['network_g']['type']} from {args.opt}, input 3x{height}x{width}; GFLOPs = 2 x multiply-accumulates")
    print(flops.network_complexity(net, (opt['network_g'].get('num_in_ch', 3), height, width), args.max_depth))
    return 0


def _add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--arch', required=True, choices=CONVERTIBLE_ARCHS, help='the official network')
    parser.add_argument('--scale', required=True, type=int, choices=[2, 3, 4], help='its upscaling factor')
    parser.add_argument('input', metavar='IN', help='official checkpoint (EDSR-PyTorch state dict, e.g. model_x4.pt)')
    parser.add_argument('output', metavar='OUT', help='converted checkpoint to write, for path.pretrain_network_g')


def run_convert(args: argparse.Namespace) -> int:
    """``basicsr convert``: returns 0, or 2 with one line naming the problem when the checkpoint does not fit."""
    import basicsr_nlattn  # noqa: F401
    from basicsr_nlattn.tools.convert import CheckpointError, convert_checkpoint
    try:
        dropped = convert_checkpoint(args.arch, args.scale, args.input, args.output)
    except CheckpointError as error:
        sys.stderr.write(f'basicsr convert: error: {error}\n')
        return 2
    print(f'Wrote {args.output}: official {args.arch} x{args.scale} in our layout ({{"params": ...}}); dropped '
          f'{", ".join(dropped) or "nothing"} (the mean is a derived buffer). Use it with\n'
          f'  path: {{pretrain_network_g: {args.output}, strict_load_g: true}}')
    return 0


def _pipeline(command: str) -> Callable[[str], None]:
    import basicsr_nlattn  # noqa: F401  (applies compat, registers our archs, losses and models)
    if command == 'train':
        from basicsr_nlattn.tools.train import train_pipeline
        return train_pipeline
    from basicsr_nlattn.tools.test import test_pipeline
    return test_pipeline


def run_pipeline(command: str, option_file: str, pipeline_argv: List[str]) -> int:
    """Run BasicSR's train or test pipeline with ``pipeline_argv`` (BasicSR's flags) from the working directory.

    Returns:
        int: 0 on success, 2 when an option is rejected (OptionError, one line): by the pre-flight check, before
        anything was written, or by a network, loss or model as BasicSR builds it; for a training run that stopped
        early (RunStopped, one line), its code: 2 unreadable data or a failed save, 3 non-finite updates, 75
        preempted by SIGTERM, SIGINT or SIGUSR1 (continue with ``--auto_resume``).
    """
    from basicsr_nlattn.utils import OptionError, RunStopped, load_option_file
    try:
        load_option_file(option_file)
        pipeline = _pipeline(command)
        saved_argv = sys.argv
        sys.argv = [f'basicsr {command}'] + pipeline_argv
        try:
            pipeline(os.getcwd())
        finally:
            sys.argv = saved_argv
    except OptionError as error:
        sys.stderr.write(f'basicsr {command}: error: {error}\n')
        return 2
    except RunStopped as stopped:
        sys.stderr.write(f'basicsr {command}: {stopped}\n')
        return stopped.exit_code
    return 0


def _run_command(command: str, run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """A command module's ``run``, with the package's OptionError as one line and exit 2."""
    from basicsr_nlattn.utils import OptionError
    try:
        return run(args)
    except OptionError as error:
        sys.stderr.write(f'basicsr {command}: error: {error}\n')
        return 2


def _forwarded_argv(args: argparse.Namespace) -> List[str]:
    argv = ['-opt', args.opt, '--launcher', args.launcher, '--local_rank', str(args.local_rank)]
    for flag in ('auto_resume', 'debug'):
        if getattr(args, flag, False):
            argv.append(f'--{flag}')
    if args.force_yml:
        argv += ['--force_yml'] + args.force_yml
    return argv


def main(argv: Optional[List[str]] = None, commands: Optional[List[str]] = None) -> int:
    """Entry point of ``basicsr`` (and, with ``commands=['train']``, of ``python -m basicsr_nlattn.train``)."""
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if args.command == 'convert':
        return run_convert(args)
    if args.command == 'bench':
        return run_bench(args)
    if args.command == 'flops':
        return run_flops(args)
    if args.command == 'attention':
        return run_attention(args)
    if args.command == 'plot':
        return run_plot(args)
    if args.command == 'export':
        return run_export(args)
    if args.command == 'lam':
        return _run_command('lam', lam_command.run, args)
    return run_pipeline(args.command, args.opt, _forwarded_argv(args))


def module_main(command: str) -> int:
    """``python -m basicsr_nlattn.<command> -opt FILE ...``: the same as ``basicsr <command> -opt FILE ...``."""
    return main([command] + sys.argv[1:], commands=[command])


if __name__ == '__main__':
    sys.exit(main())
