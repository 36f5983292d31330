"""Crops of LR, bicubic, the network and HR side by side, with PSNR in the titles (the demo's ``visual.png``)."""
from typing import List, NamedTuple, Optional

import numpy as np


class Comparison(NamedTuple):
    name: str
    lr: np.ndarray  # (h, w, 3) uint8 RGB
    bicubic: np.ndarray  # (s h, s w, 3) uint8 RGB
    network: np.ndarray  # (s h, s w, 3) uint8 RGB
    hr: np.ndarray  # (s h, s w, 3) uint8 RGB
    bicubic_psnr: float
    network_psnr: float


def centre_crop_box(height: int, width: int, size: int) -> tuple:
    """(top, left, bottom, right) of the centred size x size box, clipped to the image."""
    size_h, size_w = min(size, height), min(size, width)
    top, left = (height - size_h) // 2, (width - size_w) // 2
    return top, left, top + size_h, left + size_w


def comparison_figure(comparisons: List[Comparison], crop: Optional[int] = 96, network_label: str = 'ours'):
    """One row per image: LR (nearest, to the HR size), bicubic, the network, HR, all the same HR crop.

    Args:
        comparisons (list[Comparison]): the images and their PSNR.
        crop (int | None): side of the centred HR crop; None shows the whole image. Default: 96.
        network_label (str): the network's column title. Default: 'ours'.

    Returns:
        matplotlib.figure.Figure: with four image axes per row.
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(len(comparisons), 4, figsize=(8, 2.2 * len(comparisons)), squeeze=False)
    for row_axes, item in zip(axes, comparisons):
        height, width = item.hr.shape[:2]
        scale = height // item.lr.shape[0]
        nearest = np.repeat(np.repeat(item.lr, scale, axis=0), scale, axis=1)[:height, :width]
        top, left, bottom, right = centre_crop_box(height, width, crop or max(height, width))
        panels = [(nearest, f'{item.name}: LR (nearest)'), (item.bicubic, f'bicubic {item.bicubic_psnr:.2f} dB'),
                  (item.network, f'{network_label} {item.network_psnr:.2f} dB'), (item.hr, 'HR')]
        for ax, (image, title) in zip(row_axes, panels):
            ax.imshow(image[top:bottom, left:right], interpolation='nearest')
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.tight_layout()
    return figure
