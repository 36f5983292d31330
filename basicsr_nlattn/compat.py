"""Fixes that basicsr 1.4.2 needs on today's torch, torchvision and CPU-only machines, and for runs of days.

Every fix is applied once, on ``import basicsr_nlattn``, and only where the installed versions need it. Each one is
covered by a test in ``tests/test_compat.py`` that fails without it. basicsr 1.4.2 is the last release (sdist only),
so these patches stay here instead of upstream. (Resuming, which basicsr's ``load_resume_state`` cannot do on a
CPU or under another experiment root, is :mod:`basicsr_nlattn.training.resume`'s work, not a patch.)

1. ``torchvision.transforms.functional_tensor`` was removed in torchvision 0.17; ``basicsr/data/degradations.py``
   imports ``rgb_to_grayscale`` from it, so ``import basicsr`` fails. We register a module of that name that serves
   the function from ``torchvision.transforms.functional``.
2. ``basicsr.utils.options.parse_options`` overwrites ``path.experiments_root`` / ``path.results_root`` given in the
   option file, so an experiment cannot live outside ``<cwd>/experiments``. Our wrapper honours them, then runs
   the checks that the caller has put in place with :func:`after_parse_options` (none by default), before BasicSR
   makes or renames any folder.
3. ``basicsr.utils.dist_util._init_dist_pytorch`` hard-codes NCCL and ``rank % torch.cuda.device_count()``
   (ZeroDivisionError without CUDA); on a CPU-only machine we initialise gloo instead.
4. ``BaseModel.model_to_device`` passes ``device_ids=[torch.cuda.current_device()]`` to DDP; a CPU module takes none.
5. ``SRModel.dist_validation`` validates on rank 0 only with the DDP-wrapped net: a DDP forward broadcasts buffers
   (a collective), which then pairs with another rank's training collectives. We validate with the bare network.
6. ``BaseModel.save_network`` / ``save_training_state`` write with plain ``torch.save`` to the final name (a kill
   leaves a truncated file), log a warning and train on when a write fails, and keep neither RNG states nor the
   data position. BaseModel gets the methods of
   :class:`~basicsr_nlattn.utils.training_state.AtomicCheckpointsMixin` (atomic files, ``CheckpointWriteError``,
   the loop's ``training_state_extras``), so ``SRModel``, ``SRGANModel``, ``ESRGANModel`` and any subclass save as
   our models do; BasicSR's ``resume_training`` reads the file as before.
"""
import contextlib
import functools
import importlib.util
import sys
import types
from os import path as osp
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

from basicsr_nlattn.utils.option_file import load_option_file

_APPLIED: Dict[str, bool] = {}
OptionCheck = Callable[[Dict[str, Any]], None]
_AFTER_PARSE: List[OptionCheck] = []


def _once(name: str) -> Callable[[Callable[[], bool]], Callable[[], bool]]:
    """Run a patch function at most once per process; remember whether it changed anything."""

    def decorator(patch: Callable[[], bool]) -> Callable[[], bool]:

        @functools.wraps(patch)
        def wrapper() -> bool:
            if name not in _APPLIED:
                _APPLIED[name] = patch()
            return _APPLIED[name]

        return wrapper

    return decorator


def needs_functional_tensor_module() -> bool:
    """True when torchvision no longer ships ``torchvision.transforms.functional_tensor`` (torchvision >= 0.17)."""
    if 'torchvision.transforms.functional_tensor' in sys.modules:
        return False
    return importlib.util.find_spec('torchvision.transforms.functional_tensor') is None


@_once('functional_tensor')
def provide_functional_tensor_module() -> bool:
    """Fix 1: serve ``torchvision.transforms.functional_tensor.rgb_to_grayscale`` for ``import basicsr``."""
    if not needs_functional_tensor_module():
        return False
    from torchvision.transforms import functional
    module = types.ModuleType('torchvision.transforms.functional_tensor')
    module.__doc__ = 'Stand-in registered by basicsr_nlattn.compat: the module was removed in torchvision 0.17.'
    module.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[module.__name__] = module
    return True


def _user_root(option_file: str, phase_key: str) -> Optional[str]:
    path_opt = load_option_file(option_file).get('path') or {}
    root = path_opt.get(phase_key)
    return None if root is None else osp.abspath(osp.expanduser(root))


