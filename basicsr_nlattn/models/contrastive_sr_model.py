"""ContrastiveSRModel: BasicSR's SRModel plus the contrastive losses that our attention blocks define.

How the contrastive features reach their losses: networks stay plain ``forward(x) -> sr``; blocks record, in training,
the tensors their loss needs; this model finds them in ``net_g`` (through DDP and any nesting), hands them to the
losses named in ``train.contrastive_opt``, adds the weighted terms to the pixel loss, logs ``l_contrast`` and
clears the records. It also redraws ENLCA's random features on schedule and keeps them in ``net_g_ema``.
"""
import contextlib
import dataclasses
import functools
import inspect
from collections import OrderedDict
from typing import Any, ContextManager, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import LOSS_REGISTRY, MODEL_REGISTRY
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.recording import recording_blocks
from basicsr_nlattn.models.nonfinite import NonFiniteGuard, NonFiniteOptions, parse_nonfinite
from basicsr_nlattn.models.sr_options import SRTraining, check_pixel_or_perceptual, sr_training_fields, train_section
from basicsr_nlattn.models.tiled_inference import TiledInferenceMixin, autocast_to, parse_amp
from basicsr_nlattn.utils import validators
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
        loss_type = validators.typed_mapping(key, entry, 'a loss')
        loss_class = LOSS_REGISTRY._obj_map.get(loss_type)
        if loss_class is None or not isinstance(getattr(loss_class, 'block_type', None), type):
            contrastive = sorted(name for name, cls in LOSS_REGISTRY if hasattr(cls, 'block_type'))
            validators.choice(f'{key}.type', loss_type, contrastive, ' (a contrastive loss)')
        allowed = {'type', 'start_iter'} | set(inspect.signature(loss_class).parameters)
        validators.reject_unknown_keys(key, entry, allowed, f' for {loss_type}')
        start_iter = validators.int_at_least(f'{key}.start_iter', entry.get('start_iter', 0), 0)
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
    return validators.number('train.grad_clip', grad_clip, 0, low_open=True)


def parse_train_amp(value: Any) -> Optional[torch.dtype]:
    """``train.amp`` (default false) -> the autocast dtype of the training forward and losses, or None."""
    return parse_amp('train.amp', value)


def parse_compile(value: Any) -> bool:
    """``train.compile`` (default false): whether net_g (and net_d) go through ``torch.compile``."""
    return validators.boolean('train.compile', value)


def parse_accumulate(value: Any, model_class: type) -> int:
    """``train.accumulate`` (default 1) -> the number of iterations (micro-batches) per optimizer step, for a model
    of ``model_class`` (more than 1 only where its ``accumulates_gradients`` is true)."""
    validators.int_at_least('train.accumulate', value, 1)
    if value > 1 and not model_class.accumulates_gradients:
        raise OptionError(f'train.accumulate: must be 1 for {model_class.__name__}, got {value}')
    return value


def parse_channels_last(value: Any) -> bool:
    """``train.channels_last`` (default false): networks and batches in ``torch.channels_last``."""
    return validators.boolean('train.channels_last', value)


@dataclasses.dataclass(frozen=True)
class ContrastiveTraining(SRTraining):
    """ContrastiveSRModel's training options, parsed: SRModel's (:class:`SRTraining`) plus ``contrastive`` (the
    [(loss options, start_iter)] of ``train.contrastive_opt``), ``grad_clip``, ``amp``, ``compile``,
    ``accumulate``, ``channels_last`` and ``nonfinite``."""
    contrastive: List[Tuple[Dict[str, Any], int]]
    grad_clip: Optional[float]
    amp: Optional[torch.dtype]
    compile: bool
    accumulate: int
    channels_last: bool
    nonfinite: NonFiniteOptions


