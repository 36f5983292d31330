"""``basicsr infer``: super-resolve one image or a folder of images with an option file's network, or with its ONNX
model (:class:`~basicsr_nlattn.tools.onnx_network.OnnxNetwork`), whole, tiled or chopped, with or without the x8
self-ensemble. Every option is checked, and the weights read, before anything is written; inputs are never
overwritten.
"""
import os
from os import path as osp
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from basicsr_nlattn.models.tiled_inference import parse_self_ensemble, parse_tile_options, super_resolve
from basicsr_nlattn.tools.network_loading import load_network, weights_file
from basicsr_nlattn.tools.onnx_network import OnnxNetwork
from basicsr_nlattn.tools.option_check import check_inference_options
from basicsr_nlattn.utils.atomic_write import write_bytes
from basicsr_nlattn.utils.errors import OptionError
from basicsr_nlattn.utils.option_file import load_option_file

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')


class InferenceSettings(NamedTuple):
    """The flags of ``basicsr infer`` (``commands/infer.py`` documents each)."""
    option_file: str
    input: str
    output: str
    weights: Optional[str] = None
    tile: Optional[Tuple[int, int]] = None  # (size, overlap) in LR pixels
    chop: bool = False
    self_ensemble: bool = False
    device: str = 'cpu'
    onnx: Optional[str] = None


def list_images(input_path: str) -> List[str]:
    """``input_path`` itself, or the images (``IMAGE_EXTENSIONS``) of the folder ``input_path``, sorted."""
    if osp.isfile(input_path):
        return [input_path]
    if not osp.isdir(input_path):
        raise OptionError(f"--input: '{input_path}' is neither an image nor a folder")
    images = sorted(
        osp.join(input_path, name) for name in os.listdir(input_path) if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise OptionError(f"--input: no images ({', '.join(IMAGE_EXTENSIONS)}) in '{input_path}'")
    return images


def open_onnx_model(settings: InferenceSettings, scale: int, tile: Optional[Dict[str, Any]],
                    self_ensemble: bool) -> OnnxNetwork:
    """The ``--onnx`` model, after checking what it cannot do: it carries its own weights, runs on onnxruntime's CPU
    provider, and a model exported at a fixed size takes neither tiles nor chop quadrants (other sizes), nor, unless
    square, the rotated self-ensemble inputs."""
    if settings.weights:
        raise OptionError('--weights: an ONNX model carries its own weights; drop --weights or --onnx')
    if settings.device != 'cpu':
        raise OptionError(f"--device {settings.device}: --onnx runs on onnxruntime's CPU provider; drop --device")
    net = OnnxNetwork(settings.onnx, scale)
    size = net.fixed_size
    if size is not None and tile is not None:
        raise OptionError(f"--onnx: '{settings.onnx}' takes {size[0]}x{size[1]} inputs only, so tiles and chop "
                          'quadrants (--tile, --chop or val.tile) need a model exported with basicsr export --dynamic')
    if size is not None and self_ensemble and size[0] != size[1]:
        raise OptionError(f"--onnx: '{settings.onnx}' takes {size[0]}x{size[1]} inputs only, so the self-ensemble's "
                          'rotated inputs need a square size or a model exported with basicsr export --dynamic')
    return net


def _read_lq(image_path: str, device: torch.device) -> Tensor:
    """(1, 3, h, w) RGB in [0, 1] of an image file; OptionError naming a file OpenCV cannot read."""
    import cv2
    from basicsr.utils import img2tensor

    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if image is None:
        raise OptionError(f"--input: cannot read the image '{image_path}'")
    return img2tensor(image.astype('float32') / 255., bgr2rgb=True, float32=True).unsqueeze(0).to(device)


def super_resolve_images(settings: InferenceSettings,
                         progress: Callable[[List[str]], Any] = iter) -> Tuple[int, int, str]:
    """Write ``<name>_x<scale>.png`` into ``settings.output`` for every input image.

    The options (``scale``, ``network_g``, ``val.tile``, ``val.self_ensemble``: the checks of ``basicsr test``),
    the inputs, the output folder, the weights (:func:`~basicsr_nlattn.tools.network_loading.load_network`) or the
    ONNX model are checked first: an OptionError then leaves nothing written. Tiling comes from ``tile`` / ``chop``,
    else the option's ``val.tile``, else whole images; the self-ensemble from ``self_ensemble`` or
    ``val.self_ensemble``.

    Args:
        settings (InferenceSettings): the flags.
        progress (callable): wraps the list of images while they are processed (e.g. ``tqdm``). Default: iter.

    Returns:
        tuple[int, int, str]: the number of images, the scale and the output folder (absolute).
    """
    from basicsr.utils import tensor2img

    opt = load_option_file(settings.option_file)
    check_inference_options(opt)
    images = list_images(settings.input)
    output_dir = osp.abspath(settings.output)
    if output_dir in {osp.dirname(osp.abspath(image)) for image in images}:
        raise OptionError(f"--output: '{settings.output}' holds the inputs; choose a separate folder")
    if settings.tile:
        tile = parse_tile_options({'size': settings.tile[0], 'overlap': settings.tile[1]})
    else:
        tile = parse_tile_options({'mode': 'chop'} if settings.chop else (opt.get('val') or {}).get('tile'))
    self_ensemble = settings.self_ensemble or parse_self_ensemble((opt.get('val') or {}).get('self_ensemble', False))
    scale = opt['scale']
    device = torch.device(settings.device)
    if settings.onnx:
        net = open_onnx_model(settings, scale, tile, self_ensemble)
    else:
        if not weights_file(opt, settings.weights):
            raise OptionError('path.pretrain_network_g (or --weights): no checkpoint given')
        net = load_network(opt, settings.weights).to(device)
    import cv2
    for image_path in progress(images):
        lq = _read_lq(image_path, device)
        try:
            with torch.no_grad():
                sr = super_resolve(net, lq, scale, tile, self_ensemble)
        except OptionError as error:  # an ONNX model that does not take this image (fixed size, other scale)
            raise OptionError(f"'{image_path}': {error}") from error
        name = osp.splitext(osp.basename(image_path))[0]
        encoded = cv2.imencode('.png', tensor2img(sr))[1]
        write_bytes(osp.join(output_dir, f'{name}_x{scale}.png'), encoded.tobytes())
    return len(images), scale, output_dir
