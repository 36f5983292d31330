"""PCLModel: any BasicSR network trained with PCL-SR's learned Haar-wavelet embedding and contrastive loss.

Paper: Practical Contrastive Learning for Single Image Super-Resolution (PCL-SR), Sec. III, Eq. 5-12.
Official code: https://github.com/Aitical/PCL-SISR.
"""
import dataclasses
import inspect
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY
from torch import nn

from basicsr_nlattn.archs.haar_discriminator_arch import HaarDiscriminator
from basicsr_nlattn.losses.pcl_loss import PCLContrastiveLoss
from basicsr_nlattn.models.contrastive_sr_model import (ContrastiveSRModel, ContrastiveTraining,
                                                        contrastive_training_fields, grad_scaler)
from basicsr_nlattn.models.optimizer_options import OptimizerOptions, parse_optimizer
from basicsr_nlattn.models.pcl_samples import (make_negatives, make_negatives_official, make_positives,
                                               make_positives_official)
from basicsr_nlattn.models.sr_options import train_section
from basicsr_nlattn.models.tiled_inference import autocast_to
from basicsr_nlattn.utils import validators
from basicsr_nlattn.utils.errors import OptionError

SAMPLE_KEYS = {'num_pos': 4, 'num_neg': 4, 'start_iter': 0, 'sampling': 'paper'}
SAMPLINGS = ('paper', 'official')


def parse_pcl_opt(pcl_opt: Any) -> Dict[str, Any]:
    """``train.pcl_opt`` -> {'loss': loss options, 'num_pos', 'num_neg', 'start_iter', 'sampling'}, validated by
    key."""
    pcl_opt = dict(validators.mapping('train.pcl_opt', pcl_opt or {}))
    loss_type = validators.choice('train.pcl_opt.type', pcl_opt.pop('type', 'PCLContrastiveLoss'),
                                  ['PCLContrastiveLoss'])
    allowed = set(SAMPLE_KEYS) | set(inspect.signature(PCLContrastiveLoss).parameters)
    validators.reject_unknown_keys('train.pcl_opt', pcl_opt, allowed | {'type'})
    parsed = {key: pcl_opt.pop(key, default) for key, default in SAMPLE_KEYS.items()}
    for key in ('num_pos', 'num_neg'):
        validators.int_at_least(f'train.pcl_opt.{key}', parsed[key], 1)
    validators.choice('train.pcl_opt.sampling', parsed['sampling'], SAMPLINGS)
    validators.int_at_least('train.pcl_opt.start_iter', parsed['start_iter'], 0)
    parsed['loss'] = {'type': loss_type, **pcl_opt}
    return parsed


@dataclasses.dataclass(frozen=True)
class PCLTraining(ContrastiveTraining):
    """PCLModel's training options, parsed: ContrastiveSRModel's (:class:`ContrastiveTraining`) plus ``pcl`` as
    :func:`parse_pcl_opt` returns it, then ``train.freeze_d``, ``net_d_iters``, ``net_d_init_iters``,
    ``discriminator_samples``, ``optim_d`` (None with ``freeze_d``) and ``discriminator_opt`` (D's loss)."""
    pcl: Dict[str, Any]
    freeze_d: bool
    net_d_iters: int
    net_d_init_iters: int
    discriminator_samples: bool
    optim_d: Optional[OptimizerOptions]
    discriminator_opt: Mapping[str, Any]


