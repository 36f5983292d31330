"""scripts/prepare_div2k.py on a DIV2K-shaped tree of real photographs with odd sizes: sub-image positions and
counts, LMDB keys read back by BasicSR's PairedImageDataset, resuming, and bad input that removes nothing."""
import importlib.util
import os
import subprocess
import sys
from os import path as osp

import cv2
import lmdb
import numpy as np
import pytest
from helpers.runs import REPO_ROOT, check_ok, subprocess_env
from skimage import data as skdata

SCRIPT = osp.join(REPO_ROOT, 'scripts', 'prepare_div2k.py')
SCALES = (2, 3, 4)
# HR (height, width) with no side a multiple of 12. Usable side = the multiple of 12 within what every LR covers;
# corners every 240 plus one flush with the usable end; a side under 480 gives one crop of the usable side:
#   0001 509x497 -> usable 504x492: tops [0, 24], lefts [0, 12]  -> 4 sub-images of 480x480
#   0002 397x597 -> usable 396x588: tops [0],     lefts [0, 108] -> 2 sub-images of 396x480
#   0003 427x640 -> usable 420x636: tops [0],     lefts [0, 156] -> 2 sub-images of 420x480
PHOTOS = {'0001': (skdata.astronaut, 509, 497), '0002': (skdata.coffee, 397, 597), '0003': (skdata.rocket, 427, 640)}
EXPECTED_CORNERS = {
    '0001': ([0, 24], [0, 12], 480, 480),
    '0002': ([0], [0, 108], 396, 480),
    '0003': ([0], [0, 156], 420, 480)
}


def load_script():
    spec = importlib.util.spec_from_file_location('prepare_div2k', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_div2k = load_script()


def lr_image(hr: np.ndarray, scale: int) -> np.ndarray:
    """An LR image of MATLAB's output size, ceil(side / scale); only its size matters to the script."""
    height, width = -(-hr.shape[0] // scale), -(-hr.shape[1] // scale)
    return cv2.resize(hr, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture()
def div2k(tmp_path):
    """A DIV2K-shaped input tree; returns (input folder, output folder, {stem: HR array})."""
    input_dir = tmp_path / 'DIV2K'
    hr_images = {}
    for stem, (photo, height, width) in PHOTOS.items():
        hr = np.ascontiguousarray(photo()[:height, :width, ::-1])
        hr_images[stem] = hr
        (input_dir / 'DIV2K_train_HR').mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(input_dir / 'DIV2K_train_HR' / f'{stem}.png'), hr)
        for scale in SCALES:
            folder = input_dir / 'DIV2K_train_LR_bicubic' / f'X{scale}'
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f'{stem}x{scale}.png'), lr_image(hr, scale))
    return str(input_dir), str(tmp_path / 'out'), hr_images


def run_main(input_dir, output, *extra):
    return prepare_div2k.main(['--input', input_dir, '--output', output, '--workers', '1', *extra])


