"""Super-resolve one image or a folder of images with a trained network, at any size.

    python scripts/inference.py -opt options/test_ENLCN_x4.yml --input photos/ --output results/photos_x4
    python scripts/inference.py -opt FILE --input img.png --output out/ --weights net_g_latest.pth --tile 128 32
    python scripts/inference.py -opt FILE --input photos/ --output out/ --onnx model.onnx   # from basicsr export

The network (``network_g``), scale and weights (``path.pretrain_network_g``, or ``--weights``) come from the option
file; tiling from ``--tile SIZE OVERLAP`` / ``--chop``, else the option's ``val.tile``, else whole images; the x8
self-ensemble with ``--self_ensemble`` or the option's ``val.self_ensemble``. With ``--onnx MODEL`` onnxruntime
runs the model of ``basicsr export`` instead of the PyTorch network (the option file still gives the scale, tiling
and self-ensemble; a model exported at a fixed size takes only inputs of that size, so tiles and chop quadrants need
one exported with ``--dynamic``). Outputs are written as
``<name>_x<scale>.png`` into ``--output``, which must not be an input folder: inputs are never overwritten. Bad
options (``scale``, ``network_g``, ``val.tile``, ``val.self_ensemble``: the checks of ``basicsr test``) stop it with
one line before anything is written.
"""
import argparse
import os
import sys
from os import path as osp
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    from basicsr_nlattn.tools.export import OnnxNetwork

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


