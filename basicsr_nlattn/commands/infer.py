"""``basicsr infer``: super-resolve an image or a folder of images with a trained network or its ONNX model, at any
size (:mod:`basicsr_nlattn.tools.inference`; ``scripts/inference.py`` is this command)."""
import argparse

HELP = 'super-resolve an image or a folder of images with an option file\'s network (or its ONNX model), at any size'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('-opt', required=True, metavar='FILE', help='option file with network_g, scale and the weights')
    parser.add_argument('--input', required=True, help='an image or a folder of images')
    parser.add_argument('--output', required=True, help='output folder (created; never an input folder)')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument(
        '--tile',
        type=int,
        nargs=2,
        metavar=('SIZE', 'OVERLAP'),
        help="tiles in LR pixels. Default: the option's val.tile, else whole images")
    parser.add_argument('--chop', action='store_true', help="the official evaluation's four-quadrant chop")
    parser.add_argument(
        '--self_ensemble',
        action='store_true',
        help="mean over the 8 flips/rotations (x8 self-ensemble). Default: the option's val.self_ensemble")
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument(
        '--onnx',
        metavar='MODEL',
        help='run this ONNX model (basicsr export) with onnxruntime on the CPU instead of the PyTorch network')


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError (one line) before anything is written, or naming the image it cannot read or run."""
    from tqdm import tqdm

    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.inference import InferenceSettings, super_resolve_images
    settings = InferenceSettings(args.opt, args.input, args.output, args.weights,
                                 tuple(args.tile) if args.tile else None, args.chop, args.self_ensemble, args.device,
                                 args.onnx)
    count, scale, output_dir = super_resolve_images(settings,
                                                    lambda images: tqdm(images, desc='super-resolving', unit='image'))
    print(f'{count} image(s) super-resolved x{scale} into {output_dir}')
    return 0
