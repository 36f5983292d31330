"""PCL-SR's positive and negative samples, made on the fly from the HR batch on its device (Eq. 5-6).

Positives: HR itself and K_P - 1 sharpened copies (unsharp masking: HR + amount (HR - G * HR) with a random
Gaussian G, so they carry more high frequency than HR). Negatives: K_N copies blurred by random Gaussian kernels
(size from {3, 5, 7, 9, 11}, sigma from U[0.3, 1.5]: the paper's setting). Every random draw comes from the
generator the caller passes, so the samples are reproducible under the training seed.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_SIZES = (3, 5, 7, 9, 11)
SIGMA_RANGE = (0.3, 1.5)
SHARPEN_AMOUNT_RANGE = (0.5, 1.5)


def gaussian_kernels(sizes: Tensor, sigmas: Tensor, max_size: int) -> Tensor:
    """Normalised Gaussian kernels, (n,) sizes and sigmas -> (n, max_size, max_size), zero outside each size."""
    radius = max_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=sigmas.dtype)
    inside = offsets.abs()[None, :] <= (sizes[:, None] // 2)  # (n, max_size)
    profile = torch.exp(-offsets[None, :]**2 / (2 * sigmas[:, None]**2)) * inside
    kernels = profile[:, :, None] * profile[:, None, :]
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def blur_each(images: Tensor, kernels: Tensor) -> Tensor:
    """Blur image i of (b, c, h, w) with kernel i of (b, k, k), reflect padding, in one grouped convolution."""
    b, c, h, w = images.shape
    size = kernels.shape[-1]
    weight = kernels.to(images).repeat_interleave(c, dim=0).unsqueeze(1)  # (b c, 1, k, k)
    padded = F.pad(images.reshape(1, b * c, h, w), [size // 2] * 4, mode='reflect')
    return F.conv2d(padded, weight, groups=b * c).view(b, c, h, w)


def _random_kernels(count: int, generator: Optional[torch.Generator], kernel_sizes: Sequence[int],
                    sigma_range: Tuple[float, float]) -> Tensor:
    sizes = torch.tensor(kernel_sizes)[torch.randint(len(kernel_sizes), (count, ), generator=generator)]
    sigmas = torch.empty(count, dtype=torch.float64).uniform_(*sigma_range, generator=generator)
    return gaussian_kernels(sizes, sigmas, max(kernel_sizes))


def make_negatives(hr: Tensor,
                   num_neg: int = 4,
                   generator: Optional[torch.Generator] = None,
                   kernel_sizes: Sequence[int] = KERNEL_SIZES,
                   sigma_range: Tuple[float, float] = SIGMA_RANGE) -> Tensor:
    """N_i = {Blur(HR)} (Eq. 6): (b, c, h, w) -> (num_neg, b, c, h, w), a random kernel per sample and image."""
    if num_neg < 1:
        raise ValueError(f'num_neg must be >= 1, got {num_neg}')
    b = hr.shape[0]
    kernels = _random_kernels(num_neg * b, generator, kernel_sizes,
                              sigma_range).view(num_neg, b, *([max(kernel_sizes)] * 2))
    return torch.stack([blur_each(hr, kernels[k]) for k in range(num_neg)])


def make_positives(hr: Tensor,
                   num_pos: int = 4,
                   generator: Optional[torch.Generator] = None,
                   kernel_sizes: Sequence[int] = KERNEL_SIZES,
                   sigma_range: Tuple[float, float] = SIGMA_RANGE,
                   amount_range: Tuple[float, float] = SHARPEN_AMOUNT_RANGE) -> Tensor:
    """P_i = {HR} + {Sharpen(HR)} (Eq. 5): (b, c, h, w) -> (num_pos, b, c, h, w); the first is HR itself."""
    if num_pos < 1:
        raise ValueError(f'num_pos must be >= 1, got {num_pos}')
    b = hr.shape[0]
    sharpened = []
    for _ in range(num_pos - 1):
        kernels = _random_kernels(b, generator, kernel_sizes, sigma_range)
        amount = torch.empty(b, dtype=torch.float64).uniform_(*amount_range, generator=generator).to(hr)
        sharpened.append(hr + amount.view(b, 1, 1, 1) * (hr - blur_each(hr, kernels)))
    return torch.stack([hr] + sharpened)


# PIL / kornia "sharpness": blend the image with a 3x3 smoothing of itself; factor 1 is the identity
_SMOOTH_KERNEL = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13
OFFICIAL_SHARPNESS_RANGE = (0.5, 3.0)
OFFICIAL_SIGMA_RANGE = (0.1, 2.0)


def make_positives_official(hr: Tensor, num_pos: int = 4, generator: Optional[torch.Generator] = None) -> Tensor:
    """The official code's positives: HR and num_pos - 1 copies with a random sharpness factor in U[0.5, 3)
    (factors below 1 soften), clamped to [0, 1]: (num_pos, b, c, h, w)."""
    if num_pos < 1:
        raise ValueError(f'num_pos must be >= 1, got {num_pos}')
    b = hr.shape[0]
    smooth = blur_each(hr, _SMOOTH_KERNEL.expand(b, 3, 3))
    copies = []
    for _ in range(num_pos - 1):
        factor = torch.empty(b, dtype=torch.float64).uniform_(*OFFICIAL_SHARPNESS_RANGE, generator=generator).to(hr)
        copies.append((smooth + factor.view(b, 1, 1, 1) * (hr - smooth)).clamp(0, 1))
    return torch.stack([hr] + copies)


def make_negatives_official(hr: Tensor,
                            lq: Tensor,
                            num_neg: int = 4,
                            generator: Optional[torch.Generator] = None) -> Tensor:
    """The official code's negatives: the bicubic-upsampled LR and num_neg - 1 Gaussian blurs of HR with sigma in
    U[0.1, 2): (num_neg, b, c, h, w)."""
    if num_neg < 1:
        raise ValueError(f'num_neg must be >= 1, got {num_neg}')
    upsampled = F.interpolate(lq, size=hr.shape[-2:], mode='bicubic', align_corners=False).clamp(0, 1)
    blurred = [make_negatives(hr, num_neg - 1, generator, sigma_range=OFFICIAL_SIGMA_RANGE)] if num_neg > 1 else []
    return torch.cat([upsampled.unsqueeze(0)] + blurred)
