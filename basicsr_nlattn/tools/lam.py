"""Local Attribution Maps (LAM): which input pixels a super-resolution network's output in a box depends on.

Paper: Interpreting Super-Resolution Networks with Local Attribution Maps (Gu and Dong, CVPR 2021),
https://arxiv.org/abs/2011.11036; demo code https://github.com/X-Lowlevel-Vision/LAM_Demo (not copied: written from
the paper's definitions).

LAM is path-integrated gradients (integrated gradients along a path other than the straight line) of a local
objective with respect to the LR input I:

* the objective D(F(I)) is the sum, over an output box, of the gradient magnitude of the SR output F(I): LAM
  interprets edges and textures, not flat colour (:func:`gradient_magnitude_objective`);
* the baseline is the blurred input I' = blur_sigma(I), and the path is the progressive blurring path
  gamma(alpha) = blur_{sigma (1 - alpha)}(I), alpha from 0 (gamma(0) = I') to 1 (gamma(1) = I) (:func:`blur_path`);
* LAM(I) = integral over alpha of grad_I D(F(gamma(alpha))) * d gamma / d alpha, summed here along ``steps`` path
  points with the trapezoidal rule, d gamma taken as the difference of consecutive path points, so that the sum of
  the attributions equals D(F(I)) - D(F(I')) up to the discretisation only (completeness;
  :func:`path_integrated_gradients`);
* the attribution map is |LAM| summed over the colour channels, and the Diffusion Index
  DI = (1 - Gini(map)) x 100 (:func:`gini`, :func:`diffusion_index`): 100 when every input pixel contributes alike,
  near 0 when one pixel does everything.

Choices that are ours (the paper does not fix them): the gradient detector (forward differences inside the box,
magnitude sqrt(gx^2 + gy^2) per channel), the blur kernel (Gaussian of radius ceil(3 sigma), replicated borders; 9
taps at the default sigma 1.2, the demo code's kernel size), the trapezoidal rule, and the figure (the map on a log
scale of 4 decades; a density view, the map blurred by a Gaussian and divided by its maximum, in place of the demo
code's kernel density estimate).
"""
import math
from typing import Callable, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_SIGMA = 1.2  # the blur of the baseline (the demo code's default)
DEFAULT_STEPS = 50  # path points (the demo code's "fold")
LOG_DECADES = 4  # the attribution panel of the figure: 1e-4 of the maximum and above
GRADIENT_EPS = 1e-12  # inside the square root of the gradient magnitude: a finite derivative where it is zero


class Box(NamedTuple):
    """An output box in SR pixels: rows ``top .. top + height - 1``, columns ``left .. left + width - 1``."""
    top: int
    left: int
    height: int
    width: int


class Attribution(NamedTuple):
    """The result of :func:`path_integrated_gradients` for one network and one image."""
    attribution: Tensor  # (c, h, w): LAM per input pixel and channel, signed
    objective_input: float  # D(F(I))
    objective_baseline: float  # D(F(I')), I' the blurred baseline


def gradient_magnitude_objective(sr: Tensor, box: Box) -> Tensor:
    """LAM's objective D(F(I)): the sum over ``box`` of the gradient magnitude of the SR output.

    The gradient detector is ours: forward differences inside the box, gx = sr[y, x + 1] - sr[y, x] and
    gy = sr[y + 1, x] - sr[y, x] on the (height - 1) x (width - 1) pixels where both exist, magnitude
    sqrt(gx^2 + gy^2 + 1e-12) per channel, summed over channels and pixels.

    Args:
        sr (Tensor): SR outputs, (b, c, H, W).
        box (Box): the output box, at least 2 x 2, inside H x W.

    Returns:
        Tensor: (b, ) the objective of each output.
    """
    crop = sr[..., box.top:box.top + box.height, box.left:box.left + box.width]
    grad_x = crop[..., :-1, 1:] - crop[..., :-1, :-1]
    grad_y = crop[..., 1:, :-1] - crop[..., :-1, :-1]
    return (grad_x.square() + grad_y.square() + GRADIENT_EPS).sqrt().flatten(1).sum(1)


def gaussian_kernels(sigmas: Tensor, radius: int) -> Tensor:
    """Normalised 1D Gaussian kernels, one per sigma, all of ``2 radius + 1`` taps; sigma 0 is the identity.

    Args:
        sigmas (Tensor): (n, ) standard deviations in pixels, >= 0.
        radius (int): taps each side of the centre.

    Returns:
        Tensor: (n, 2 radius + 1), each row summing to 1.
    """
    offsets = torch.arange(-radius, radius + 1, dtype=sigmas.dtype, device=sigmas.device)
    safe = sigmas.clamp_min(1e-6)[:, None]
    kernels = torch.exp(-0.5 * (offsets[None] / safe).square())  # sigma -> 0: 1 at the centre, 0 elsewhere
    return kernels / kernels.sum(1, keepdim=True)