def parse_pcl_training(opt: Mapping[str, Any], model_class: Optional[type] = None) -> PCLTraining:
    """PCLModel's options (ContrastiveSRModel's, ``train.pcl_opt``, ``train.freeze_d``, ...) read and checked
    against ``network_d``, ``train.optim_d`` and ``path.pretrain_network_d``: the one reading, by the model and by
    the pre-flight check of ``basicsr train``."""
    model_class = model_class or PCLModel
    fields = contrastive_training_fields(opt, model_class)
    train_opt = train_section(opt)
    pcl = parse_pcl_opt(train_opt.get('pcl_opt'))
    freeze_d = validators.boolean('train.freeze_d', train_opt.get('freeze_d', False))
    if 'network_d' not in opt:
        raise OptionError('network_d: PCLModel needs an embedding network, e.g. network_d: {type: HaarDiscriminator}')
    if not freeze_d and 'optim_d' not in train_opt:
        raise OptionError('train.optim_d: PCLModel trains network_d; give its optimizer (or set train.freeze_d)')
    if freeze_d and (opt.get('path') or {}).get('pretrain_network_d') is None:
        raise OptionError('train.freeze_d: needs path.pretrain_network_d (a fixed embedding must be pretrained), '
                          'got true')
    discriminator_opt = train_opt.get('discriminator_opt') or {'type': 'ContrastiveDiscriminatorLoss'}
    validators.typed_mapping('train.discriminator_opt', discriminator_opt, 'a loss')
    return PCLTraining(
        **fields,
        pcl=pcl,
        freeze_d=freeze_d,
        net_d_iters=validators.int_at_least('train.net_d_iters', train_opt.get('net_d_iters', 1), 1),
        net_d_init_iters=validators.int_at_least('train.net_d_init_iters', train_opt.get('net_d_init_iters', 0), 0),
        discriminator_samples=validators.boolean('train.discriminator_samples',
                                                 train_opt.get('discriminator_samples', False)),
        optim_d=None if freeze_d else parse_optimizer('train.optim_d', train_opt.get('optim_d'), model_class),
        discriminator_opt=discriminator_opt)


def check_embedding_network(opt: Dict[str, Any], net_d: nn.Module) -> None:
    """``network_d`` (built, unwrapped; on the meta device in the pre-flight check) is a HaarDiscriminator."""
    if not isinstance(net_d, HaarDiscriminator):
        raise OptionError(f"network_d.type: must be HaarDiscriminator, got '{opt['network_d'].get('type')}'")


