"""scripts/prepare_benchmarks.py on real photographs: top-left modcrop to 12, MATLAB-like bicubic LR pixel for pixel,
gray to 3 channels, BSD100 written as B100, a second run writes nothing, bad input named before anything is lost."""
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
# basicsr imports after basicsr_nlattn: conftest imports the plugin (and its compat) before any test module
from basicsr.utils.matlab_functions import imresize
from helpers.runs import REPO_ROOT, check_ok, subprocess_env
from skimage import data as skdata

SCRIPT = osp.join(REPO_ROOT, 'scripts', 'prepare_benchmarks.py')
SCALES = (2, 3, 4)
# input file (relative to the input root) -> (set written, output name, GTmod12 height and width)
EXPECTED = {
    'Set5/astronaut.png': ('Set5', 'astronaut.png', (72, 96)),  # 77x101 (h x w)
    'Set5/camera.png': ('Set5', 'camera.png', (120, 84)),  # 130x95, gray
    'BSD100/HR/chelsea.png': ('B100', 'chelsea.png', (84, 120)),  # 95x130
    'BSD100/HR/coffee.bmp': ('B100', 'coffee.png', (48, 60)),  # 59x71, another extension
}


@pytest.fixture()
def inputs(tmp_path):
    """Two sets: Set5 with its images directly inside, BSD100 (B100's alias) with them in HR/."""
    (tmp_path / 'in' / 'Set5').mkdir(parents=True)
    (tmp_path / 'in' / 'BSD100' / 'HR').mkdir(parents=True)
    crops = {
        'Set5/astronaut.png': skdata.astronaut()[60:137, 150:251, ::-1],
        'Set5/camera.png': skdata.camera()[40:170, 200:295],  # 2-D: written as a 1-channel PNG
        'BSD100/HR/chelsea.png': skdata.chelsea()[50:145, 100:230, ::-1],
        'BSD100/HR/coffee.bmp': skdata.coffee()[100:159, 200:271, ::-1],
    }
    for name, image in crops.items():
        assert cv2.imwrite(str(tmp_path / 'in' / name), np.ascontiguousarray(image))
    return tmp_path


def run(workdir, *args):
    return subprocess.run([sys.executable, SCRIPT, *args],
                          cwd=str(workdir),
                          env=subprocess_env(),
                          capture_output=True,
                          text=True)


def output_files(root):
    """Every file under ``root`` with its bytes and modification time."""
    return {str(path): (path.read_bytes(), path.stat().st_mtime_ns) for path in root.rglob('*') if path.is_file()}


def test_layout_pixels_and_a_second_run_writes_nothing(inputs):
    result = run(inputs, '--input', 'in', '--output', 'out')
    check_ok(result)
    for absent in ('Set14', 'Urban100', 'Manga109'):
        assert f'{absent}: no folder' in result.stdout and 'skipped' in result.stdout
    assert "Set5: 2 image(s) from 'in/Set5': 8 file(s) written, 0 skipped" in result.stdout
    assert "B100: 2 image(s) from 'in/BSD100/HR': 8 file(s) written, 0 skipped" in result.stdout
    assert 'basicsr test -opt options/test_ENLCN_x4.yml' in result.stdout
    assert sorted(path.name for path in (inputs / 'out').iterdir()) == ['B100', 'Set5']
    for source, (benchmark, name, (h, w)) in EXPECTED.items():
        image = cv2.imread(str(inputs / 'in' / source), cv2.IMREAD_COLOR)
        assert h == image.shape[0] // 12 * 12 < image.shape[0] and w == image.shape[1] // 12 * 12 < image.shape[1]
        gt = cv2.imread(str(inputs / 'out' / benchmark / 'GTmod12' / name), cv2.IMREAD_UNCHANGED)
        assert gt.shape == (h, w, 3) and gt.dtype == np.uint8
        assert np.array_equal(gt, image[:h, :w])  # top-left crop, BasicSR's mod_crop
        for scale in SCALES:
            lr = cv2.imread(str(inputs / 'out' / benchmark / f'LRbicx{scale}' / name), cv2.IMREAD_UNCHANGED)
            assert lr.shape == (h // scale, w // scale, 3)
            expected = np.clip(np.round(imresize(gt.astype(np.float32) / 255., 1 / scale) * 255.), 0, 255)
            assert np.array_equal(lr, expected.astype(np.uint8)), (source, scale)
    gray = cv2.imread(str(inputs / 'out' / 'Set5' / 'GTmod12' / 'camera.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    assert np.array_equal(gray[..., 0], skdata.camera()[40:160, 200:284])

    before = output_files(inputs / 'out')
    assert len(before) == 4 * (1 + len(SCALES))
    result = run(inputs, '--input', 'in', '--output', 'out', '--datasets', 'Set5', 'b100')
    check_ok(result)
    assert "Set5: 2 image(s) from 'in/Set5': 0 file(s) written, 8 skipped" in result.stdout
    assert "B100: 2 image(s) from 'in/BSD100/HR': 0 file(s) written, 8 skipped" in result.stdout
    assert output_files(inputs / 'out') == before


def test_bad_input_is_named_and_nothing_written_is_lost(inputs):
    # astronaut's files from an earlier run (made here: the script then skips them and never needs to load torch)
    gt = cv2.imread(str(inputs / 'in' / 'Set5' / 'astronaut.png'))[:72, :96]
    lr = np.clip(np.round(imresize(gt.astype(np.float32) / 255., 1 / 4) * 255.), 0, 255).astype(np.uint8)
    for folder, image in (('GTmod12', gt), ('LRbicx4', lr)):
        (inputs / 'out' / 'Set5' / folder).mkdir(parents=True)
        assert cv2.imwrite(str(inputs / 'out' / 'Set5' / folder / 'astronaut.png'), image)
    (inputs / 'in' / 'Set5' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really an image')
    before = output_files(inputs / 'out')
    result = run(inputs, '--input', 'in', '--output', 'out', '--datasets', 'Set5', '--scales', '4')
    assert result.returncode == 2, result.stderr
    assert "prepare_benchmarks: error: cannot read the image 'in/Set5/broken.png'\n" in result.stderr
    assert output_files(inputs / 'out') == before

    checks = {
        ('--datasets', 'Set5', 'Urban100'): "--datasets: Urban100 is not in --input (no folder 'in/Urban100')",
        ('--datasets', 'Set6'): "--datasets: unknown set 'Set6'; allowed: Set5, Set14, B100, Urban100, Manga109",
        ('--scales', '1'): '--scales: GTmod12 sides are multiples of 12, so the scales must be among 2, 3, 4, 6, 12; '
        'got 1',
        ('--scales', '4', '8'): 'got 8',
    }
    for extra, message in checks.items():
        result = run(inputs, '--input', 'in', '--output', 'elsewhere', *extra)
        assert result.returncode == 2 and message in result.stderr, (extra, result.stderr)
        assert result.stderr.startswith('prepare_benchmarks: error: ') and len(result.stderr.splitlines()) == 1
    result = run(inputs, '--input', 'missing', '--output', 'elsewhere')
    assert result.returncode == 2 and "--input: folder 'missing' does not exist" in result.stderr
    result = run(inputs, '--input', 'in/BSD100', '--output', 'elsewhere')
    assert result.returncode == 2 and "--input: none of the sets Set5, Set14, B100" in result.stderr
    result = run(inputs, '--input', 'in', '--output', 'in')
    assert result.returncode == 2 and "would write Set5 into its input folder 'in/Set5'" in result.stderr
    assert not (inputs / 'elsewhere').exists() and not (inputs / 'in' / 'Set5' / 'GTmod12').exists()
