"""ContrastiveSRModel: BasicSR's SRModel plus the contrastive losses that our attention blocks define.

How the contrastive features reach their losses: networks stay plain ``forward(x) -> sr``; blocks record, in training,
the tensors their loss needs; this model finds them in ``net_g`` (through DDP and any nesting), hands them to the
losses named in ``train.contrastive_opt``, adds the weighted terms to the pixel loss, logs ``l_contrast`` and
clears the records. It also redraws ENLCA's random features on schedule and keeps them in ``net_g_ema``.
"""
import inspect
from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.recording import recording_blocks
from basicsr_nlattn.models.tiled_inference import TiledInferenceMixin
from basicsr_nlattn.utils.errors import OptionError


class ContrastiveTerm(NamedTuple):
    loss: nn.Module
    start_iter: int


def random_feature_seed(manual_seed: int, draw: int, block_number: int) -> int:
    """Seed of a block's random features for one draw: the same on every rank and after a resume."""
    return (manual_seed * 1_000_003 + draw * 1009 + block_number) % (2**63 - 1)


def contrastive_opt_key(contrastive_opt: Any, index: int) -> str:
    """The option key of entry ``index`` of ``train.contrastive_opt``: ``train.contrastive_opt[index]`` in a list,
    ``train.contrastive_opt`` for a single mapping."""
    return f'train.contrastive_opt[{index}]' if isinstance(contrastive_opt, list) else 'train.contrastive_opt'


def parse_contrastive_opt(contrastive_opt: Any) -> List[Tuple[Dict[str, Any], int]]:
    """``train.contrastive_opt`` (a dict or a list of dicts) -> [(loss options, start_iter)], validated."""
    if contrastive_opt is None:
        return []
    entries = contrastive_opt if isinstance(contrastive_opt, list) else [contrastive_opt]
    parsed = []
    for index, entry in enumerate(entries):
        key = contrastive_opt_key(contrastive_opt, index)
        if not isinstance(entry, dict) or 'type' not in entry:
            raise OptionError(f'{key} must be a mapping with a type, got {entry!r}')
        loss_type = entry['type']
        loss_class = LOSS_REGISTRY._obj_map.get(loss_type)
        if loss_class is None or not isinstance(getattr(loss_class, 'block_type', None), type):
            contrastive = sorted(name for name, cls in LOSS_REGISTRY if hasattr(cls, 'block_type'))
            raise OptionError(f"{key}.type must be a contrastive loss, one of {contrastive}, got '{loss_type}'")
        allowed = {'type', 'start_iter'} | set(inspect.signature(loss_class).parameters)
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise OptionError(f'{key}: unknown key(s) {unknown} for {loss_type}; allowed: {sorted(allowed)}')
        start_iter = entry.get('start_iter', 0)
        if not isinstance(start_iter, int) or start_iter < 0:
            raise OptionError(f'{key}.start_iter must be an int >= 0, got {start_iter!r}')
        parsed.append(({name: value for name, value in entry.items() if name != 'start_iter'}, start_iter))
    return parsed


def check_contrastive_blocks(contrastive_opt: Any, losses: Sequence[nn.Module], net: nn.Module) -> None:
    """Raise OptionError when a loss of ``train.contrastive_opt`` (built, in order) finds no block of its
    ``block_type`` in ``net`` (network_g, unwrapped; its parameters may be on the meta device): it would have
    nothing to read. Called by the model and by the pre-flight check of ``basicsr train``."""
    blocks = list(recording_blocks(net))
    for index, loss in enumerate(losses):
        if not any(isinstance(block, loss.block_type) for block in blocks):
            raise OptionError(f'{contrastive_opt_key(contrastive_opt, index)}.type: {type(loss).__name__} needs '
                              f'{loss.block_type.__name__} blocks in network_g, found none')