@MODEL_REGISTRY.register()
class PCLModel(ContrastiveSRModel):
    """ContrastiveSRModel + PCL-SR: a HaarDiscriminator (``network_d``) is both the discriminator and the
    embedding of the contrastive loss.

    Each iteration: the SR output is computed once; one D step (``train.discriminator_opt``, default
    ``ContrastiveDiscriminatorLoss``, Eq. 7) on HR against SR.detach(); then, with D frozen, one G step on the
    pixel loss + the network's own contrastive losses (``train.contrastive_opt``) + alpha * PCL (``train.pcl_opt``,
    Eq. 8-10) over K_P positives (HR and sharpened HR) and K_N negatives (blurred HR) made on the fly. The SR
    features go through D with autograd, so the PCL term reaches the SR network (the official code computes them
    under ``torch.no_grad()``, so its term never does). The iteration is ContrastiveSRModel's: this class fills its
    hooks (the D step in ``_before_generator_update``, the schedule in ``_updates_generator``, ``l_pcl`` in
    ``_extra_generator_losses``), so ``train.grad_clip`` and everything else of the G step are inherited.

    Option keys beyond ContrastiveSRModel's (``train.grad_clip`` and ``train.contrastive_opt`` are inherited):
        network_d (dict): the embedding network, ``{type: HaarDiscriminator}`` with defaults works.
        train.optim_d (dict): D's optimizer (not needed with ``freeze_d``).
        train.pcl_opt (dict): ``PCLContrastiveLoss`` options (``loss_weight`` alpha 0.1, ``layers`` [0, 1, 2, 3],
            ``tau`` 1) plus ``num_pos`` 4, ``num_neg`` 4, ``start_iter`` 0 and ``sampling``: ``paper`` (sharpened
            positives, Gaussian kernels of size {3..11} with sigma U[0.3, 1.5] for negatives) or ``official`` (the
            code: sharpness factors U[0.5, 3), blur sigma U[0.1, 2), the bicubic-upsampled LR as one negative).
        train.discriminator_opt (dict): D's loss. Default: ``{type: ContrastiveDiscriminatorLoss}``.
        train.net_d_iters (int): G is updated every net_d_iters iterations (SRGANModel's meaning). Default: 1.
        train.net_d_init_iters (int): D-only iterations at the start (SRGANModel's meaning). Default: 0.
        train.discriminator_samples (bool): in D's step, the sharpened positives count as real and the blurred
            negatives as fake, beside HR and SR. Default: false.
        train.freeze_d (bool): keep D fixed (a pretrained embedding from ``path.pretrain_network_d``, paper
            Table V). Default: false.

    ``train.amp``, ``train.compile`` and ``train.channels_last`` apply to net_d too (D's forward and loss under
    autocast, its own GradScaler with fp16, saved as ``grad_scalers.d``); ``train.accumulate`` must be 1: D steps
    every iteration.
    """
    accumulates_gradients = False

    @classmethod
    def parse_training(cls, opt: Mapping[str, Any]) -> PCLTraining:
        return parse_pcl_training(opt, cls)

    def init_training_settings(self) -> None:
        settings = self.training_options
        self.pcl, self.freeze_d = settings.pcl, settings.freeze_d
        self.net_d_iters, self.net_d_init_iters = settings.net_d_iters, settings.net_d_init_iters
        self.discriminator_samples = settings.discriminator_samples
        self.net_d = self.model_to_device(build_network(self.opt['network_d']))
        self.print_network(self.net_d)
        bare_d = self.get_bare_model(self.net_d)
        check_embedding_network(self.opt, bare_d)
        load_path = self.opt['path'].get('pretrain_network_d')
        if load_path is not None:
            self.load_network(self.net_d, load_path, self.opt['path'].get('strict_load_d', True),
                              self.opt['path'].get('param_key_d', 'params'))
        self.cri_pcl = build_loss(self.pcl['loss']).to(self.device)
        self.cri_pcl.check_layers(bare_d.num_features)
        self.cri_d = build_loss(settings.discriminator_opt)
        self.net_d.train()
        self._pcl_samples: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        super().init_training_settings()
        if self.freeze_d:  # a fixed embedding: no gradients, BatchNorm on its running statistics
            self.net_d.requires_grad_(False)
            self.net_d.eval()
        self.scaler_d = None if self.freeze_d else grad_scaler(self.device, self.amp)
        if self.channels_last:
            self.net_d.to(memory_format=torch.channels_last)
        if self.compile_networks:
            self.net_d = self._compiled(self.net_d, 'net_d')
        get_root_logger().info(f"PCL: {self.pcl['num_pos']} positives, {self.pcl['num_neg']} negatives, layers "
                               f'{self.cri_pcl.layers}, alpha {self.cri_pcl.loss_weight}, D '
                               f"{'frozen' if self.freeze_d else 'trained'}")

    def setup_optimizers(self) -> None:
        super().setup_optimizers()
        if not self.freeze_d:
            self.optimizer_d = self.training_options.optim_d.build(self, self.net_d.parameters())
            self.optimizers.append(self.optimizer_d)

    def make_samples(self, current_iter: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Positives (K_P, b, c, h, w) and negatives (K_N, b, c, h, w) of ``self.gt`` (Eq. 5-6), drawn from a
        generator seeded by (manual_seed, iteration, rank): reproducible under the training seed."""
        seed = ((self.opt.get('manual_seed') or 0) * 1_000_003 + current_iter) * 1009 + self.opt.get('rank', 0)
        generator = torch.Generator().manual_seed(seed % (2**63 - 1))
        with torch.no_grad():
            if self.pcl['sampling'] == 'official':
                positives = make_positives_official(self.gt, self.pcl['num_pos'], generator)
                return positives, make_negatives_official(self.gt, self.lq, self.pcl['num_neg'], generator)
            positives = make_positives(self.gt, self.pcl['num_pos'], generator)
            return positives, make_negatives(self.gt, self.pcl['num_neg'], generator)

    def pcl_loss(self, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        """alpha * L_CL (Eq. 8-10) of ``self.output``; its features keep their graph, so the term reaches G."""
        net_d = self.get_bare_model(self.net_d)
        with torch.no_grad():
            samples = torch.cat([positives, negatives])
            sample_features = [
                f.view(samples.shape[0], samples.shape[1], *f.shape[1:]) for f in net_d.features(samples.flatten(0, 1))
            ]
        num_pos = positives.shape[0]
        return self.cri_pcl(
            net_d.features(self.output), [f[:num_pos] for f in sample_features], [f[num_pos:] for f in sample_features])

    def _optimize_d(self, positives: Optional[torch.Tensor], negatives: Optional[torch.Tensor],
                    current_iter: int) -> torch.Tensor:
        """One D step: HR (and, with ``discriminator_samples``, the positives) real; SR (and the negatives) fake;
        skipped like G's under ``train.nonfinite``."""
        self.net_d.requires_grad_(True)
        self.optimizer_d.zero_grad()
        real, fake = self.gt, self.output.detach()
        if self.discriminator_samples:
            real = torch.cat([real, positives[1:].flatten(0, 1)])  # positives[0] is HR itself
            fake = torch.cat([fake, negatives.flatten(0, 1)])
        with autocast_to(self.device, self.amp):
            l_d = self.cri_d(self.net_d(real), self.net_d(fake))
        self._backward(l_d, self.scaler_d)
        self._optimizer_step(self.optimizer_d, self.scaler_d, self.net_d, None, 'net_d', {'l_d': l_d}, current_iter)
        return l_d.detach()

    def _grad_scalers(self) -> Dict[str, torch.amp.GradScaler]:
        scalers = super()._grad_scalers()
        if self.scaler_d is not None:
            scalers['d'] = self.scaler_d
        return scalers

    def _updates_generator(self, current_iter: int) -> bool:
        """G steps every ``net_d_iters`` iterations after the ``net_d_init_iters`` D-only ones (SRGANModel's rule)."""
        return current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

    def _before_generator_update(self, current_iter: int, update_g: bool) -> 'OrderedDict[str, torch.Tensor]':
        """Check that SR matches HR, make the samples (for the PCL term of this G step, or for D's step with
        ``discriminator_samples``), keep them for ``_extra_generator_losses`` when the PCL term is due, take D's
        step unless ``freeze_d``, and freeze D when G steps next; returns ``l_d``."""
        if self.output.shape != self.gt.shape:
            raise ValueError(f'network_g: output {tuple(self.output.shape)} differs from the HR batch '
                             f'{tuple(self.gt.shape)}; PCL compares SR with HR samples (check upscale and scale)')
        use_pcl = update_g and current_iter >= self.pcl['start_iter']
        positives = negatives = None
        if use_pcl or (self.discriminator_samples and not self.freeze_d):
            positives, negatives = self.make_samples(current_iter)
        self._pcl_samples = (positives, negatives) if use_pcl else None
        log = OrderedDict()
        if not self.freeze_d:
            log['l_d'] = self._optimize_d(positives, negatives, current_iter)
        if update_g:  # the G step's backward goes through D (l_pcl) but must not leave D gradients
            self.net_d.requires_grad_(False)
        return log

    def _extra_generator_losses(self, current_iter: int) -> 'OrderedDict[str, torch.Tensor]':
        """``l_pcl`` when ``_before_generator_update`` kept samples (released here: none outlives the iteration)."""
        samples, self._pcl_samples = self._pcl_samples, None
        losses = OrderedDict()
        if samples is not None:
            losses['l_pcl'] = self.pcl_loss(*samples)
        return losses

    def save(self, epoch: int, current_iter: int) -> None:
        self.save_network(self.net_d, 'net_d', current_iter)
        super().save(epoch, current_iter)
