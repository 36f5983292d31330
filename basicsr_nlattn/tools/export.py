"""``basicsr export``: ``network_g`` of an option file as an ONNX model, checked by onnxruntime against PyTorch on
photographs before it is written (:func:`export_onnx`).

The network (:func:`~basicsr_nlattn.tools.network_loading.load_network`) is traced in eval mode by the TorchScript
exporter (opset 17). NLSA blocks are traced with their eval rotations as constants and ties in a bucket broken by
position (:func:`traceable_nlsa`), so they export at a fixed size only. Why, and the measured differences:
``docs/export.md``.
"""
import contextlib
import warnings
from os import path as osp
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.tools.network_loading import load_network, random_weights_seed, weights_file
from basicsr_nlattn.tools.onnx_network import first_line, onnxruntime_errors, require_onnxruntime, shape_text
from basicsr_nlattn.utils.atomic_write import atomic_write
from basicsr_nlattn.utils.errors import ExportError, OptionError

EXPORTABLE_ARCHS = ('ENLCN', 'NLSN', 'CCLNN', 'WithAttention')
OPSET_VERSION = 17
TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = 'lq', 'sr'
DYNAMIC_AXES = {
    INPUT_NAME: {
        0: 'batch',
        2: 'height',
        3: 'width'
    },
    OUTPUT_NAME: {
        0: 'batch',
        2: 'sr_height',
        3: 'sr_width'
    }
}


class PreparedNetwork(NamedTuple):
    net: nn.Module  # in eval mode, on the CPU
    arch: str  # network_g.type
    weights: Optional[str]  # the checkpoint loaded, None for random weights
    seed: int  # the seed of random weights (and of nothing else)


class CheckResult(NamedTuple):
    photos: str  # e.g. 'astronaut' or 'astronaut, coffee'
    input_shape: Tuple[int, ...]  # (b, c, h, w)
    output_shape: Tuple[int, ...]  # (b, c, s h, s w)
    max_difference: float  # max |onnxruntime - PyTorch|, compared against TOLERANCE
    torch_sort_difference: Optional[float]  # NLSA only: max |onnxruntime - PyTorch with torch.sort's tie order|

    def summary(self) -> str:
        """One line for ``basicsr export``: the shapes and the differences."""
        line = (f'onnxruntime against PyTorch on {self.photos}, {shape_text(self.input_shape)} -> '
                f'{shape_text(self.output_shape)}: max abs difference {self.max_difference:.1e} (tolerance '
                f'{TOLERANCE:.0e})')
        if self.torch_sort_difference is not None:
            line += (f"; against PyTorch with torch.sort's own tie order in NLSA's buckets (as basicsr test runs it "
                     f'on this machine): {self.torch_sort_difference:.1e}')
        return line


def _check_arch(opt: Dict[str, Any]) -> str:
    """``network_g.type``, one of ``EXPORTABLE_ARCHS``, with every argument checked on the meta device."""
    from basicsr_nlattn.tools.option_check import build_network_on_meta
    build_network_on_meta(opt, 'network_g')  # a mapping, a registered type, arguments its constructor accepts
    arch = opt['network_g']['type']
    if arch not in EXPORTABLE_ARCHS:
        raise OptionError(f"network_g.type: '{arch}' has no export support; exportable: {', '.join(EXPORTABLE_ARCHS)} "
                          '(WithAttention wraps any registered BasicSR network)')
    return arch


def prepare_network(option_file: str, weights: Optional[str] = None) -> PreparedNetwork:
    """``network_g`` of ``option_file`` from :func:`~basicsr_nlattn.tools.network_loading.load_network`, after
    checking that it is one of ``EXPORTABLE_ARCHS``; OptionError before anything is written."""
    from basicsr_nlattn.utils.option_file import load_option_file
    opt = load_option_file(option_file)
    arch = _check_arch(opt)
    net = load_network(opt, weights)
    return PreparedNetwork(net, arch, weights_file(opt, weights), random_weights_seed(opt))


def check_dynamic_support(net: nn.Module, arch: str) -> None:
    """Raise OptionError when ``net`` cannot be exported with dynamic height and width (NLSA blocks)."""
    blocks = [name for name, module in net.named_modules() if isinstance(module, NLSA)]
    if blocks:
        raise OptionError(f'--dynamic: {arch} cannot be exported with dynamic height and width: its NLSA blocks '
                          f"({', '.join(blocks)}) fix the bucket count and chunk padding at the traced size; export "
                          'a fixed input size with --size H W')


