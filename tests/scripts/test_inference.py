"""scripts/inference.py: tiled equals whole-image for a conv-only net, inputs are never overwritten, clear errors."""
import functools
import runpy
import subprocess
import sys
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils import img2tensor, tensor2img
from helpers.options import write_option
from helpers.runs import REPO_ROOT, check_ok, subprocess_env
from skimage import data as skdata

SCRIPT = osp.join(REPO_ROOT, 'scripts', 'inference.py')
NETWORK = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2}


@pytest.fixture()
def workdir(tmp_path):
    torch.manual_seed(0)
    torch.save({'params': build_network(NETWORK).state_dict()}, tmp_path / 'net.pth')
    write_option({
        'name': 'infer',
        'scale': 2,
        'network_g': NETWORK,
        'path': {
            'pretrain_network_g': 'net.pth'
        }
    }, str(tmp_path), 'infer.yml')
    (tmp_path / 'inputs').mkdir()
    cv2.imwrite(str(tmp_path / 'inputs' / 'coffee.png'), skdata.coffee()[:70, :90, ::-1])
    return tmp_path


def run(workdir, *args):
    return subprocess.run([sys.executable, SCRIPT, '-opt', 'infer.yml', *args],
                          cwd=str(workdir),
                          env=subprocess_env(),
                          capture_output=True,
                          text=True)


