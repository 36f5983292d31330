"""``basicsr convert``: an official ENLCN or NLSN checkpoint in this package's layout
(:mod:`basicsr_nlattn.tools.convert`)."""
import argparse

HELP = 'convert an official checkpoint to this package\'s layout ({"params": state_dict})'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from basicsr_nlattn.tools.convert import NETWORKS
    parser.add_argument('--arch', required=True, choices=sorted(NETWORKS), help='the official network')
    parser.add_argument('--scale', required=True, type=int, choices=[2, 3, 4], help='its upscaling factor')
    parser.add_argument('input', metavar='IN', help='official checkpoint (EDSR-PyTorch state dict, e.g. model_x4.pt)')
    parser.add_argument('output', metavar='OUT', help='converted checkpoint to write, for path.pretrain_network_g')


def run(args: argparse.Namespace) -> int:
    """0, or raises CheckpointError naming the key when the checkpoint is not the official network asked for."""
    from basicsr_nlattn.tools.convert import convert_checkpoint
    dropped = convert_checkpoint(args.arch, args.scale, args.input, args.output)
    print(f'Wrote {args.output}: official {args.arch} x{args.scale} in our layout ({{"params": ...}}); dropped '
          f'{", ".join(dropped) or "nothing"} (the mean is a derived buffer). Use it with\n'
          f'  path: {{pretrain_network_g: {args.output}, strict_load_g: true}}')
    return 0
