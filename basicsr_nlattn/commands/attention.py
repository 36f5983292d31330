"""``basicsr attention``: where chosen query pixels attend in every ENLCA and NLSA block of an option file's network
(:mod:`basicsr_nlattn.tools.attention_maps`)."""
import argparse

HELP = "draw where chosen query pixels attend in every ENLCA and NLSA block of an option file's network"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '-opt',
        required=True,
        metavar='FILE',
        help='option file whose network_g is drawn (with path.pretrain_network_g if set, random weights otherwise)')
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


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError for a bad point, image or network."""
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.attention_maps import draw_attention
    rows = draw_attention(args.opt, args.input, [tuple(point) for point in args.point], args.output, args.force_yml)
    print(f'Wrote {args.output}: {rows} rows (block x point)')
    return 0
