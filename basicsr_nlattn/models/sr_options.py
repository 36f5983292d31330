"""The training options of BasicSR's own models, read and checked in one place: ``SRModel`` (and any model built on
it) and ``SRGANModel`` / ``ESRGANModel``. The pre-flight check of ``basicsr train`` calls these parsers for BasicSR's
models; our models call theirs, built on these, in ``init_training_settings`` and train with what they return.

What BasicSR 1.4.2 reads in ``init_training_settings``, ``setup_optimizers`` and ``setup_schedulers``:
``train.ema_decay``, ``train.pixel_opt``, ``train.perceptual_opt`` (SRModel needs one of the two), ``train.optim_g``,
``train.scheduler``; for the GAN models also ``network_d``, ``train.gan_opt`` (needed: its generator step uses it),
``train.ldl_opt``, ``train.optim_d``, ``train.net_d_iters`` and ``train.net_d_init_iters``. In validation (and in
``basicsr test``): ``val.save_img``, ``val.metrics`` (each metric's arguments and ``better``), ``val.suffix`` and
``val.pbar``.
"""
import dataclasses
import inspect
from typing import Any, Dict, Mapping, Optional

from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils.registry import METRIC_REGISTRY

from basicsr_nlattn.models.optimizer_options import OptimizerOptions, SchedulerOptions, parse_optimizer, parse_scheduler
from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError


@dataclasses.dataclass(frozen=True)
class SRTraining:
    """SRModel's training options, parsed.

    Attributes:
        ema_decay (float): ``train.ema_decay`` in [0, 1); 0 (the default) keeps no EMA copy of net_g.
        pixel_opt (Mapping | None): ``train.pixel_opt``, the options of a registered loss, or None.
        perceptual_opt (Mapping | None): ``train.perceptual_opt``, likewise.
        optim_g (OptimizerOptions): ``train.optim_g``.
        scheduler (SchedulerOptions): ``train.scheduler``, applied to every optimizer.
    """
    ema_decay: float
    pixel_opt: Optional[Mapping[str, Any]]
    perceptual_opt: Optional[Mapping[str, Any]]
    optim_g: OptimizerOptions
    scheduler: SchedulerOptions


@dataclasses.dataclass(frozen=True)
class SRGANTraining(SRTraining):
    """SRGANModel's (and ESRGANModel's) training options, parsed: SRTraining's plus ``gan_opt`` and ``ldl_opt``
    (loss options), ``optim_d``, ``net_d_iters`` (G steps every that many iterations, >= 1) and
    ``net_d_init_iters`` (D-only iterations at the start, >= 0)."""
    gan_opt: Mapping[str, Any]
    ldl_opt: Optional[Mapping[str, Any]]
    optim_d: OptimizerOptions
    net_d_iters: int
    net_d_init_iters: int


def train_section(opt: Mapping[str, Any]) -> Mapping[str, Any]:
    """``opt['train']``, which every model in training reads."""
    return validators.mapping('train', opt.get('train'))


def loss_options(key: str, value: Any) -> Optional[Mapping[str, Any]]:
    """A ``train.*_opt`` loss as BasicSR's models read it: unset (None or empty: no such loss) or a mapping with
    a ``type`` (the pre-flight check builds it, and checks that the type is registered)."""
    if not value:
        return None
    validators.typed_mapping(key, value, 'a loss')
    return value


def sr_training_fields(opt: Mapping[str, Any], model_class: type) -> Dict[str, Any]:
    """The fields of :class:`SRTraining`, read from ``opt`` for a model of ``model_class``."""
    train_opt = train_section(opt)
    return {
        'ema_decay': validators.number('train.ema_decay', train_opt.get('ema_decay', 0), 0, 1, high_open=True),
        'pixel_opt': loss_options('train.pixel_opt', train_opt.get('pixel_opt')),
        'perceptual_opt': loss_options('train.perceptual_opt', train_opt.get('perceptual_opt')),
        'optim_g': parse_optimizer('train.optim_g', train_opt.get('optim_g'), model_class),
        'scheduler': parse_scheduler('train.scheduler', train_opt.get('scheduler')),
    }


def check_pixel_or_perceptual(fields: Mapping[str, Any], model_class: type) -> None:
    """SRModel's rule (its ``ValueError('Both pixel and perceptual losses are None.')``): one of the two is set."""
    if fields['pixel_opt'] is None and fields['perceptual_opt'] is None:
        raise OptionError(f'train.pixel_opt: {model_class.__name__} needs a pixel or a perceptual loss '
                          '(train.pixel_opt or train.perceptual_opt), got neither')


