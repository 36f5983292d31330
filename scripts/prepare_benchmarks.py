"""Arrange the five standard SR test sets (Set5, Set14, B100, Urban100, Manga109) the way the test options read them.

    python scripts/prepare_benchmarks.py --input DIR --output datasets [--scales 2 3 4] [--datasets Set5 Set14 ...]

Layout written (the ``dataroot_gt`` / ``dataroot_lq`` of ``options/test_*.yml``)::

    <output>/Set5/GTmod12/baby.png      HR, height and width cropped to multiples of 12 (so 2, 3 and 4 divide them)
    <output>/Set5/LRbicx4/baby.png      the GTmod12 image downscaled 1/4, same file name

``--input`` holds one folder per set (``BSD100`` is accepted for B100, written out as ``B100``; folder names match
case-insensitively), with the HR images (.png .jpg .jpeg .bmp .tif .tiff, 8-bit; gray ones become 3 channels)
directly inside or in a subfolder ``HR``, ``GTmod12`` or ``original``: the first of these that holds images.

The modcrop keeps the top-left corner (``img[:h - h % 12, :w - w % 12]``), BasicSR's ``mod_crop`` convention, with
which its benchmark GTmod12 folders were made. LR images are made with BasicSR's MATLAB-like bicubic ``imresize``
(with anti-aliasing) of the GTmod12 image, as float32 in [0, 1], rounded and clipped to uint8.

Bad input (missing folders, no images, scales that do not divide 12, an output that is an input folder) stops the
run before anything is written; an unreadable image stops it when reached, naming the file (what was written stays,
and a later run resumes). An output file that already exists with the expected size is kept, so an interrupted
run can be resumed and a second run writes nothing; files are written to a temporary name and renamed, so an
interruption never leaves a truncated PNG. The input folders are never written to.
"""
import argparse
import os
import sys
from os import path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

DATASETS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
FOLDER_NAMES: Dict[str, Tuple[str, ...]] = {'B100': ('B100', 'BSD100')}  # input folder names of a set, in order
HR_SUBFOLDERS = ('HR', 'GTmod12', 'original')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
GT_MULTIPLE = 12
ALLOWED_SCALES = tuple(scale for scale in range(2, GT_MULTIPLE + 1) if GT_MULTIPLE % scale == 0)  # 2, 3, 4, 6, 12


class PrepareError(Exception):
    """Bad input: the message names the option or the file, and what is allowed."""


class BenchmarkSet(NamedTuple):
    name: str  # the standard name, as written under --output
    hr_folder: str  # where its HR images were found
    images: List[str]
    output_folder: str


def dataset_names(requested: Sequence[str]) -> List[str]:
    """Standard names of ``--datasets`` values (case-insensitive; ``BSD100`` means B100), in order, without repeats."""
    lookup = {name.lower(): name for name in DATASETS}
    lookup.update({alias.lower(): name for name, aliases in FOLDER_NAMES.items() for alias in aliases})
    names: List[str] = []
    for value in requested:
        if value.lower() not in lookup:
            raise PrepareError(f"--datasets: unknown set '{value}'; allowed: {', '.join(DATASETS)} (BSD100 = B100)")
        if lookup[value.lower()] not in names:
            names.append(lookup[value.lower()])
    return names


def find_child_folder(parent: str, names: Sequence[str]) -> Optional[str]:
    """The first of ``names`` that is a subfolder of ``parent``, matched case-insensitively, else None."""
    folders = {entry.name.lower(): entry.path for entry in os.scandir(parent) if entry.is_dir()}
    for name in names:
        if name.lower() in folders:
            return folders[name.lower()]
    return None


def list_images(folder: str) -> List[str]:
    """The image files (by extension) directly inside ``folder``, sorted."""
    return sorted(
        entry.path for entry in os.scandir(folder) if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS))


def find_hr_images(set_folder: str) -> Tuple[str, List[str]]:
    """The HR images of a set folder: directly inside, else in its first subfolder HR, GTmod12 or original with any."""
    for folder in [set_folder] + [find_child_folder(set_folder, [name]) for name in HR_SUBFOLDERS]:
        images = list_images(folder) if folder is not None else []
        if images:
            return folder, images
    raise PrepareError(f"--input: no images ({' '.join(IMAGE_EXTENSIONS)}) in '{set_folder}' nor in its "
                       f"{', '.join(HR_SUBFOLDERS)} subfolders")


def plan_sets(input_root: str, output_root: str, requested: Optional[Sequence[str]]) -> List[BenchmarkSet]:
    """Check the folders and list the images of every set to prepare; nothing is written.

    ``requested`` None means all five sets, each skipped with a note when ``input_root`` lacks it; a set named
    explicitly must be there.
    """
    if not osp.isdir(input_root):
        raise PrepareError(f"--input: folder '{input_root}' does not exist")
    if osp.exists(output_root) and not osp.isdir(output_root):
        raise PrepareError(f"--output: '{output_root}' is a file, not a folder")
    names = list(DATASETS) if requested is None else dataset_names(requested)
    sets: List[BenchmarkSet] = []
    for name in names:
        folder_names = FOLDER_NAMES.get(name, (name, ))
        set_folder = find_child_folder(input_root, folder_names)
        if set_folder is None:
            looked_for = ' or '.join(f"'{osp.join(input_root, folder)}'" for folder in folder_names)
            if requested is not None:
                raise PrepareError(f'--datasets: {name} is not in --input (no folder {looked_for})')
            print(f'{name}: no folder {looked_for}; skipped')
            continue
        hr_folder, images = find_hr_images(set_folder)
        stems: Dict[str, str] = {}
        for image in images:
            stem = osp.splitext(osp.basename(image))[0]
            if stem in stems:
                raise PrepareError(f"--input: '{stems[stem]}' and '{image}' would both be written as {stem}.png")
            stems[stem] = image
        output_folder = osp.join(output_root, name)
        if osp.realpath(output_folder) == osp.realpath(set_folder):
            raise PrepareError(f"--output: '{output_root}' would write {name} into its input folder '{set_folder}'; "
                               'choose a separate folder')
        sets.append(BenchmarkSet(name, hr_folder, images, output_folder))
    if not sets:
        raise PrepareError(f"--input: none of the sets {', '.join(names)} is in '{input_root}' (one folder per set, "
                           'e.g. Set5/ with its HR images)')
    return sets


