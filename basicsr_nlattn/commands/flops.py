"""``basicsr flops``: GFLOPs of the attention cores beside the papers' tables, or of an option file's network per
module (:mod:`basicsr_nlattn.tools.flops`)."""
import argparse

from basicsr_nlattn.utils.errors import OptionError

HELP = "GFLOPs of the attention cores beside the papers' tables, or of an option file's network per module"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '-opt',
        metavar='FILE',
        help='count network_g of this option file (with its weights, as every command loads it) instead of the cores')
    parser.add_argument(
        '--input_size', type=int, nargs=2, default=[64, 64], metavar=('H', 'W'), help='LR input size for -opt')
    parser.add_argument('--max_depth', type=int, default=2, help='module depth of the -opt table')


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError for a bad size or option file."""
    if min(args.input_size) < 1:
        raise OptionError('--input_size must be >= 1')
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools import flops
    from basicsr_nlattn.tools.network_loading import load_network
    from basicsr_nlattn.utils.option_file import load_option_file
    if args.opt is None:
        print('Attention cores at 100x100, 64 channels in and out; GFLOPs = 2 x multiply-accumulates (mmengine).')
        print('\nENLCA paper, Table 4 setting (64-dim queries and keys):')
        print(flops.format_core_table(flops.attention_core_gflops(64), flops.ENLCA_TABLE_4, 'ENLCA Table 4'))
        print('\nNLSA paper, Table 5 setting as we read it (16-dim queries and keys: NLA 16.0 exactly):')
        print(flops.format_core_table(flops.attention_core_gflops(16), flops.NLSA_TABLE_5, 'NLSA Table 5'))
        return 0
    opt = load_option_file(args.opt)
    if 'network_g' not in opt:
        raise OptionError(f"network_g: the option file '{args.opt}' has no network_g")
    net = load_network(opt)
    height, width = args.input_size
    print(f"{opt['network_g']['type']} from {args.opt}, input 3x{height}x{width}; GFLOPs = 2 x multiply-accumulates")
    print(flops.network_complexity(net, (opt['network_g'].get('num_in_ch', 3), height, width), args.max_depth))
    return 0