def input_channels(net: nn.Module) -> int:
    """Input channels of ``net``: those of its first convolution (1 or 3 for the check photographs)."""
    first = next((module for module in net.modules() if isinstance(module, nn.Conv2d)), None)
    channels = first.in_channels if first is not None else None
    if channels not in (1, 3):
        raise OptionError(f'network_g: takes {channels} input channels; the export check runs photographs, RGB (3) '
                          'or grey (1)')
    return channels


def photo_batch(names: Sequence[str], height: int, width: int, channels: int = 3) -> Tensor:
    """scikit-image's photographs ``names`` (``astronaut``, ``coffee``, ...) centre-cropped to the aspect ratio of
    ``height`` x ``width`` and resized to it (``cv2.INTER_AREA``; grey for one channel).

    Returns:
        Tensor: (len(names), channels, height, width) float32 in [0, 1].
    """
    import cv2
    from skimage import data as skimage_data

    images = []
    for name in names:
        photo = getattr(skimage_data, name)()  # (H, W, 3) uint8 RGB
        rows, cols = photo.shape[:2]
        crop_rows, crop_cols = min(rows, round(cols * height / width)), min(cols, round(rows * width / height))
        top, left = (rows - crop_rows) // 2, (cols - crop_cols) // 2
        resized = cv2.resize(
            photo[top:top + crop_rows, left:left + crop_cols], (width, height), interpolation=cv2.INTER_AREA)
        image = torch.from_numpy(resized).permute(2, 0, 1).float().div(255)  # (3, h, w)
        images.append(image.mean(0, keepdim=True) if channels == 1 else image)
    return torch.stack(images)


def check_inputs(height: int, width: int, channels: int, dynamic: bool) -> List[Tuple[str, Tensor]]:
    """The check inputs, (label, (b, c, h, w) photographs): the astronaut at ``height`` x ``width``; with ``dynamic``
    also the astronaut and the coffee as one batch of two at (height + 7) x (width + 3)."""
    inputs = [('astronaut', photo_batch(['astronaut'], height, width, channels))]
    if dynamic:
        inputs.append(('astronaut, coffee', photo_batch(['astronaut', 'coffee'], height + 7, width + 3, channels)))
    return inputs


class _DrawnOnce:
    """Stands in for ``NLSA.rotations`` of one block: the block's own eval draw, made once per size and then
    returned as the same tensor. The tracer records a tensor it did not see being made as a constant, so the graph
    holds the seeded rotations instead of a random op (a seeded generator cannot be exported at all)."""

    def __init__(self, block: NLSA) -> None:
        self.block = block
        self.drawn: Dict[Tuple[Any, ...], Tensor] = {}

    def __call__(self,
                 embed_dim: int,
                 num_positions: int,
                 device: torch.device,
                 dtype: torch.dtype = torch.float32) -> Tensor:
        key = (int(embed_dim), int(num_positions), device, dtype)  # int: under the tracer, sizes are tensors
        if key not in self.drawn:
            if torch.jit.is_tracing():
                raise RuntimeError('NLSA rotations must be drawn by an eager forward before the trace')
            self.drawn[key] = NLSA.rotations(self.block, *key)
        return self.drawn[key]


@contextlib.contextmanager
def traceable_nlsa(net: nn.Module) -> Iterator[None]:
    """Inside the block, every NLSA of ``net`` (eval) returns its rotations as tensors drawn once (``_DrawnOnce``)
    and orders the positions of a bucket by index (``NLSA.ties_by_position``); both are undone on leaving."""
    blocks = [module for module in net.modules() if isinstance(module, NLSA)]
    for block in blocks:
        block.rotations = _DrawnOnce(block)
        block.ties_by_position = True
    try:
        yield
    finally:
        for block in blocks:
            del block.rotations
            block.ties_by_position = False


