"""Prepare DIV2K for training: aligned HR/LR sub-images and their LMDBs, in the layout the train options read.

    python scripts/prepare_div2k.py --input datasets/DIV2K --output datasets/DIV2K --scales 2 3 4 --workers 8

Input, DIV2K as downloaded::

    <input>/DIV2K_train_HR/0001.png    <input>/DIV2K_train_LR_bicubic/X4/0001x4.png

Output (``options/train_*.yml`` read the LMDBs; the PNG folders are the commented disk variant)::

    <output>/DIV2K_train_HR_sub/0001_s001.png            <output>/DIV2K_train_HR_sub.lmdb (+ meta_info.txt)
    <output>/DIV2K_train_LR_bicubic/X4_sub/0001_s001.png  <output>/DIV2K_train_LR_bicubic_X4_sub.lmdb

BasicSR's sizes (``extract_subimages.py``): HR crops of 480 pixels every 240 pixels, the last crop of a row or
column flush with the border, LR crops of 480/s every 240/s; HR and LR sub-images share their name, which is also
the LMDB key. Positions are taken on a grid that every scale divides, so each LR sub-image covers exactly the area
of its HR sub-image, also where an HR side is not a multiple of 12 (DIV2K's are: there the crops are BasicSR's).
The LMDBs are written by ``basicsr.utils.lmdb_util.make_lmdb_from_imgs``.

Every pair is checked before anything is written (each HR image has its LR image for every scale, readable, of
the size bicubic downscaling gives). Resumable: a sub-image is written under a temporary name and renamed when
complete, images whose sub-images all exist are skipped, an LMDB is built as ``<name>.partial.lmdb`` and renamed
when complete; an existing LMDB is kept if its ``meta_info.txt`` lists exactly the expected keys, else the script
stops and names it. Nothing the script did not just write itself is ever removed.
"""
import argparse
import math
import os
import sys
from multiprocessing import Pool
from os import path as osp
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

HR_FOLDER = 'DIV2K_train_HR'
LR_FOLDER = 'DIV2K_train_LR_bicubic'
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
PNG_COMPRESSION = 3  # BasicSR's extract_subimages
LMDB_COMPRESSION = 1  # BasicSR's create_lmdb


class PrepareError(Exception):
    """Bad input: the message names the file or option."""


class ImagePlan(NamedTuple):
    """One HR image: its LR images per scale and the HR top-left corners of its sub-images."""
    stem: str
    hr_path: str
    lr_paths: Dict[int, str]
    tops: List[int]
    lefts: List[int]
    crop_h: int
    crop_w: int

    def sub_names(self) -> List[str]:
        return [f'{self.stem}_s{index:03d}.png' for index in range(1, len(self.tops) * len(self.lefts) + 1)]


class Layout(NamedTuple):
    """Output folders and LMDB paths."""
    output: str
    scales: Tuple[int, ...]

    def hr_sub(self) -> str:
        return osp.join(self.output, f'{HR_FOLDER}_sub')

    def lr_sub(self, scale: int) -> str:
        return osp.join(self.output, LR_FOLDER, f'X{scale}_sub')

    def folders(self) -> Dict[str, str]:
        """LMDB path -> the sub-image folder it is made from."""
        pairs = {osp.join(self.output, f'{HR_FOLDER}_sub.lmdb'): self.hr_sub()}
        for scale in self.scales:
            pairs[osp.join(self.output, f'{LR_FOLDER}_X{scale}_sub.lmdb')] = self.lr_sub(scale)
        return pairs


def crop_positions(length: int, crop: int, step: int, multiple: int) -> Tuple[List[int], int]:
    """Corners along one side (BasicSR's rule: every ``step``, plus one flush with the end) on the usable length,
    the largest multiple of ``multiple`` within ``length``; a side shorter than ``crop`` gives one shorter crop."""
    usable = length // multiple * multiple
    crop = min(crop, usable)
    positions = list(range(0, usable - crop + 1, step))
    if positions[-1] + crop < usable:
        positions.append(usable - crop)
    return positions, crop


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) from the header alone; PrepareError naming the file if it cannot be read."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as error:
        raise PrepareError(f"unreadable image '{path}': {error}") from error
    return height, width