def blur_radius(sigma: float) -> int:
    """Our kernel radius for a Gaussian of standard deviation ``sigma``: ceil(3 sigma) (4 at sigma 1.2: 9 taps)."""
    return max(int(math.ceil(3 * sigma)), 0)


def gaussian_blur(images: Tensor, sigmas: Tensor) -> Tensor:
    """Blur each image by its own Gaussian (separable, replicated borders).

    Args:
        images (Tensor): (n, c, h, w).
        sigmas (Tensor): (n, ) standard deviations in pixels, >= 0; 0 leaves an image unchanged.

    Returns:
        Tensor: (n, c, h, w).
    """
    n, c, h, w = images.shape
    radius = blur_radius(float(sigmas.max()))
    if radius == 0:
        return images.clone()
    kernels = gaussian_kernels(sigmas.to(images), radius).repeat_interleave(c, 0)  # (n c, taps): one per channel
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode='replicate'), kernels[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode='replicate'), kernels[:, None, :, None], groups=n * c)
    return flat.view(n, c, h, w)


def blur_path(image: Tensor, sigma: float, alphas: Tensor) -> Tensor:
    """Points of LAM's progressive blurring path, gamma(alpha) = blur_{sigma (1 - alpha)}(I).

    Args:
        image (Tensor): the input I, (c, h, w).
        sigma (float): the blur of the baseline gamma(0) = I'.
        alphas (Tensor): (n, ) in [0, 1]; alpha = 1 gives I itself.

    Returns:
        Tensor: (n, c, h, w).
    """
    sigmas = sigma * (1 - alphas.to(image))
    return gaussian_blur(image.expand(len(alphas), *image.shape), sigmas)


def trapezoid_step_weights(path: Tensor) -> Tensor:
    """The factor of each path point's gradient in the trapezoidal path integral: half of the step before it plus
    half of the step after it, d_k = gamma_{k+1} - gamma_k.

    Args:
        path (Tensor): (n, c, h, w), n >= 2 points from the baseline to the input.

    Returns:
        Tensor: (n, c, h, w), summing over n to gamma_{n-1} - gamma_0.
    """
    steps = path[1:] - path[:-1]  # (n - 1, c, h, w)
    zero = torch.zeros_like(path[:1])
    return 0.5 * (torch.cat([zero, steps]) + torch.cat([steps, zero]))


def path_integrated_gradients(net: nn.Module,
                              image: Tensor,
                              box: Box,
                              *,
                              sigma: float = DEFAULT_SIGMA,
                              steps: int = DEFAULT_STEPS,
                              batch: int = 10,
                              objective: Callable[[Tensor, Box], Tensor] = gradient_magnitude_objective,
                              progress: Optional[Callable[[int], None]] = None) -> Attribution:
    """LAM of ``net`` for ``image`` and the output ``box``: the path integral of grad_I D(F(gamma)) . d gamma.

    The ``steps`` path points alpha_k = k / (steps - 1) run from the blurred baseline to the input; the network
    sees ``batch`` of them per forward and backward (the memory bound); each gradient is weighted by
    :func:`trapezoid_step_weights`. The objective at the first and last point comes from the same forwards.

    Args:
        net (nn.Module): the network, in eval mode (its parameters are not changed; no gradient is kept for them).
        image (Tensor): the LR input I, (c, h, w).
        box (Box): the output box, in SR pixels.
        sigma (float): the baseline's blur. Default: 1.2.
        steps (int): path points, >= 2. Default: 50.
        batch (int): path points per forward, >= 1. Default: 10.
        objective (callable): (sr (b, c, H, W), box) -> (b, ). Default: :func:`gradient_magnitude_objective`.
        progress (callable, optional): called with the number of path points done after each batch.

    Returns:
        Attribution: the signed attribution (c, h, w) and the objective at the input and at the baseline.
    """
    if steps < 2:
        raise ValueError(f'steps must be >= 2, got {steps}')
    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    image = image.detach()
    path = blur_path(image, sigma, torch.linspace(0, 1, steps, dtype=torch.float64)).to(image.dtype)
    weights = trapezoid_step_weights(path)
    attribution = torch.zeros_like(image)
    ends = {}
    with torch.enable_grad():
        for start in range(0, steps, batch):
            points = path[start:start + batch].clone().requires_grad_(True)
            values = objective(net(points), box)
            (gradients, ) = torch.autograd.grad(values.sum(), points)
            attribution += (gradients * weights[start:start + batch]).sum(0)
            for index in (0, steps - 1):
                if start <= index < start + len(points):
                    ends[index] = float(values[index - start].detach())
            if progress is not None:
                progress(len(points))
    return Attribution(attribution, objective_input=ends[steps - 1], objective_baseline=ends[0])


def attribution_map(attribution: Tensor) -> Tensor:
    """LAM's map: |attribution| summed over the colour channels, (c, h, w) -> (h, w)."""
    return attribution.abs().sum(0)