def modcrop(image: np.ndarray, multiple: int = GT_MULTIPLE) -> np.ndarray:
    """Crop height and width down to multiples of ``multiple``, keeping the top-left corner (BasicSR's mod_crop)."""
    h, w = image.shape[:2]
    return image[:h - h % multiple, :w - w % multiple]


def has_shape(path: str, shape: Tuple[int, ...]) -> bool:
    """Whether ``path`` is a readable image of exactly this shape (3-channel uint8 for what this script writes)."""
    if not osp.isfile(path):
        return False
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return image is not None and image.dtype == np.uint8 and image.shape == shape


def prepare_set(benchmark: BenchmarkSet, scales: Sequence[int]) -> Tuple[int, int]:
    """Write the GTmod12 and LRbicx{s} images of one set; returns (files written, files skipped as already there)."""
    folders = {1: osp.join(benchmark.output_folder, 'GTmod12')}
    folders.update({scale: osp.join(benchmark.output_folder, f'LRbicx{scale}') for scale in scales})
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    written = skipped = 0
    for image_path in tqdm(benchmark.images, desc=benchmark.name, unit='image'):
        image = cv2.imread(image_path, cv2.IMREAD_COLOR)
        if image is None:
            raise PrepareError(f"cannot read the image '{image_path}'")
        gt = modcrop(image)
        if gt.size == 0:
            h, w = image.shape[:2]
            raise PrepareError(f"'{image_path}' is {w}x{h} pixels; GTmod12 needs at least {GT_MULTIPLE}x{GT_MULTIPLE}")
        name = osp.splitext(osp.basename(image_path))[0] + '.png'
        for scale, folder in folders.items():
            target = osp.join(folder, name)
            if has_shape(target, (gt.shape[0] // scale, gt.shape[1] // scale, 3)):
                skipped += 1
                continue
            # Imported at the first write (later ones find it loaded): a run that only skips files or stops on bad
            # input never loads torch. The package applies its basicsr compat on import.
            from basicsr_nlattn.utils.image_files import bicubic_downscale, write_png
            write_png(target, gt if scale == 1 else bicubic_downscale(gt, scale))
            written += 1
    expected = {osp.splitext(osp.basename(image))[0] + '.png' for image in benchmark.images}
    for folder in folders.values():
        others = [entry.name for entry in os.scandir(folder) if entry.name not in expected]
        if others:
            print(f"{benchmark.name}: note: '{folder}' also holds {len(others)} file(s) not made from "
                  f"'{benchmark.hr_folder}' (e.g. {others[0]}); BasicSR's paired test sets need the same files in "
                  'GTmod12 and LRbicx*')
    return written, skipped


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='prepare_benchmarks', description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, help='folder with one folder per set (Set5/, Set14/, B100/, ...)')
    parser.add_argument('--output', required=True, help='output folder, e.g. datasets (never an input folder)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4')
    parser.add_argument(
        '--datasets',
        nargs='+',
        metavar='SET',
        help=f"sets to prepare, each required in --input. Default: those of {' '.join(DATASETS)} that are there")
    args = parser.parse_args(argv)

    try:
        bad = [scale for scale in args.scales if scale not in ALLOWED_SCALES]
        if bad:
            raise PrepareError(f"--scales: GTmod12 sides are multiples of {GT_MULTIPLE}, so the scales must be among "
                               f"{', '.join(map(str, ALLOWED_SCALES))}; got {' '.join(map(str, bad))}")
        scales = sorted(set(args.scales))
        sets = plan_sets(args.input, args.output, args.datasets)
        for benchmark in sets:
            written, skipped = prepare_set(benchmark, scales)
            print(f"{benchmark.name}: {len(benchmark.images)} image(s) from '{benchmark.hr_folder}': {written} file(s) "
                  f'written, {skipped} skipped (already there)')
    except (PrepareError, OSError) as error:
        sys.stderr.write(f'prepare_benchmarks: error: {error}\n')
        return 2

    output_root = osp.abspath(args.output)
    print(f"{', '.join(benchmark.name for benchmark in sets)} in {output_root}: <set>/GTmod12 and "
          f"<set>/{', '.join(f'LRbicx{scale}' for scale in scales)}")
    print('Test a model on them with e.g.: basicsr test -opt options/test_ENLCN_x4.yml')
    if osp.realpath(output_root) != osp.realpath('datasets'):
        print('Note: the test options read datasets/<set>/GTmod12 and datasets/<set>/LRbicx<scale> from the working '
              f"directory: run them where '{output_root}' is ./datasets (or edit dataroot_gt / dataroot_lq)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