def trace_to_onnx(net: nn.Module, example: Tensor, path: str, dynamic: bool) -> None:
    """``torch.onnx.export`` of ``net`` traced on ``example`` into ``path`` (the TorchScript exporter, opset 17),
    with dynamic batch, height and width when ``dynamic``; the tracer's warnings about sizes read as numbers are
    silenced (the check runs the model at a second size when ``dynamic``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export', category=DeprecationWarning)
        warnings.filterwarnings('ignore', message='The feature will be removed', category=DeprecationWarning)
        torch.onnx.export(
            net, (example, ),
            path,
            dynamo=False,
            opset_version=OPSET_VERSION,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=DYNAMIC_AXES if dynamic else None)


def _open_checked(path: str, arch: str) -> Any:
    """An onnxruntime session of the model at ``path``, after ``onnx.checker``; ExportError if it is not valid."""
    import onnx
    onnxruntime = require_onnxruntime()
    try:
        onnx.checker.check_model(path, full_check=True)
        return onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    except (onnx.checker.ValidationError, *onnxruntime_errors(onnxruntime)) as error:
        raise ExportError(f'{arch}: the exported graph is not a valid ONNX model: {first_line(error)}') from error


def _run_checks(path: str, arch: str, inputs: List[Tuple[str, Tensor]], references: List[Tensor],
                torch_sort_references: Optional[List[Tensor]], dynamic: bool) -> List[CheckResult]:
    """onnxruntime's outputs of the model at ``path`` against the PyTorch references; ExportError past TOLERANCE."""
    session = _open_checked(path, arch)
    errors = onnxruntime_errors(require_onnxruntime())
    hint = ' (export a fixed input size with --size H W)' if dynamic else ''
    results = []
    for index, (photos, lq) in enumerate(inputs):
        where = f'{photos} {shape_text(lq.shape)}'
        try:
            output = session.run(None, {INPUT_NAME: lq.numpy()})[0]
        except errors as error:
            raise ExportError(f'{arch}: onnxruntime cannot run the exported model on {where}: {first_line(error)}'
                              f'{hint}') from error
        reference = references[index].numpy()
        if output.shape != reference.shape:
            raise ExportError(f'{arch}: onnxruntime gives {shape_text(output.shape)} on {where}, PyTorch '
                              f'{shape_text(reference.shape)}{hint}')
        difference = float(np.abs(output - reference).max())
        if not difference <= TOLERANCE:
            raise ExportError(f'{arch}: onnxruntime differs from PyTorch by {difference:.2e} (max abs) on {where}, '
                              f'more than {TOLERANCE:g}{hint}')
        sort_difference = None
        if torch_sort_references is not None:
            sort_difference = float(np.abs(output - torch_sort_references[index].numpy()).max())
        results.append(CheckResult(photos, tuple(lq.shape), tuple(output.shape), difference, sort_difference))
    return results


def parse_size(size: Sequence[int]) -> Tuple[int, int]:
    """``--size H W`` as (height, width); OptionError unless both are ints >= 1."""
    height, width = size
    if height < 1 or width < 1:
        raise OptionError(f'--size: height and width must be >= 1, got {height} {width}')
    return height, width


def export_onnx(prepared: PreparedNetwork,
                output: str,
                size: Tuple[int, int] = (64, 64),
                dynamic: bool = False) -> List[CheckResult]:
    """Export ``prepared.net`` to ``output``, check it with onnxruntime against PyTorch on photographs
    (``TOLERANCE``), then give it its name (an atomic write: a model that fails the check replaces nothing).

    Args:
        prepared (PreparedNetwork): from :func:`prepare_network`.
        output (str): the ``.onnx`` file; replaced only once the check passed.
        size (tuple[int, int]): LR input (height, width), fixed in the model, or traced and checked first with
            ``dynamic``. Default: (64, 64).
        dynamic (bool): dynamic batch, height and width axes. Default: False.

    Returns:
        list[CheckResult]: one per check input (two with ``dynamic``).
    """
    require_onnxruntime()
    height, width = parse_size(size)
    if osp.isdir(output):
        raise OptionError(f"--output: '{output}' is a folder; name the .onnx file to write")
    net, arch = prepared.net, prepared.arch
    if dynamic:
        check_dynamic_support(net, arch)
    inputs = check_inputs(height, width, input_channels(net), dynamic)
    has_nlsa = any(isinstance(module, NLSA) for module in net.modules())
    with torch.no_grad():
        torch_sort_references = [net(lq) for _, lq in inputs] if has_nlsa else None
    with atomic_write(output) as temporary:  # replaced by a model that passed the check, or not at all
        with traceable_nlsa(net):
            with torch.no_grad():
                references = [net(lq) for _, lq in inputs]  # NLSA: draws the rotations the trace then holds
            trace_to_onnx(net, inputs[0][1], temporary, dynamic)
        results = _run_checks(temporary, arch, inputs, references, torch_sort_references, dynamic)
    return results