def _with_user_roots(parse_options: Callable[..., Tuple[Dict[str, Any], Any]]) -> Callable[..., Tuple[Dict, Any]]:
    """Fix 2: wrap ``parse_options`` so that ``path.experiments_root`` / ``path.results_root`` are honoured, then
    the checks of :func:`after_parse_options` run."""

    @functools.wraps(parse_options)
    def parse_options_with_user_roots(root_path: str, is_train: bool = True) -> Tuple[Dict[str, Any], Any]:
        opt, args = parse_options(root_path, is_train=is_train)
        path_opt = opt['path']
        if is_train:
            experiments_root = _user_root(args.opt, 'experiments_root')
            if experiments_root is not None:
                path_opt['experiments_root'] = experiments_root
                path_opt['models'] = osp.join(experiments_root, 'models')
                path_opt['training_states'] = osp.join(experiments_root, 'training_states')
                path_opt['log'] = experiments_root
                path_opt['visualization'] = osp.join(experiments_root, 'visualization')
        else:
            results_root = _user_root(args.opt, 'results_root')
            if results_root is not None:
                path_opt['results_root'] = results_root
                path_opt['log'] = results_root
                path_opt['visualization'] = osp.join(results_root, 'visualization')
        for check in list(_AFTER_PARSE):
            check(opt)
        return opt, args

    parse_options_with_user_roots.wrapped_by_basicsr_nlattn = True
    return parse_options_with_user_roots


@contextlib.contextmanager
def after_parse_options(check: OptionCheck) -> Iterator[None]:
    """Within the block, every ``parse_options`` call (fix 3) ends with ``check(opt)``: after the experiment or
    results root of the option file is set, before BasicSR makes or renames any folder. ``basicsr train`` runs
    BasicSR's own ``train_pipeline`` inside it, with its pre-flight check (which this module knows nothing of).

    Args:
        check (Callable[[dict], None]): called with the parsed options; raises to stop the pipeline.
    """
    _AFTER_PARSE.append(check)
    try:
        yield
    finally:
        _AFTER_PARSE.remove(check)


@_once('parse_options')
def patch_parse_options() -> bool:
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    wrapped = _with_user_roots(basicsr.utils.options.parse_options)
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        module.parse_options = wrapped
    return True


@_once('init_dist_pytorch')
def patch_init_dist_pytorch() -> bool:
    """Fix 3: ``--launcher pytorch`` without CUDA initialises gloo (torchrun sets RANK, WORLD_SIZE, MASTER_*)."""
    import basicsr.utils.dist_util as dist_util
    original = dist_util._init_dist_pytorch

    def init_dist_pytorch(backend: str, **kwargs: Any) -> None:
        if torch.cuda.is_available() and torch.cuda.device_count() > 0:
            original(backend, **kwargs)
        else:
            torch.distributed.init_process_group(backend='gloo', **kwargs)

    dist_util._init_dist_pytorch = init_dist_pytorch
    return True


@_once('model_to_device')
def patch_model_to_device() -> bool:
    """Fix 4: DDP over a CPU module gets no ``device_ids``."""
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel
    original = BaseModel.model_to_device

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        if self.device.type == 'cuda' or not self.opt['dist']:
            return original(self, net)
        return DistributedDataParallel(
            net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))

    BaseModel.model_to_device = model_to_device
    return True


@_once('dist_validation')
def patch_dist_validation() -> bool:
    """Fix 5: rank-0 validation runs the bare network, so it issues no DDP collective."""
    from basicsr.models.sr_model import SRModel
    original = SRModel.dist_validation

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img) -> None:
        wrapped = self.net_g
        self.net_g = self.get_bare_model(wrapped)
        try:
            original(self, dataloader, current_iter, tb_logger, save_img)
        finally:
            self.net_g = wrapped

    SRModel.dist_validation = dist_validation
    return True


@_once('atomic_checkpoints')
def patch_checkpoint_saves() -> bool:
    """Fix 6: BasicSR's models save through AtomicCheckpointsMixin's methods (the same functions, not copies)."""
    from basicsr.models.base_model import BaseModel

    from basicsr_nlattn.utils.training_state import AtomicCheckpointsMixin
    for name in AtomicCheckpointsMixin.CHECKPOINT_ATTRIBUTES:
        setattr(BaseModel, name, AtomicCheckpointsMixin.__dict__[name])
    return True


def apply() -> Dict[str, bool]:
    """Apply every fix (idempotent). Returns, per fix, whether it changed anything in this process."""
    provide_functional_tensor_module()
    patch_parse_options()
    patch_init_dist_pytorch()
    patch_model_to_device()
    patch_dist_validation()
    patch_checkpoint_saves()
    return dict(_APPLIED)