def check_no_data_parallel(opt: Dict[str, Any]) -> None:
    """Refuse ``num_gpu > 1`` without a launcher: BaseModel.model_to_device would wrap net_g in DataParallel, whose
    replicas never pass the blocks' records back. Called by the model and by the pre-flight check."""
    num_gpu = opt.get('num_gpu')
    if isinstance(num_gpu, int) and num_gpu > 1 and not opt.get('dist'):
        entry = 'train' if opt.get('is_train') else 'test'
        script = f' (or scripts/dist_train.sh {num_gpu} FILE)' if opt.get('is_train') else ''
        raise OptionError(f'num_gpu: {num_gpu} without a launcher (DataParallel) is not supported; run one process '
                          f'per GPU: torchrun --nproc_per_node={num_gpu} -m basicsr_nlattn.{entry} -opt FILE '
                          f'--launcher pytorch{script}')


def parse_grad_clip(grad_clip: Any) -> Optional[float]:
    """``train.grad_clip`` -> the maximum gradient norm of net_g's parameters, or None (no clipping), validated."""
    if grad_clip is None:
        return None
    if isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float)) or not grad_clip > 0:
        raise OptionError(f'train.grad_clip must be a number > 0, got {grad_clip!r}')
    return float(grad_clip)


@MODEL_REGISTRY.register()
class ContrastiveSRModel(TiledInferenceMixin, SRModel):
    """SRModel with the contrastive-feature protocol, scheduled random-feature redraws and tiled inference.

    Option keys beyond SRModel's:
        train.contrastive_opt (dict | list[dict]): contrastive losses, each a registered loss with a
            ``block_type`` (``ENLCAContrastiveLoss``, ...) plus ``start_iter`` (int, the papers' warm-up: before
            it, blocks record nothing and the term is not computed; default 0). Their sum is logged as
            ``l_contrast``. Without it, the model trains like SRModel.
        train.grad_clip (float): clip the total gradient norm of net_g's parameters to this value before each G
            step (``torch.nn.utils.clip_grad_norm_``; the RCAN recipe uses 1). Default: none (no clipping).
        val.tile (dict): ``{size, overlap}`` or ``{mode: chop}``, see ``tiled_inference.py``.

    Each iteration (``optimize_parameters``): redraw the random features, set the blocks' recording, one forward,
    then the hooks a subclass overrides: ``_before_generator_update`` (e.g. a discriminator step, returning its log
    entries), ``_updates_generator`` (whether G steps this iteration) and ``_extra_generator_losses`` (terms added to
    ``generator_losses``); then, written once here, backward, gradient clipping, G's optimizer step, EMA, clearing
    the records and logging.

    ``num_gpu > 1`` without a launcher (BasicSR's DataParallel) is refused before any network is built: replicas do
    not pass the blocks' records back; one process per GPU (``--launcher pytorch``, DDP) is the way.
    """

    def __init__(self, opt: Dict[str, Any]) -> None:
        check_no_data_parallel(opt)
        super().__init__(opt)

    def init_training_settings(self) -> None:
        contrastive_opt = self.opt['train'].get('contrastive_opt')
        parsed = parse_contrastive_opt(contrastive_opt)
        self.grad_clip = parse_grad_clip(self.opt['train'].get('grad_clip'))
        super().init_training_settings()
        self.cri_contrast = [ContrastiveTerm(build_loss(opt).to(self.device), start) for opt, start in parsed]
        check_contrastive_blocks(contrastive_opt, [term.loss for term in self.cri_contrast],
                                 self.get_bare_model(self.net_g))
        self._drawn_features: Dict[int, int] = {}

    def _recording_blocks(self) -> List[nn.Module]:
        return list(recording_blocks(self.get_bare_model(self.net_g)))

    def _enlca_blocks(self) -> List[ENLCA]:
        return [module for module in self.get_bare_model(self.net_g).modules() if isinstance(module, ENLCA)]

    def redraw_random_features(self, current_iter: int) -> None:
        """Give every ENLCA block the features of draw (current_iter - 1) // redraw_interval, drawn from a generator
        seeded by (manual_seed, draw, block number): identical on all ranks and after a resume."""
        manual_seed = self.opt.get('manual_seed') or 0
        for number, block in enumerate(self._enlca_blocks()):
            if block.redraw_interval == 0:
                continue
            draw = (current_iter - 1) // block.redraw_interval
            if self._drawn_features.get(number) != draw:
                generator = torch.Generator().manual_seed(random_feature_seed(manual_seed, draw, number))
                block.redraw_random_features(generator)
                self._drawn_features[number] = draw

    def _set_recording(self, current_iter: int) -> None:
        active_types = tuple(term.loss.block_type for term in self.cri_contrast if current_iter >= term.start_iter)
        for block in self._recording_blocks():
            block.recording = isinstance(block, active_types) if active_types else False

    def _clear_records(self) -> None:
        for block in self._recording_blocks():
            block.clear_recorded()

    def generator_losses(self, current_iter: int) -> Tuple[Tensor, 'OrderedDict[str, Tensor]']:
        """The losses of ``self.output``: SRModel's pixel and perceptual terms plus the active contrastive terms.

        Returns:
            (Tensor, OrderedDict): the total and the logged terms (``l_pix``, ``l_percep``, ``l_style``,
            ``l_contrast``).
        """
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                loss_dict['l_percep'] = l_percep
            if l_style is not None:
                loss_dict['l_style'] = l_style
        active = [term.loss for term in self.cri_contrast if current_iter >= term.start_iter]
        if active:
            blocks = self._recording_blocks()
            loss_dict['l_contrast'] = sum(loss(blocks) for loss in active)
        for value in loss_dict.values():
            l_total = l_total + value
        return l_total, loss_dict

    def _updates_generator(self, current_iter: int) -> bool:
        """Whether this iteration ends with a G step (a subclass may train only another network on some)."""
        return True

    def _before_generator_update(self, current_iter: int, update_g: bool) -> 'OrderedDict[str, Tensor]':
        """Run after the forward (``self.output`` is set) and before G's losses, e.g. a discriminator step.

        Args:
            current_iter (int): the iteration, from 1.
            update_g (bool): what ``_updates_generator`` decided for this iteration.

        Returns:
            OrderedDict: extra (detached) log entries, logged before G's terms. Empty here.
        """
        return OrderedDict()

    def _extra_generator_losses(self, current_iter: int) -> 'OrderedDict[str, Tensor]':
        """Terms added, in order, to the total of ``generator_losses`` and logged under their names. Empty here."""
        return OrderedDict()

    def optimize_parameters(self, current_iter: int) -> None:
        """One iteration: forward, the subclass hooks, then (when G updates) backward, ``train.grad_clip``, G's
        step and EMA; the records are cleared and the losses logged in every iteration."""
        self.redraw_random_features(current_iter)
        self._set_recording(current_iter)
        self.output = self.net_g(self.lq)
        update_g = self._updates_generator(current_iter)
        loss_dict = self._before_generator_update(current_iter, update_g)
        if update_g:
            self.optimizer_g.zero_grad()
            l_total, g_losses = self.generator_losses(current_iter)
            for name, value in self._extra_generator_losses(current_iter).items():
                g_losses[name] = value
                l_total = l_total + value
            l_total.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), max_norm=self.grad_clip)
            self.optimizer_g.step()
            loss_dict.update(g_losses)
            if self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)
        self._clear_records()
        self.log_dict = self.reduce_loss_dict(loss_dict)

    @torch.no_grad()
    def model_ema(self, decay: float = 0.999) -> None:
        """BasicSR's parameter EMA, plus a copy of the buffers (ENLCA's random features), which it leaves out."""
        super().model_ema(decay)
        buffers = dict(self.get_bare_model(self.net_g).named_buffers())
        for name, buffer in self.net_g_ema.named_buffers():
            buffer.copy_(buffers[name])