def test_tiled_output_equals_the_whole_image(workdir):
    check_ok(run(workdir, '--input', 'inputs', '--output', 'whole'))
    check_ok(run(workdir, '--input', 'inputs/coffee.png', '--output', 'tiled', '--tile', '32', '8'))
    whole = cv2.imread(str(workdir / 'whole' / 'coffee_x2.png'))
    tiled = cv2.imread(str(workdir / 'tiled' / 'coffee_x2.png'))
    assert whole.shape == (140, 180, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1  # float tiles, then the same rounding


def test_self_ensemble_output_is_the_mean_of_the_eight_symmetries(workdir):
    check_ok(run(workdir, '--input', 'inputs', '--output', 'x8', '--self_ensemble', '--tile', '32', '8'))
    net = build_network(NETWORK).eval()
    net.load_state_dict(torch.load(workdir / 'net.pth', weights_only=True)['params'])
    lq = img2tensor(cv2.imread(str(workdir / 'inputs' / 'coffee.png')).astype(np.float32) / 255.).unsqueeze(0)
    with torch.no_grad():
        expected = torch.stack([
            torch.rot90(net(torch.rot90(lq.flip(-1) if flip else lq, turns, (2, 3))), -turns,
                        (2, 3)).flip(-1) if flip else torch.rot90(net(torch.rot90(lq, turns, (2, 3))), -turns, (2, 3))
            for turns in range(4) for flip in (False, True)
        ]).mean(0)
    ensemble = cv2.imread(str(workdir / 'x8' / 'coffee_x2.png'))
    assert np.abs(ensemble.astype(int) - tensor2img(expected).astype(int)).max() <= 1
    whole = tensor2img(net(lq).detach())
    assert np.abs(ensemble.astype(int) - whole.astype(int)).max() > 2


def test_bad_network_option_is_one_line_before_anything_is_written(workdir):
    """The pre-flight check of basicsr test: network_g built on the meta device, before the checkpoint is read."""
    write_option(
        {
            'name': 'infer',
            'scale': 2,
            'network_g': {
                **NETWORK, 'upscale': 5
            },
            'path': {
                'pretrain_network_g': 'net.pth'
            }
        }, str(workdir), 'infer.yml')
    result = run(workdir, '--input', 'inputs', '--output', 'out')
    assert result.returncode == 2
    assert result.stderr.startswith('inference: error: network_g: scale 5 is not supported') and \
        len(result.stderr.splitlines()) == 1, result.stderr
    assert not (workdir / 'out').exists()


def test_inputs_are_never_overwritten_and_errors_are_named(workdir):
    before = (workdir / 'inputs' / 'coffee.png').read_bytes()
    result = run(workdir, '--input', 'inputs', '--output', 'inputs')
    assert result.returncode == 2 and "--output: 'inputs' holds the inputs" in result.stderr
    assert (workdir / 'inputs' / 'coffee.png').read_bytes() == before
    (workdir / 'inputs' / 'broken.png').write_bytes(b'not an image')
    result = run(workdir, '--input', 'inputs', '--output', 'out')
    assert result.returncode == 2 and 'broken.png' in result.stderr
    result = run(workdir, '--input', 'missing', '--output', 'out')
    assert result.returncode == 2 and "--input: 'missing' is neither an image nor a folder" in result.stderr


@pytest.fixture(scope='module')
def onnx_workdir(tmp_path_factory):
    """A folder with the coffee input, a tiny ENLCN (exportable, non-local), its option file, weights and both ONNX
    models of basicsr export, one at the input's size (70x90) and one with dynamic axes; shared by the tests below."""
    pytest.importorskip('onnxruntime')  # a guard only: scripts/setup_env.sh installs the export extra
    from helpers.models import TINY_ENLCN

    from basicsr_nlattn import cli
    workdir = tmp_path_factory.mktemp('onnx')
    (workdir / 'inputs').mkdir()
    cv2.imwrite(str(workdir / 'inputs' / 'coffee.png'), skdata.coffee()[:70, :90, ::-1])
    torch.manual_seed(0)
    weights = str(workdir / 'enlcn.pth')  # absolute: basicsr export runs from this process's directory
    torch.save({'params': build_network(dict(TINY_ENLCN)).state_dict()}, weights)
    opt = {'name': 'infer', 'scale': 2, 'network_g': TINY_ENLCN, 'path': {'pretrain_network_g': weights}}
    option = write_option(opt, str(workdir), 'enlcn.yml')
    for name, flags in (('fixed', ['--size', '70', '90']), ('dynamic', ['--size', '24', '24', '--dynamic'])):
        assert cli.main(['export', '-opt', option, '--output', str(workdir / f'{name}.onnx'), *flags]) == 0
    return workdir


def run_in_process(workdir, monkeypatch, capsys, *args):
    """scripts/inference.py -opt enlcn.yml ARGS in this process (the imports are done: seconds less per run)."""
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, 'argv', [SCRIPT, '-opt', 'enlcn.yml', *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(SCRIPT, run_name='__main__')
    return exit_info.value.code, capsys.readouterr().err


def super_resolved(workdir, monkeypatch, capsys, folder, *flags):
    """The PNG that scripts/inference.py writes into ``folder`` with ``flags`` (the run must succeed)."""
    code, err = run_in_process(workdir, monkeypatch, capsys, '--input', 'inputs', '--output', folder, *flags)
    assert code == 0, err
    return cv2.imread(str(workdir / folder / 'coffee_x2.png')).astype(int)


def test_onnx_model_gives_the_png_of_the_pytorch_network(onnx_workdir, monkeypatch, capsys):
    run = functools.partial(super_resolved, onnx_workdir, monkeypatch, capsys)
    whole = run('torch')
    assert whole.shape == (140, 180, 3) and whole.std() > 10
    for model in ('fixed', 'dynamic'):
        assert np.abs(run(model, '--onnx', f'{model}.onnx') - whole).max() <= 1
    tiled = run('tiled_torch', '--tile', '32', '8')  # tiles of several sizes: the dynamic model only
    assert np.abs(run('tiled_onnx', '--tile', '32', '8', '--onnx', 'dynamic.onnx') - tiled).max() <= 1


@pytest.mark.parametrize('flags, message', [
    (['--onnx', 'fixed.onnx', '--tile', '32', '8'], "--onnx: 'fixed.onnx' takes 70x90 inputs only, so tiles and chop "
     'quadrants (--tile, --chop or val.tile) need a model exported with basicsr export --dynamic'),
    (['--onnx', 'fixed.onnx', '--self_ensemble'], "--onnx: 'fixed.onnx' takes 70x90 inputs only, so the "
     "self-ensemble's rotated inputs need a square size or a model exported with basicsr export --dynamic"),
    (['--onnx', 'dynamic.onnx', '--weights', 'enlcn.pth'], '--weights: an ONNX model carries its own weights; '
     'drop --weights or --onnx'),
    (['--onnx', 'missing.onnx'], "--onnx: model 'missing.onnx' does not exist"),
])
def test_what_an_onnx_model_cannot_do_is_one_line_before_anything_is_written(onnx_workdir, monkeypatch, capsys, flags,
                                                                             message):
    code, err = run_in_process(onnx_workdir, monkeypatch, capsys, '--input', 'inputs', '--output', 'out', *flags)
    assert code == 2 and err == f'inference: error: {message}\n', err
    assert not (onnx_workdir / 'out').exists()