def gini(values: Tensor) -> float:
    """The Gini coefficient of non-negative values, sum_i sum_j |x_i - x_j| / (2 n sum_i x_i).

    Computed in O(n log n) from the ascending order x_(1) <= ... <= x_(n):
    sum_i (2 i - n - 1) x_(i) / (n sum x). 0 when all values are equal (all zero included), (n - 1) / n when one
    value holds everything.

    Args:
        values (Tensor): any shape, flattened, >= 0.

    Returns:
        float: in [0, 1).
    """
    flat = values.detach().flatten().double()
    if bool((flat < 0).any()):
        raise ValueError('gini takes non-negative values')
    total = float(flat.sum())
    n = flat.numel()
    if n == 0 or total == 0:
        return 0.0
    ranks = torch.arange(1, n + 1, dtype=torch.float64, device=flat.device)
    return float(((2 * ranks - n - 1) * flat.sort().values).sum()) / (n * total)


def diffusion_index(attribution_map_: Tensor) -> float:
    """LAM's Diffusion Index, DI = (1 - Gini(map)) x 100: high when many input pixels contribute."""
    return (1 - gini(attribution_map_)) * 100


def density_view(attribution_map_: Tensor, sigma: Optional[float] = None) -> Tensor:
    """The map blurred by a Gaussian and divided by its maximum, in [0, 1]: where the attribution is dense.

    Args:
        attribution_map_ (Tensor): (h, w), >= 0.
        sigma (float, optional): blur in pixels. Default: 1/32 of the shorter side, at least 1 (our choice).

    Returns:
        Tensor: (h, w).
    """
    h, w = attribution_map_.shape
    sigma = max(min(h, w) / 32, 1.0) if sigma is None else sigma
    blurred = gaussian_blur(attribution_map_[None, None].float(), torch.tensor([sigma]))[0, 0]
    return blurred / blurred.max().clamp_min(1e-12)


class LamRow(NamedTuple):
    """One network's panels in :func:`lam_figure`."""
    label: str  # e.g. 'ENLCN (demo_ENLCN_x4)'
    attribution_map: Tensor  # (h, w) on the LR grid
    diffusion_index: float
    sr_crop: Tensor  # (3, box height, box width) in [0, 1]


def lam_figure(image: Tensor, box: Box, scale: float, rows: Sequence[LamRow]):
    """A matplotlib figure (Agg): the input with the box (in LR pixels: the SR box divided by ``scale``) on the
    left, and one row per network: its attribution map (log scale), its density view over the input with the DI in
    the title, and its output on the box.

    Args:
        image (Tensor): (3, h, w) RGB in [0, 1], the LR input.
        box (Box): the output box in SR pixels.
        scale (float): SR pixels per LR pixel.
        rows (list[LamRow]): one per network.

    Returns:
        matplotlib.figure.Figure
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    height, width = image.shape[-2:]
    panel = 2.4
    aspect = max(width / height, 0.6)
    figure = plt.figure(figsize=(panel * aspect * 4.2, panel * max(len(rows), 1.6)))
    grid = figure.add_gridspec(len(rows), 4)
    rgb = image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()
    gray = image.mean(0).clamp(0, 1).cpu().numpy()

    def draw_box(ax) -> None:
        ax.add_patch(
            Rectangle((box.left / scale - 0.5, box.top / scale - 0.5),
                      box.width / scale,
                      box.height / scale,
                      fill=False,
                      edgecolor='lime',
                      linewidth=0.8))

    def bare(ax, title: str) -> None:
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])

    ax = figure.add_subplot(grid[:, 0])
    ax.imshow(rgb)
    draw_box(ax)
    bare(ax, f'input {height}x{width}, box {box.height}x{box.width} (SR pixels)')
    for index, row in enumerate(rows):
        heat = row.attribution_map.float()
        # Heavy-tailed: on a log scale over LOG_DECADES decades below the maximum, so that the far, small
        # attributions that distinguish the networks show beside the peak at the box.
        relative = (heat / heat.max().clamp_min(1e-30)).clamp_min(10**-LOG_DECADES)
        ax = figure.add_subplot(grid[index, 1])
        ax.imshow(relative.log10().cpu().numpy(), cmap='hot', vmin=-LOG_DECADES, vmax=0)
        draw_box(ax)
        bare(ax, f'{row.label}\n|LAM|, log scale ({LOG_DECADES} decades)')
        ax = figure.add_subplot(grid[index, 2])
        ax.imshow(gray, cmap='gray', vmin=0, vmax=1)
        ax.imshow(density_view(heat).cpu().numpy(), cmap='jet', alpha=0.55, vmin=0, vmax=1)
        draw_box(ax)
        bare(ax, f'density, DI = {row.diffusion_index:.2f}')
        ax = figure.add_subplot(grid[index, 3])
        ax.imshow(row.sr_crop.permute(1, 2, 0).clamp(0, 1).cpu().numpy(), interpolation='nearest')
        bare(ax, 'output on the box')
    figure.tight_layout()
    return figure