def list_images(input_path: str) -> List[str]:
    if osp.isfile(input_path):
        return [input_path]
    if not osp.isdir(input_path):
        raise FileNotFoundError(f"--input: '{input_path}' is neither an image nor a folder")
    images = sorted(
        osp.join(input_path, name) for name in os.listdir(input_path) if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise FileNotFoundError(f"--input: no images ({', '.join(IMAGE_EXTENSIONS)}) in '{input_path}'")
    return images


def network_state(args: argparse.Namespace, opt: Dict[str, Any]) -> Dict[str, Any]:
    """The weights of ``--weights``, else ``path.pretrain_network_g`` (``read_network_state``: ``params_ema``,
    else ``params``, else the file's own mapping); OptionError when the file does not exist or is not a
    checkpoint."""
    from basicsr_nlattn.utils import OptionError
    from basicsr_nlattn.utils.checkpoint_files import read_network_state
    weights = args.weights or (opt.get('path') or {}).get('pretrain_network_g')
    if not weights or not osp.isfile(weights):
        raise OptionError(f"path.pretrain_network_g (or --weights): checkpoint '{weights}' does not exist")
    return read_network_state(weights, '--weights' if args.weights else 'path.pretrain_network_g')


def open_onnx_model(args: argparse.Namespace, scale: int, tile: Optional[Dict[str, Any]],
                    self_ensemble: bool) -> 'OnnxNetwork':
    """The ``--onnx`` model (an ``OnnxNetwork``), after checking what it cannot do: it carries its own weights,
    runs on onnxruntime's CPU provider, and a model exported at a fixed size takes neither tiles nor chop quadrants
    (other sizes), nor, unless square, the rotated self-ensemble inputs."""
    from basicsr_nlattn.tools.export import OnnxNetwork
    from basicsr_nlattn.utils import OptionError
    if args.weights:
        raise OptionError('--weights: an ONNX model carries its own weights; drop --weights or --onnx')
    if args.device != 'cpu':
        raise OptionError(f"--device {args.device}: --onnx runs on onnxruntime's CPU provider; drop --device")
    net = OnnxNetwork(args.onnx, scale)
    size = net.fixed_size
    if size is not None and tile is not None:
        raise OptionError(f"--onnx: '{args.onnx}' takes {size[0]}x{size[1]} inputs only, so tiles and chop quadrants "
                          '(--tile, --chop or val.tile) need a model exported with basicsr export --dynamic')
    if size is not None and self_ensemble and size[0] != size[1]:
        raise OptionError(f"--onnx: '{args.onnx}' takes {size[0]}x{size[1]} inputs only, so the self-ensemble's "
                          'rotated inputs need a square size or a model exported with basicsr export --dynamic')
    return net


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='option file with network_g, scale and the weights')
    parser.add_argument('--input', required=True, help='an image or a folder of images')
    parser.add_argument('--output', required=True, help='output folder (created; never an input folder)')
    parser.add_argument('--weights', help='checkpoint to use instead of path.pretrain_network_g')
    parser.add_argument('--tile', type=int, nargs=2, metavar=('SIZE', 'OVERLAP'), help='tiles in LR pixels')
    parser.add_argument('--chop', action='store_true', help="the official evaluation's four-quadrant chop")
    parser.add_argument(
        '--self_ensemble',
        action='store_true',
        help='mean over the 8 flips/rotations (x8 self-ensemble; default: the option\'s val.self_ensemble)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda. Default: cpu')
    parser.add_argument(
        '--onnx',
        metavar='MODEL',
        help='run this ONNX model (basicsr export) with onnxruntime on the CPU instead of the PyTorch network')
    args = parser.parse_args()

    # isort: off
    import basicsr_nlattn  # noqa: F401  (compat first: basicsr does not import on today's torchvision without it)
    import cv2
    import torch
    from basicsr.archs import build_network
    from basicsr.utils import img2tensor, tensor2img
    from tqdm import tqdm
    from basicsr_nlattn.models.tiled_inference import parse_self_ensemble, parse_tile_options, super_resolve
    from basicsr_nlattn.tools.option_check import check_inference_options
    from basicsr_nlattn.utils import OptionError, load_option_file
    # isort: on

    try:
        opt = load_option_file(args.opt)
        check_inference_options(opt)  # basicsr train|test's pre-flight check, for what this script reads
        images = list_images(args.input)
        state = None if args.onnx else network_state(args, opt)
        output_dir = osp.abspath(args.output)
        if output_dir in {osp.dirname(osp.abspath(image)) for image in images}:
            raise OptionError(f"--output: '{args.output}' holds the inputs; choose a separate folder")
        if args.tile:
            tile = parse_tile_options({'size': args.tile[0], 'overlap': args.tile[1]})
        else:
            tile = parse_tile_options({'mode': 'chop'} if args.chop else (opt.get('val') or {}).get('tile'))
        self_ensemble = args.self_ensemble or parse_self_ensemble((opt.get('val') or {}).get('self_ensemble', False))
        onnx_net = open_onnx_model(args, opt['scale'], tile, self_ensemble) if args.onnx else None
    except (OptionError, FileNotFoundError, ValueError) as error:
        sys.stderr.write(f'inference: error: {error}\n')
        return 2

    scale = opt['scale']
    device = torch.device(args.device)
    if onnx_net is None:
        net = build_network(opt['network_g'])
        net.load_state_dict(state, strict=True)
        net.eval().to(device)
    else:
        net = onnx_net
    os.makedirs(output_dir, exist_ok=True)
    for image_path in tqdm(images, desc='super-resolving', unit='image'):
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            sys.stderr.write(f"inference: error: cannot read the image '{image_path}'\n")
            return 2
        lq = img2tensor(image.astype('float32') / 255., bgr2rgb=True, float32=True).unsqueeze(0).to(device)
        try:
            with torch.no_grad():
                sr = super_resolve(net, lq, scale, tile, self_ensemble)
        except OptionError as error:  # an ONNX model that does not take this image (fixed size, other scale)
            sys.stderr.write(f"inference: error: '{image_path}': {error}\n")
            return 2
        name = osp.splitext(osp.basename(image_path))[0]
        cv2.imwrite(osp.join(output_dir, f'{name}_x{scale}.png'), tensor2img(sr))
    print(f'{len(images)} image(s) super-resolved x{scale} into {output_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
