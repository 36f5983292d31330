"""``basicsr export``: an option file's network as an ONNX model, checked with onnxruntime against PyTorch before it
is written (:mod:`basicsr_nlattn.tools.export`)."""
import argparse
import sys

HELP = "export an option file's network to ONNX, checked with onnxruntime against PyTorch before writing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        help='LR input size, fixed in the model (with --dynamic: the size traced and checked first)')
    parser.add_argument(
        '--dynamic',
        action='store_true',
        help='dynamic batch, height and width (not for networks with NLSA blocks: NLSN, CCLNN)')


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError / ExportError for a bad network, checkpoint, size or a model that fails the check
    (nothing written then)."""
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.export import OPSET_VERSION, export_onnx, parse_size, prepare_network
    from basicsr_nlattn.tools.onnx_network import require_onnxruntime
    size = parse_size(args.size)
    require_onnxruntime()
    prepared = prepare_network(args.opt, args.weights)
    checks = export_onnx(prepared, args.output, size, args.dynamic)
    if prepared.weights is None:  # after the export: a failed one says one line only
        sys.stderr.write('basicsr export: warning: neither --weights nor path.pretrain_network_g is set, exported '
                         f'random weights (manual_seed {prepared.seed})\n')
    axes = 'dynamic batch, height and width' if args.dynamic else 'fixed size'
    print(f'Wrote {args.output}: {prepared.arch} ({prepared.weights or "random weights"}), ONNX opset '
          f'{OPSET_VERSION}, {axes}')
    for check in checks:
        print(f'  {check.summary()}')
    return 0