def snapshot(folder):
    """{relative path: mtime_ns} of every file under ``folder``."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            files[osp.relpath(osp.join(root, name), folder)] = os.stat(osp.join(root, name)).st_mtime_ns
    return files


def lmdb_keys(lmdb_path):
    with lmdb.open(lmdb_path, readonly=True, lock=False) as env, env.begin() as txn:
        return sorted(key.decode() for key, _ in txn.cursor())


def test_crop_positions_follow_basicsr_on_div2k_sizes():
    # DIV2K's 0001.png is 2040x1404 (multiples of 12): BasicSR's extract_subimages corners.
    assert prepare_div2k.crop_positions(1404, 480, 240, 12) == ([0, 240, 480, 720, 924], 480)
    assert prepare_div2k.crop_positions(2040, 480, 240, 12) == ([0, 240, 480, 720, 960, 1200, 1440, 1560], 480)
    assert prepare_div2k.crop_positions(480, 480, 240, 12) == ([0], 480)
    assert prepare_div2k.crop_positions(100, 480, 240, 12) == ([0], 96)


def test_sub_images_lmdbs_and_resume(div2k):
    input_dir, output, hr_images = div2k
    result = subprocess.run([sys.executable, SCRIPT, '--input', input_dir, '--output', output, '--workers', '2'],
                            env=subprocess_env(),
                            capture_output=True,
                            text=True)
    check_ok(result, 'prepare_div2k')
    assert '3 images -> 8 sub-images per scale (3 images extracted now), 4 LMDB(s) written' in result.stdout

    names = sorted(f'{stem}_s{index:03d}' for stem, (tops, lefts, _, _) in EXPECTED_CORNERS.items()
                   for index in range(1,
                                      len(tops) * len(lefts) + 1))
    assert len(names) == 8
    for stem, (tops, lefts, crop_h, crop_w) in EXPECTED_CORNERS.items():
        corners = [(top, left) for top in tops for left in lefts]
        for index, (top, left) in enumerate(corners, start=1):
            name = f'{stem}_s{index:03d}.png'
            hr_sub = cv2.imread(osp.join(output, 'DIV2K_train_HR_sub', name), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(hr_sub, hr_images[stem][top:top + crop_h, left:left + crop_w])
            for scale in SCALES:
                lr_full = cv2.imread(osp.join(input_dir, 'DIV2K_train_LR_bicubic', f'X{scale}', f'{stem}x{scale}.png'))
                lr_sub = cv2.imread(osp.join(output, 'DIV2K_train_LR_bicubic', f'X{scale}_sub', name))
                np.testing.assert_array_equal(
                    lr_sub, lr_full[top // scale:(top + crop_h) // scale, left // scale:(left + crop_w) // scale])

    lmdbs = ['DIV2K_train_HR_sub.lmdb'] + [f'DIV2K_train_LR_bicubic_X{scale}_sub.lmdb' for scale in SCALES]
    for lmdb_name in lmdbs:
        assert lmdb_keys(osp.join(output, lmdb_name)) == names
        assert prepare_div2k.read_meta_keys(osp.join(output, lmdb_name)) == names
    assert not [name for name in os.listdir(output) if 'partial' in name]

    # BasicSR's own paired LMDB reader takes the pairs.
    from basicsr.data.paired_image_dataset import PairedImageDataset
    dataset = PairedImageDataset({
        'phase': 'val',
        'scale': 3,
        'dataroot_gt': osp.join(output, 'DIV2K_train_HR_sub.lmdb'),
        'dataroot_lq': osp.join(output, 'DIV2K_train_LR_bicubic_X3_sub.lmdb'),
        'io_backend': {
            'type': 'lmdb'
        }
    })
    assert len(dataset) == 8
    pair = dataset[names.index('0002_s002')]
    assert tuple(pair['gt'].shape) == (3, 396, 480) and tuple(pair['lq'].shape) == (3, 132, 160)

    # A second run does nothing; after losing one sub-image and one LMDB it redoes exactly those.
    before = snapshot(output)
    assert run_main(input_dir, output) == 0
    assert snapshot(output) == before
    os.remove(osp.join(output, 'DIV2K_train_LR_bicubic', 'X4_sub', '0003_s002.png'))
    lost = osp.join(output, 'DIV2K_train_LR_bicubic_X2_sub.lmdb')
    os.rename(lost, osp.join(osp.dirname(output), 'moved_away.lmdb'))
    assert run_main(input_dir, output) == 0
    after = snapshot(output)
    changed = sorted(path for path in after if before.get(path) != after[path])
    redone = {f'DIV2K_train_HR_sub/0003_s00{index}.png' for index in (1, 2)}
    redone |= {f'DIV2K_train_LR_bicubic/X{scale}_sub/0003_s00{index}.png' for scale in SCALES for index in (1, 2)}
    assert set(changed) == redone | {f'DIV2K_train_LR_bicubic_X2_sub.lmdb/{name}' for name in os.listdir(lost)}
    assert lmdb_keys(lost) == names


def test_scale_subset_and_crop_options(div2k):
    input_dir, output, _ = div2k
    assert run_main(input_dir, output, '--scales', '2', '--crop_size', '200', '--step', '100') == 0
    assert sorted(os.listdir(output)) == [
        'DIV2K_train_HR_sub', 'DIV2K_train_HR_sub.lmdb', 'DIV2K_train_LR_bicubic', 'DIV2K_train_LR_bicubic_X2_sub.lmdb'
    ]
    # 0001: usable 508x496 (even), corners [0, 100, 200, 300, 308] x [0, 100, 200, 296] = 20 sub-images.
    assert len([name for name in os.listdir(osp.join(output, 'DIV2K_train_HR_sub')) if name.startswith('0001')]) == 20


@pytest.mark.parametrize('option, value, message', [('--scales', '1', '--scales must be integers >= 2'),
                                                    ('--crop_size', '100', '--crop_size must be a positive multiple '
                                                     'of 12'), ('--workers', '0', '--workers must be >= 1')])
def test_bad_options_are_refused(div2k, capsys, option, value, message):
    input_dir, output, _ = div2k
    with pytest.raises(SystemExit) as error:
        run_main(input_dir, output, option, value)
    assert error.value.code == 2 and message in capsys.readouterr().err
    assert not osp.exists(output)


def _wrong_size(input_dir):
    path = osp.join(input_dir, 'DIV2K_train_LR_bicubic', 'X3', '0002x3.png')
    image = cv2.imread(path)
    cv2.imwrite(path, image[:-2])
    return path, 'size mismatch', f"is 199x131, but HR '{osp.join(input_dir, 'DIV2K_train_HR', '0002.png')}' is 597x397"


def _missing_pair(input_dir):
    path = osp.join(input_dir, 'DIV2K_train_LR_bicubic', 'X4', '0003x4.png')
    os.remove(path)
    return path, 'missing pair', 'has no LR image'


def _unreadable(input_dir):
    path = osp.join(input_dir, 'DIV2K_train_HR', '0002.png')
    with open(path, 'wb') as file:
        file.write(b'not a png at all')
    return path, 'unreadable image', ''


def _missing_scale(input_dir):
    path = osp.join(input_dir, 'DIV2K_train_LR_bicubic', 'X3')
    os.rename(path, path + '_elsewhere')
    return path, '--scales 3: no folder', 'leave the scale out of --scales'


@pytest.mark.parametrize('break_input', [_wrong_size, _missing_pair, _unreadable, _missing_scale])
def test_bad_input_names_the_file_and_removes_nothing(div2k, capsys, break_input):
    input_dir, output, _ = div2k
    assert run_main(input_dir, output, '--scales', '2') == 0
    before = snapshot(output)
    capsys.readouterr()
    path, kind, detail = break_input(input_dir)
    assert run_main(input_dir, output) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'prepare_div2k: error: {kind}') and path in err and detail in err
    assert snapshot(output) == before


def test_an_lmdb_without_meta_info_is_named_and_kept(div2k, capsys):
    input_dir, output, _ = div2k
    foreign = osp.join(output, 'DIV2K_train_LR_bicubic_X4_sub.lmdb')
    os.makedirs(foreign)
    with lmdb.open(foreign, map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b'something', b'else')
    assert run_main(input_dir, output) == 2
    err = capsys.readouterr().err
    assert f"'{foreign}' exists without meta_info.txt" in err and 'it was left as it is' in err
    assert lmdb_keys(foreign) == ['something']
    # The sub-images and the LMDBs made before it stay; with the foreign database moved away the run completes.
    assert osp.isfile(osp.join(output, 'DIV2K_train_HR_sub.lmdb', 'meta_info.txt'))
    os.rename(foreign, foreign + '.foreign')
    assert run_main(input_dir, output) == 0
    assert len(lmdb_keys(foreign)) == 8