def plan_image(hr_path: str, input_dir: str, scales: Sequence[int], crop: int, step: int) -> ImagePlan:
    """Check one HR image against its LR images and place its sub-images."""
    stem = osp.splitext(osp.basename(hr_path))[0]
    height, width = image_size(hr_path)
    usable_h, usable_w = height, width
    lr_paths = {}
    for scale in scales:
        lr_path = osp.join(input_dir, LR_FOLDER, f'X{scale}', f'{stem}x{scale}.png')
        if not osp.isfile(lr_path):
            raise PrepareError(f"missing pair: HR '{hr_path}' has no LR image '{lr_path}'")
        lr_h, lr_w = image_size(lr_path)
        if lr_h not in (height // scale, -(-height // scale)) or lr_w not in (width // scale, -(-width // scale)):
            raise PrepareError(f"size mismatch: LR '{lr_path}' is {lr_w}x{lr_h}, but HR '{hr_path}' is "
                               f'{width}x{height}, so x{scale} bicubic gives {width // scale}x{height // scale}')
        usable_h, usable_w = min(usable_h, lr_h * scale), min(usable_w, lr_w * scale)
        lr_paths[scale] = lr_path
    multiple = math.lcm(*scales)
    if min(usable_h, usable_w) < multiple:
        raise PrepareError(f"image too small: HR '{hr_path}' is {width}x{height}, below {multiple} pixels a side")
    tops, crop_h = crop_positions(usable_h, crop, step, multiple)
    lefts, crop_w = crop_positions(usable_w, crop, step, multiple)
    return ImagePlan(stem, hr_path, lr_paths, tops, lefts, crop_h, crop_w)


def list_hr_images(input_dir: str) -> List[str]:
    hr_dir = osp.join(input_dir, HR_FOLDER)
    if not osp.isdir(hr_dir):
        raise PrepareError(f"--input: no folder '{hr_dir}' (expected DIV2K's {HR_FOLDER}/ and {LR_FOLDER}/X<s>/)")
    images = sorted(osp.join(hr_dir, name) for name in os.listdir(hr_dir) if name.lower().endswith(IMAGE_EXTENSIONS))
    if not images:
        raise PrepareError(f"--input: no images ({', '.join(IMAGE_EXTENSIONS)}) in '{hr_dir}'")
    return images


def check_input(input_dir: str, scales: Sequence[int], crop: int, step: int) -> List[ImagePlan]:
    """Every pair checked from the image headers, before anything is written."""
    for scale in scales:
        lr_dir = osp.join(input_dir, LR_FOLDER, f'X{scale}')
        if not osp.isdir(lr_dir):
            raise PrepareError(f"--scales {scale}: no folder '{lr_dir}'; leave the scale out of --scales")
    return [plan_image(path, input_dir, scales, crop, step) for path in list_hr_images(input_dir)]


def _read(path: str):
    import cv2
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PrepareError(f"unreadable image '{path}'")
    return image


def _crops(plan: ImagePlan, scale: int) -> Iterator[Tuple[slice, slice]]:
    for top in plan.tops:
        for left in plan.lefts:
            yield (slice(top // scale, (top + plan.crop_h) // scale), slice(left // scale,
                                                                            (left + plan.crop_w) // scale))


def extract_subimages(plan: ImagePlan, layout: Layout) -> str:
    """Write the HR and LR sub-images of one image (worker process); returns its stem."""
    import cv2

    from basicsr_nlattn.utils.image_files import write_png
    cv2.setNumThreads(1)
    names = plan.sub_names()
    for scale, folder, path in [(1, layout.hr_sub(), plan.hr_path)] + [(scale, layout.lr_sub(scale), lr_path)
                                                                       for scale, lr_path in plan.lr_paths.items()]:
        image = _read(path)
        for name, (rows, cols) in zip(names, _crops(plan, scale)):
            write_png(osp.join(folder, name), image[rows, cols, ...], PNG_COMPRESSION)
    return plan.stem


def is_done(plan: ImagePlan, layout: Layout) -> bool:
    folders = [layout.hr_sub()] + [layout.lr_sub(scale) for scale in layout.scales]
    return all(osp.isfile(osp.join(folder, name)) for folder in folders for name in plan.sub_names())


def _extract_task(args: Tuple[ImagePlan, Layout]) -> str:
    return extract_subimages(*args)


def extract_all(plans: List[ImagePlan], layout: Layout, workers: int) -> int:
    """Sub-images of every plan not already done, ``workers`` processes, a progress bar; returns how many ran."""
    from tqdm import tqdm
    for folder in [layout.hr_sub()] + [layout.lr_sub(scale) for scale in layout.scales]:
        os.makedirs(folder, exist_ok=True)
    todo = [plan for plan in plans if not is_done(plan, layout)]
    print(f'Sub-images: {len(plans) - len(todo)} of {len(plans)} images already done, {len(todo)} to extract '
          f'with {workers} process(es).')
    if not todo:
        return 0
    tasks = [(plan, layout) for plan in todo]
    with tqdm(total=len(todo), unit='image', desc='sub-images') as bar:
        if workers == 1:
            for task in tasks:
                _extract_task(task)
                bar.update(1)
        else:
            with Pool(workers) as pool:
                for _ in pool.imap_unordered(_extract_task, tasks):
                    bar.update(1)
    return len(todo)


def read_meta_keys(lmdb_path: str) -> Optional[List[str]]:
    """Keys listed in an LMDB's meta_info.txt (the image name without extension), None if there is no such file."""
    meta_info = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta_info):
        return None
    with open(meta_info, encoding='utf-8') as file:
        return [osp.splitext(line.split(' ')[0])[0] for line in file if line.strip()]


def make_lmdbs(layout: Layout, names: List[str]) -> List[str]:
    """One LMDB per sub-image folder, keys in ``names`` order; existing complete LMDBs are kept. Returns those
    written."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    keys = [osp.splitext(name)[0] for name in names]
    written = []
    for lmdb_path, folder in layout.folders().items():
        if osp.exists(lmdb_path):
            existing = read_meta_keys(lmdb_path)
            if existing is None:
                raise PrepareError(f"'{lmdb_path}' exists without meta_info.txt (not made by this script, or "
                                   'interrupted): move or remove it and run again; it was left as it is')
            if sorted(existing) != sorted(keys):
                raise PrepareError(f"'{osp.join(lmdb_path, 'meta_info.txt')}' lists {len(existing)} keys, the "
                                   f'sub-images are {len(keys)} others: move or remove the LMDB and run again; it '
                                   'was left as it is')
            print(f'LMDB {lmdb_path}: complete ({len(keys)} keys), kept.')
            continue
        partial = lmdb_path[:-len('.lmdb')] + '.partial.lmdb'
        if osp.exists(partial):  # our own interrupted build: never read, so rebuilt from the start
            import shutil
            shutil.rmtree(partial)
        make_lmdb_from_imgs(folder, partial, names, keys, compress_level=LMDB_COMPRESSION)
        os.replace(partial, lmdb_path)
        written.append(lmdb_path)
    return written


def prepare_div2k(input_dir: str,
                  output: str,
                  scales: Sequence[int],
                  workers: int,
                  crop: int = 480,
                  step: int = 240) -> Dict[str, int]:
    """Check, extract, make the LMDBs. Returns counts: images, sub_images, extracted (images), lmdbs_written."""
    scales = tuple(sorted(set(scales)))
    plans = check_input(input_dir, scales, crop, step)
    layout = Layout(output, scales)
    extracted = extract_all(plans, layout, workers)
    names = [name for plan in plans for name in plan.sub_names()]
    written = make_lmdbs(layout, names)
    return {'images': len(plans), 'sub_images': len(names), 'extracted': extracted, 'lmdbs_written': len(written)}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog='Layout, resuming and checks: see the docstring of this file.')
    parser.add_argument('--input', required=True, help=f'DIV2K folder holding {HR_FOLDER}/ and {LR_FOLDER}/X<s>/')
    parser.add_argument('--output', required=True, help='folder for the sub-images and LMDBs (may equal --input)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], help='LR scales. Default: 2 3 4')
    parser.add_argument(
        '--workers', type=int, default=min(8,
                                           os.cpu_count() or 1), help='processes. Default: '
        'min(8, CPUs)')
    parser.add_argument('--crop_size', type=int, default=480, help='HR sub-image side. Default: 480 (BasicSR)')
    parser.add_argument('--step', type=int, default=240, help='HR stride between sub-images. Default: 240')
    args = parser.parse_args(argv)
    if any(scale < 2 for scale in args.scales):
        parser.error(f'--scales must be integers >= 2, got {args.scales}')
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    multiple = math.lcm(*args.scales)
    for option, value in (('--crop_size', args.crop_size), ('--step', args.step)):
        if value < 1 or value % multiple:
            parser.error(f'{option} must be a positive multiple of {multiple} (every scale of --scales divides '
                         f'it), got {value}')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import basicsr_nlattn  # noqa: F401  (compat: basicsr 1.4.2 does not import on today's torchvision without it)
    try:
        counts = prepare_div2k(args.input, args.output, args.scales, args.workers, args.crop_size, args.step)
    except (PrepareError, OSError) as error:
        sys.stderr.write(f'prepare_div2k: error: {error}\n')
        return 2
    print(f"Done: {counts['images']} images -> {counts['sub_images']} sub-images per scale ({counts['extracted']} "
          f"images extracted now), {counts['lmdbs_written']} LMDB(s) written, in {osp.abspath(args.output)}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
