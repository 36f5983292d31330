"""Build the small paired SR data set of the CPU demo from the photographs that scikit-image ships (no download).

Layout (DIV2K's naming, read by BasicSR's PairedImageDataset with ``filename_tmpl: '{}x4'``)::

    <output>/train/HR/astronaut.png                 <output>/val/HR/chelsea.png
    <output>/train/LR_bicubic/X4/astronautx4.png    <output>/val/LR_bicubic/X4/chelseax4.png
    <output>/train/HR.lmdb  (+ meta_info.txt)       <output>/val/HR.lmdb
    <output>/train/LR_bicubic_X4.lmdb               <output>/val/LR_bicubic_X4.lmdb

HR images are cropped so that every scale divides them (modcrop); LR images are made with BasicSR's MATLAB-like
bicubic ``imresize``, the way DIV2K's LR_bicubic was made. LMDB keys are the image names (the same in HR and LR
databases, as BasicSR's paired LMDB reader requires), written with ``basicsr.utils.lmdb_util``.

Usage: ``python scripts/make_demo_data.py [--output datasets/demo] [--scales 2 3 4]``
"""
import argparse
import math
import os
import shutil
from os import path as osp
from typing import Callable, Dict, List

import cv2
import numpy as np
from skimage import data as skdata

# Photographs only: the synthetic and binary images of skimage.data would teach nothing about natural images.
TRAIN_IMAGES: Dict[str, Callable[[], np.ndarray]] = {
    'astronaut': skdata.astronaut,
    'coffee': skdata.coffee,
    'rocket': skdata.rocket,
    'hubble': skdata.hubble_deep_field,
    'immunohistochemistry': skdata.immunohistochemistry,
    'retina': skdata.retina,
    'motorcycle': lambda: skdata.stereo_motorcycle()[0],
    'camera': skdata.camera,
    'brick': skdata.brick,
    'grass': skdata.grass,
    'gravel': skdata.gravel,
}
VAL_IMAGES: Dict[str, Callable[[], np.ndarray]] = {
    'chelsea': skdata.chelsea,
    'coins': skdata.coins,
    'clock': skdata.clock,
}
MAX_TRAIN_SIDE = 480  # keeps the whole set to a few MB and its generation to seconds
MAX_VAL_SIDE = 192  # validation of the CPU demo must take a second, not a minute


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """RGB or gray skimage array -> 3-channel BGR uint8, as cv2 writes it."""
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[:, :, 2::-1]).astype(np.uint8)


def center_crop(image: np.ndarray, max_side: int, multiple: int) -> np.ndarray:
    """Center crop to at most ``max_side`` pixels a side, each side a multiple of ``multiple`` (modcrop)."""
    h, w = image.shape[:2]
    new_h = min(h, max_side) // multiple * multiple
    new_w = min(w, max_side) // multiple * multiple
    top, left = (h - new_h) // 2, (w - new_w) // 2
    return image[top:top + new_h, left:left + new_w]


def write_split(split_dir: str, images: Dict[str, Callable[[], np.ndarray]], scales: List[int], max_side: int) -> None:
    from basicsr_nlattn.utils.image_files import bicubic_downscale
    multiple = math.lcm(*scales)
    hr_dir = osp.join(split_dir, 'HR')
    os.makedirs(hr_dir, exist_ok=True)
    names = sorted(images)
    for name in names:
        hr = center_crop(to_bgr_uint8(images[name]()), max_side, multiple)
        cv2.imwrite(osp.join(hr_dir, f'{name}.png'), hr)
        for scale in scales:
            lr_dir = osp.join(split_dir, 'LR_bicubic', f'X{scale}')
            os.makedirs(lr_dir, exist_ok=True)
            cv2.imwrite(osp.join(lr_dir, f'{name}x{scale}.png'), bicubic_downscale(hr, scale))
    write_lmdb(hr_dir, osp.join(split_dir, 'HR.lmdb'), names, '{}.png')
    for scale in scales:
        write_lmdb(
            osp.join(split_dir, 'LR_bicubic', f'X{scale}'), osp.join(split_dir, f'LR_bicubic_X{scale}.lmdb'), names,
            f'{{}}x{scale}.png')


def write_lmdb(folder: str, lmdb_path: str, names: List[str], filename_tmpl: str) -> None:
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    if osp.exists(lmdb_path):
        shutil.rmtree(lmdb_path)  # only ever our own generated database, rebuilt from the PNGs just written
    make_lmdb_from_imgs(folder, lmdb_path, [filename_tmpl.format(name) for name in names], names, n_thread=1)


def make_demo_data(output: str, scales: List[int]) -> None:
    """Write the demo train/val sets for ``scales`` under ``output`` (existing demo files are rewritten)."""
    write_split(osp.join(output, 'train'), TRAIN_IMAGES, scales, MAX_TRAIN_SIDE)
    write_split(osp.join(output, 'val'), VAL_IMAGES, scales, MAX_VAL_SIDE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--output', default='datasets/demo', help='output folder. Default: datasets/demo')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4')
    args = parser.parse_args()
    bad = [scale for scale in args.scales if scale < 2]
    if bad:
        parser.error(f'--scales must be integers >= 2, got {bad}')
    import basicsr_nlattn  # noqa: F401  (basicsr 1.4.2 does not import on today's torchvision without compat)
    make_demo_data(args.output, sorted(set(args.scales)))
    print(f'Demo data for scales {sorted(set(args.scales))} written to {osp.abspath(args.output)}')


if __name__ == '__main__':
    main()
