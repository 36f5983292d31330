"""Models built in-process for unit tests (BasicSR's option keys), and the gradients an optimizer applies."""
import copy
from typing import Any, Dict, List, Optional

import torch

# A tiny ENLCN x2 for model tests: two ENLCA blocks with 8 random features, redrawn every 2 iterations.
TINY_ENLCN = {
    'type': 'ENLCN',
    'num_feat': 8,
    'num_block': 2,
    'upscale': 2,
    'attn_every': 1,
    'reduction': 2,
    'num_random_features': 8,
    'redraw_interval': 2
}


def inference_model(network_g: Dict[str, Any],
                    scale: int,
                    pretrain_network_g: Optional[str] = None,
                    tile: Optional[Dict[str, Any]] = None,
                    self_ensemble: bool = False):
    """A ContrastiveSRModel in test mode (BasicSR's option keys), on the CPU, optionally loading weights strictly."""
    from basicsr_nlattn.models import ContrastiveSRModel
    path = {} if pretrain_network_g is None else {'pretrain_network_g': pretrain_network_g, 'strict_load_g': True}
    return ContrastiveSRModel({
        'is_train': False,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'scale': scale,
        'network_g': copy.deepcopy(network_g),
        'path': path,
        'val': {
            'tile': tile,
            'self_ensemble': self_ensemble
        }
    })


def training_options(model_type: str,
                     network_g: Dict[str, Any],
                     scale: int = 2,
                     manual_seed: int = 5,
                     path: Optional[Dict[str, Any]] = None,
                     **train: Any) -> Dict[str, Any]:
    """Options of a model in training mode on the CPU, as BasicSR's parse_options leaves them (Adam 1e-3, L1)."""
    return {
        'name': 'unit',
        'model_type': model_type,
        'is_train': True,
        'dist': False,
        'num_gpu': 0,
        'rank': 0,
        'world_size': 1,
        'scale': scale,
        'manual_seed': manual_seed,
        'network_g': copy.deepcopy(network_g),
        'path': {
            'strict_load_g': True,
            **(path or {})
        },
        'train': {
            'ema_decay': 0,
            'optim_g': {
                'type': 'Adam',
                'lr': 1e-3
            },
            'scheduler': {
                'type': 'MultiStepLR',
                'milestones': [1000],
                'gamma': 0.5
            },
            'pixel_opt': {
                'type': 'L1Loss',
                'loss_weight': 1.0
            },
            **copy.deepcopy(train)
        },
        'val': {}
    }


def gradients_at_step(optimizer: torch.optim.Optimizer) -> List[List[Optional[torch.Tensor]]]:
    """Record, at each ``optimizer.step()``, copies of the gradients it is about to apply (after any clipping).

    Returns:
        list: grows by one list per step, a cloned ``grad`` (or None) per parameter, in ``param_groups`` order.
    """
    steps: List[List[Optional[torch.Tensor]]] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        steps.append([
            None if p.grad is None else p.grad.detach().clone() for group in optimizer.param_groups
            for p in group['params']
        ])

    optimizer.register_step_pre_hook(record)
    return steps


def gradient_norm(gradients: List[Optional[torch.Tensor]]) -> torch.Tensor:
    """Total 2-norm of a list of gradients (None entries skipped), as ``clip_grad_norm_`` measures it."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients if g is not None]))