def parse_sr_training(opt: Mapping[str, Any], model_class: type = SRModel) -> SRTraining:
    """SRModel's training options; like BasicSR, it needs ``train.pixel_opt`` or ``train.perceptual_opt``."""
    fields = sr_training_fields(opt, model_class)
    check_pixel_or_perceptual(fields, model_class)
    return SRTraining(**fields)


def parse_srgan_training(opt: Mapping[str, Any], model_class: type = SRGANModel) -> SRGANTraining:
    """SRGANModel's and ESRGANModel's training options: ``network_d`` and ``train.gan_opt`` are needed."""
    fields = sr_training_fields(opt, model_class)
    if not isinstance(opt.get('network_d'), Mapping):
        raise OptionError(f"network_d: {model_class.__name__} needs a discriminator, e.g. network_d: "
                          f"{{type: VGGStyleDiscriminator, num_in_ch: 3, num_feat: 64}}, got {opt.get('network_d')!r}")
    train_opt = train_section(opt)
    gan_opt = loss_options('train.gan_opt', train_opt.get('gan_opt'))
    if gan_opt is None:
        raise OptionError(f'train.gan_opt: {model_class.__name__} needs its GAN loss, e.g. {{type: GANLoss, gan_type: '
                          f"vanilla, loss_weight: !!float 5e-3}}, got {train_opt.get('gan_opt')!r}")
    return SRGANTraining(
        **fields,
        gan_opt=gan_opt,
        ldl_opt=loss_options('train.ldl_opt', train_opt.get('ldl_opt')),
        optim_d=parse_optimizer('train.optim_d', train_opt.get('optim_d'), model_class),
        net_d_iters=validators.int_at_least('train.net_d_iters', train_opt.get('net_d_iters', 1), 1),
        net_d_init_iters=validators.int_at_least('train.net_d_init_iters', train_opt.get('net_d_init_iters', 0), 0))


@dataclasses.dataclass(frozen=True)
class SRValidation:
    """SRModel's validation options (``val``), parsed: ``save_img`` (read by both pipelines), ``metrics`` (name ->
    options of a registered metric), ``suffix`` of saved images in ``basicsr test`` and ``pbar``."""
    save_img: bool
    metrics: Mapping[str, Mapping[str, Any]]
    suffix: Optional[str]
    pbar: bool


_METRIC_IMAGES = ('img', 'img2')  # what SRModel passes to every metric besides its options


def _check_metric(key: str, metric_opt: Any) -> None:
    """One ``val.metrics.<name>``: a mapping with a ``type`` (registered: checked with the other types), the metric's
    required arguments, no argument it does not take, and ``better`` (BaseModel's best-result record)."""
    metric_type = validators.typed_mapping(key, metric_opt, 'a metric')
    validators.choice(f'{key}.better', metric_opt.get('better', 'higher'), ['higher', 'lower'])
    if metric_type not in METRIC_REGISTRY:
        return
    parameters = inspect.signature(METRIC_REGISTRY.get(metric_type)).parameters
    for name, parameter in parameters.items():
        required = parameter.default is parameter.empty and parameter.kind not in (parameter.VAR_POSITIONAL,
                                                                                   parameter.VAR_KEYWORD)
        if required and name not in _METRIC_IMAGES and name not in metric_opt:
            raise OptionError(f'{key}.{name}: required by {metric_type}, got nothing')
    if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        validators.reject_unknown_keys(key, metric_opt,
                                       set(parameters) - set(_METRIC_IMAGES) | {'type', 'better'}, f' of {metric_type}')


def parse_sr_validation(val_opt: Any, is_train: bool) -> SRValidation:
    """``val`` as SRModel's validation and the pipelines read it (``is_train``: in ``basicsr train``, else
    ``basicsr test``, which also reads ``val.suffix`` when it saves images)."""
    validators.mapping('val', val_opt)
    save_img = validators.boolean('val.save_img', val_opt.get('save_img'))
    metrics = val_opt.get('metrics')
    if metrics is not None:
        validators.mapping('val.metrics', metrics)
        for name in metrics:
            _check_metric(f'val.metrics.{name}', metrics[name])
    if save_img and not is_train and 'suffix' not in val_opt:
        raise OptionError('val.suffix: needed when basicsr test saves images (val.save_img: true): null names them '
                          'after the experiment, a string after itself; got nothing')
    return SRValidation(
        save_img=save_img,
        metrics=metrics or {},
        suffix=validators.optional_string('val.suffix', val_opt.get('suffix')),
        pbar=validators.boolean('val.pbar', val_opt.get('pbar', False)))