def contrastive_training_fields(opt: Mapping[str, Any], model_class: type) -> Dict[str, Any]:
    """The fields of :class:`ContrastiveTraining`, read from ``opt`` for a model of ``model_class``."""
    fields = sr_training_fields(opt, model_class)
    train_opt = train_section(opt)
    fields.update(
        contrastive=parse_contrastive_opt(train_opt.get('contrastive_opt')),
        grad_clip=parse_grad_clip(train_opt.get('grad_clip')),
        amp=parse_train_amp(train_opt.get('amp', False)),
        compile=parse_compile(train_opt.get('compile', False)),
        accumulate=parse_accumulate(train_opt.get('accumulate', 1), model_class),
        channels_last=parse_channels_last(train_opt.get('channels_last', False)),
        nonfinite=parse_nonfinite(train_opt.get('nonfinite')))
    check_pixel_or_perceptual(fields, model_class)
    return fields


def parse_contrastive_training(opt: Mapping[str, Any], model_class: Optional[type] = None) -> ContrastiveTraining:
    """Every ``train.*`` key ContrastiveSRModel (or ``model_class``, a subclass) reads, parsed: the one reading, by
    the model in ``init_training_settings`` and by the pre-flight check of ``basicsr train``."""
    return ContrastiveTraining(**contrastive_training_fields(opt, model_class or ContrastiveSRModel))


def grad_scaler(device: torch.device, amp: Optional[torch.dtype]) -> Optional[torch.amp.GradScaler]:
    """A GradScaler for one optimizer under ``train.amp: fp16`` (float16 gradients underflow), else None."""
    return torch.amp.GradScaler(device.type) if amp == torch.float16 else None


def bare_network(net: nn.Module) -> nn.Module:
    """``net`` without ``torch.compile``'s OptimizedModule (its ``_orig_mod``), if any."""
    return net._orig_mod if isinstance(net, torch._dynamo.eval_frame.OptimizedModule) else net


