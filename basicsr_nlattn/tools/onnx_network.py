"""An ONNX model of ``basicsr export`` run by onnxruntime, called like the network (:class:`OnnxNetwork`, for
``basicsr infer --onnx``), and the onnxruntime helpers the export check shares with it."""
from os import path as osp
from typing import Any, Optional, Sequence, Tuple

import torch
from torch import Tensor

from basicsr_nlattn.utils.errors import OptionError

INSTALL_HINT = 'pip install -e ".[export]"'
# onnxruntime's exceptions (pybind11 classes derived from Exception only) for a model it cannot load or run
ONNXRUNTIME_ERRORS = ('Fail', 'InvalidArgument', 'NoSuchFile', 'InvalidProtobuf', 'InvalidGraph', 'RuntimeException',
                      'NotImplemented', 'EPFail')


def require_onnxruntime() -> Any:
    """The ``onnxruntime`` module, after checking that ``onnx`` is there too; an OptionError with the install line
    when either is missing."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as error:
        raise OptionError(f'onnx and onnxruntime are needed for ONNX models ({error.name} is missing): '
                          f'{INSTALL_HINT}') from error
    return onnxruntime


def onnxruntime_errors(onnxruntime: Any) -> Tuple[type, ...]:
    """The exception classes onnxruntime raises for a model it cannot load or run."""
    state = onnxruntime.capi.onnxruntime_pybind11_state
    return tuple(getattr(state, name) for name in ONNXRUNTIME_ERRORS if hasattr(state, name))


def shape_text(shape: Sequence[int]) -> str:
    """``1x3x64x64`` for a shape."""
    return 'x'.join(map(str, shape))


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class OnnxNetwork:
    """An exported model run by onnxruntime on the CPU, called like the network: (b, c, h, w) -> (b, c, s h, s w).

    For ``basicsr infer --onnx``: whole images, tiles, chop quadrants and self-ensemble symmetries go through
    it as through the PyTorch network. A model exported at a fixed size takes inputs of that size only; a model
    whose output is not ``scale`` times its input is refused. Both raise OptionError naming the model.

    Args:
        path (str): the ``.onnx`` file (from ``basicsr export``).
        scale (int): the upscaling factor the option file gives.
    """

    def __init__(self, path: str, scale: int) -> None:
        onnxruntime = require_onnxruntime()
        if not osp.isfile(path):
            raise OptionError(f"--onnx: model '{path}' does not exist")
        try:
            self.session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        except onnxruntime_errors(onnxruntime) as error:
            raise OptionError(f"--onnx: cannot load '{path}': {first_line(error)}") from error
        self.path = path
        self.scale = scale
        self.errors = onnxruntime_errors(onnxruntime)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        # (b, c, h, w) with None for a dynamic axis
        self.input_shape = tuple(dim if isinstance(dim, int) else None for dim in model_input.shape)

    @property
    def fixed_size(self) -> Optional[Tuple[int, int]]:
        """(h, w) of a model exported at a fixed size, None for one exported with ``--dynamic``."""
        height, width = self.input_shape[2:]
        return None if height is None or width is None else (height, width)

    def _check_input(self, lq: Tensor) -> None:
        expected = 'x'.join('?' if dim is None else str(dim) for dim in self.input_shape)
        if len(lq.shape) != len(self.input_shape) or any(dim is not None and dim != actual
                                                         for dim, actual in zip(self.input_shape, lq.shape)):
            raise OptionError(f"--onnx: '{self.path}' takes {expected} inputs, got {shape_text(lq.shape)}; "
                              'export it at this size (basicsr export --size H W) or with --dynamic')

    def __call__(self, lq: Tensor) -> Tensor:
        self._check_input(lq)
        try:
            output = self.session.run(None, {self.input_name: lq.detach().cpu().float().numpy()})[0]
        except self.errors as error:
            raise OptionError(f"--onnx: onnxruntime cannot run '{self.path}' on a {shape_text(lq.shape)} "
                              f'input: {first_line(error)}') from error
        height, width = lq.shape[-2:]
        if tuple(output.shape[-2:]) != (height * self.scale, width * self.scale):
            raise OptionError(f"scale: the option file gives {self.scale}, but '{self.path}' turns {height}x{width} "
                              f'into {output.shape[-2]}x{output.shape[-1]}')
        return torch.from_numpy(output).to(lq.device)