@MODEL_REGISTRY.register()
class ContrastiveSRModel(TiledInferenceMixin, SRModel):
    """SRModel with the contrastive-feature protocol, scheduled random-feature redraws and tiled inference.

    Each iteration redraws the random features, sets the blocks' recording, runs one forward, adds the contrastive
    terms (``l_contrast``) and the hooks' terms (``_before_generator_update``, ``_updates_generator``,
    ``_extra_generator_losses``) to the pixel loss, then steps G once: backward, clipping, optimizer, EMA, clearing the
    records, logging. Option keys beyond SRModel's, each documented in ``docs/training.md``: ``train.contrastive_opt``
    (losses with ``block_type`` and ``start_iter``), ``train.grad_clip``, ``train.amp``, ``train.compile``,
    ``train.accumulate``, ``train.channels_last``, ``train.nonfinite``, ``val.tile`` and ``val.amp``. ``num_gpu > 1``
    without a launcher (DataParallel) is refused: replicas do not pass the blocks' records back. Checkpoints are
    BaseModel's atomic ones (``compat`` fix 6), with the fp16 GradScalers of ``_grad_scalers`` in the training state.
    """

    accumulates_gradients = True  # train.accumulate > 1 supported

    def __init__(self, opt: Dict[str, Any]) -> None:
        check_no_data_parallel(opt)
        super().__init__(opt)

    @classmethod
    def parse_training(cls, opt: Mapping[str, Any]) -> ContrastiveTraining:
        """This class's training options (:func:`parse_contrastive_training`); a subclass with more overrides it."""
        return parse_contrastive_training(opt, cls)

    @functools.cached_property
    def training_options(self) -> ContrastiveTraining:
        """``parse_training(self.opt)``, read once (on first use, in ``init_training_settings``)."""
        return self.parse_training(self.opt)

    def init_training_settings(self) -> None:
        settings = self.training_options
        self.grad_clip = settings.grad_clip
        self.amp = settings.amp
        self.accumulate = settings.accumulate
        self.channels_last = settings.channels_last
        self.compile_networks = settings.compile
        self.nonfinite_guard = NonFiniteGuard(settings.nonfinite)
        super().init_training_settings()
        self.cri_contrast = [
            ContrastiveTerm(build_loss(opt).to(self.device), start) for opt, start in settings.contrastive
        ]
        check_contrastive_blocks(self.opt['train'].get('contrastive_opt'), [term.loss for term in self.cri_contrast],
                                 self.get_bare_model(self.net_g))
        self._drawn_features: Dict[int, int] = {}
        self.scaler_g = grad_scaler(self.device, self.amp)
        self._step_losses: 'OrderedDict[str, Tensor]' = OrderedDict()
        self.log_dict = OrderedDict()
        if self.channels_last:
            self.net_g.to(memory_format=torch.channels_last)
            if hasattr(self, 'net_g_ema'):
                self.net_g_ema.to(memory_format=torch.channels_last)
        if self.compile_networks:
            self.net_g = self._compiled(self.net_g, 'net_g')

    def _compiled(self, net: nn.Module, label: str) -> nn.Module:
        """``torch.compile(net)``, or ``net`` itself with a logged warning where compiling raises."""
        try:
            return torch.compile(net)
        except Exception as error:  # noqa: B902  (any backend failure: train uncompiled, as documented)
            get_root_logger().warning(f'train.compile: torch.compile of {label} failed ({error!r}); running it '
                                      'uncompiled')
            return net

    def setup_optimizers(self) -> None:
        """SRModel's optimizer of net_g (the parameters that require gradients), from the parsed ``train.optim_g``:
        ``self.opt`` stays as it was (BasicSR pops ``type`` out of it)."""
        params = []
        for name, param in self.net_g.named_parameters():
            if param.requires_grad:
                params.append(param)
            else:
                get_root_logger().warning(f'Params {name} will not be optimized.')
        self.optimizer_g = self.training_options.optim_g.build(self, params)
        self.optimizers.append(self.optimizer_g)

    def setup_schedulers(self) -> None:
        """BaseModel's scheduler of every optimizer, from the parsed ``train.scheduler``."""
        for optimizer in self.optimizers:
            self.schedulers.append(self.training_options.scheduler.build(optimizer))

    def get_bare_model(self, net: nn.Module) -> nn.Module:
        """BasicSR's unwrapping (DDP, DataParallel) after removing ``torch.compile``'s wrapper, so that checkpoints,
        EMA and block lookups see the plain network and its key names."""
        return super().get_bare_model(bare_network(net))

    def feed_data(self, data: Dict[str, Tensor]) -> None:
        super().feed_data(data)
        if getattr(self, 'channels_last', False):
            self.lq = self.lq.contiguous(memory_format=torch.channels_last)
            if hasattr(self, 'gt'):
                self.gt = self.gt.contiguous(memory_format=torch.channels_last)

    def _optimizer_step_number(self, current_iter: int) -> int:
        """The optimizer step (from 1) that iteration ``current_iter`` contributes to: ceil(current_iter / N)."""
        return (current_iter - 1) // self.accumulate + 1

    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        """BasicSR's schedule and warm-up counted in optimizer steps: called by the train loop every iteration, it
        acts on the first micro-batch of each step only (``train.accumulate``; every iteration when it is 1)."""
        if (current_iter - 1) % self.accumulate == 0:
            super().update_learning_rate(self._optimizer_step_number(current_iter), warmup_iter)

    def _gradient_sync(self, net: nn.Module, last_micro_batch: bool) -> ContextManager:
        """DDP's ``no_sync`` on every micro-batch but the last of an optimizer step; nothing without DDP."""
        ddp = bare_network(net)
        if isinstance(ddp, DistributedDataParallel) and not last_micro_batch:
            return ddp.no_sync()
        return contextlib.nullcontext()

    def _backward(self, loss: Tensor, scaler: Optional[torch.amp.GradScaler]) -> None:
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, scaler: Optional[torch.amp.GradScaler], net: nn.Module,
                        grad_clip: Optional[float], label: str, losses: Dict[str, Tensor], current_iter: int) -> bool:
        """One step of ``optimizer`` unless ``train.nonfinite`` skips it (a NaN/Inf in ``losses`` or, without a
        GradScaler, in ``net``'s gradients, on any rank): unscale (fp16), clip the norm of ``net``'s gradients,
        step, update the scale. Returns whether it stepped."""
        skipped = self.nonfinite_guard.check(label, current_iter, losses, net, scaler is None, self.device)
        if skipped is not None:
            get_root_logger().warning(skipped)
            optimizer.zero_grad(set_to_none=True)
            return False
        if scaler is not None and grad_clip is not None:
            scaler.unscale_(optimizer)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=grad_clip)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        return True

    def _grad_scalers(self) -> Dict[str, torch.amp.GradScaler]:
        """The GradScaler of each optimizer, by network label (``g``; a subclass adds its own): saved in the
        training state under ``grad_scalers`` (:class:`~basicsr_nlattn.utils.training_state.AtomicCheckpointsMixin`)."""
        return {} if self.scaler_g is None else {'g': self.scaler_g}

    def resume_training(self, resume_state: Dict[str, Any]) -> None:
        """BasicSR's resume, plus the GradScalers' states when the state has them and ``train.amp`` is fp16."""
        super().resume_training(resume_state)
        saved = resume_state.get('grad_scalers', {})
        for label, scaler in self._grad_scalers().items():
            if label in saved:
                scaler.load_state_dict(saved[label])
            else:
                get_root_logger().warning(f'train.amp: the training state has no GradScaler of net_{label}; '
                                          'starting from a fresh scale')

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
        step and EMA; the records are cleared in every iteration. With ``train.accumulate: N`` each iteration is a
        micro-batch: its loss / N is back-propagated, the step, EMA and the log (the micro-batches' mean) come on
        every N-th; ``train.amp`` puts the forward and the losses under autocast."""
        step = self._optimizer_step_number(current_iter)
        first, last = (current_iter - 1) % self.accumulate == 0, current_iter % self.accumulate == 0
        self.redraw_random_features(step)
        self._set_recording(step)
        update_g = self._updates_generator(current_iter)
        with self._gradient_sync(self.net_g, last):
            with autocast_to(self.device, self.amp):
                self.output = self.net_g(self.lq)
            loss_dict = self._before_generator_update(current_iter, update_g)
            if update_g:
                if first:
                    self.optimizer_g.zero_grad()
                with autocast_to(self.device, self.amp):
                    l_total, g_losses = self.generator_losses(step)
                    for name, value in self._extra_generator_losses(current_iter).items():
                        g_losses[name] = value
                        l_total = l_total + value
                self._backward(l_total / self.accumulate, self.scaler_g)
                loss_dict.update(g_losses)
        for name, value in loss_dict.items():
            self._step_losses[name] = self._step_losses.get(name, 0) + value.detach().float() / self.accumulate
        if update_g and last:
            g_terms = {name: self._step_losses[name] for name in g_losses}
            stepped = self._optimizer_step(self.optimizer_g, self.scaler_g, self.net_g, self.grad_clip, 'net_g',
                                           g_terms, current_iter)
            if stepped and self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)
        self._clear_records()
        if last:
            self.log_dict = self.reduce_loss_dict(self._step_losses)
            self._step_losses = OrderedDict()

    @torch.no_grad()
    def model_ema(self, decay: float = 0.999) -> None:
        """BasicSR's parameter EMA, plus a copy of the buffers (ENLCA's random features), which it leaves out."""
        super().model_ema(decay)
        buffers = dict(self.get_bare_model(self.net_g).named_buffers())
        for name, buffer in self.net_g_ema.named_buffers():
            buffer.copy_(buffers[name])
