"""Each fix of basicsr_nlattn.compat, shown to be needed and shown to work. The CPU launch, resume and rank-0
validation fixes are exercised end to end in test_training.py (real torchrun and killed processes); BasicSR's models
resumed exactly from their atomic saves in training/test_exact_resume.py."""
import argparse
import contextlib
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
import torch
from basicsr.models import build_model
from helpers.runs import subprocess_env
from packaging.version import Version

import basicsr_nlattn
from basicsr_nlattn import compat
from basicsr_nlattn.utils.checkpoint_files import CheckpointWriteError


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], env=subprocess_env(), capture_output=True, text=True)


@pytest.mark.skipif(
    Version(__import__('torchvision').__version__).release < (0, 17), reason='functional_tensor exists before 0.17')
def test_import_basicsr_needs_the_functional_tensor_module():
    without = _python('import basicsr')
    assert without.returncode != 0 and 'functional_tensor' in without.stderr
    with_fix = _python('import basicsr_nlattn, basicsr.data.degradations')
    assert with_fix.returncode == 0, with_fix.stderr


def test_functional_tensor_stand_in_is_torchvisions_grayscale():
    from torchvision.transforms import functional
    from torchvision.transforms.functional_tensor import rgb_to_grayscale
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rgb_to_grayscale(image, 3), functional.rgb_to_grayscale(image, 3), rtol=0, atol=0)


def test_apply_is_idempotent_and_reports_every_fix():
    first = compat.apply()
    assert compat.apply() == first
    assert set(first) == {
        'functional_tensor', 'parse_options', 'init_dist_pytorch', 'model_to_device', 'dist_validation',
        'atomic_checkpoints'
    }
    import basicsr.test
    import basicsr.train
    assert basicsr.train.parse_options is basicsr.test.parse_options
    assert basicsr.train.parse_options.wrapped_by_basicsr_nlattn


def test_parse_options_honours_the_results_root_then_runs_the_checks_of_the_block(tmp_path):
    option_file = tmp_path / 'option.yml'
    option_file.write_text(f"name: x\npath: {{results_root: {tmp_path / 'mine'}}}\n")

    def basicsr_parse_options(root_path, is_train=True):
        return {
            'name': 'x',
            'dist': False,
            'path': {
                'results_root': 'elsewhere'
            }
        }, argparse.Namespace(opt=str(option_file))

    parse_options = compat._with_user_roots(basicsr_parse_options)
    seen = []
    with compat.after_parse_options(lambda opt: seen.append(opt['path']['results_root'])):
        parse_options(str(tmp_path), is_train=False)
    opt, _ = parse_options(str(tmp_path), is_train=False)
    assert seen == [str(tmp_path / 'mine')]  # once: the check is gone after the block
    assert opt['path'] == {
        'results_root': str(tmp_path / 'mine'),
        'log': str(tmp_path / 'mine'),
        'visualization': str(tmp_path / 'mine' / 'visualization')
    }


def _basicsr_model(model_type: str, folder: Path) -> Any:
    """BasicSR's SRModel (EMA) or ESRGANModel (U-Net D), tiny, saving under ``folder``."""
    for sub in ('models', 'states'):  # as make_exp_dirs makes them
        (folder / sub).mkdir(parents=True, exist_ok=True)
    train = {
        'optim_g': {
            'type': 'Adam',
            'lr': 1e-3
        },
        'scheduler': {
            'type': 'MultiStepLR',
            'milestones': [100],
            'gamma': 0.5
        },
        'pixel_opt': {
            'type': 'L1Loss',
            'loss_weight': 1.0
        },
        'ema_decay': 0.9 if model_type == 'SRModel' else 0,
        'optim_d': {
            'type': 'Adam',
            'lr': 1e-3
        },
        'gan_opt': {
            'type': 'GANLoss',
            'gan_type': 'vanilla',
            'loss_weight': 0.1
        },
    }
    return build_model({
        'model_type': model_type,
        'scale': 4,
        'num_gpu': 0,
        'is_train': True,
        'dist': False,
        'network_g': {
            'type': 'EDSR',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 8,
            'num_block': 1,
            'upscale': 4
        },
        'network_d': {
            'type': 'UNetDiscriminatorSN_basicsr',
            'num_in_ch': 3,
            'num_feat': 8
        },
        'path': {
            'models': str(folder / 'models'),
            'training_states': str(folder / 'states')
        },
        'train': train
    })


def _one_step(model: Any) -> None:
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': torch.rand(2, 3, 32, 32)})
    model.optimize_parameters(1)


def _file_bytes(folder: Path) -> Dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*')) if path.is_file()}


@contextlib.contextmanager
def _file_size_limit(size: int) -> Iterator[None]:
    """A full disk for this process: writes past ``size`` bytes fail with EFBIG (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.parametrize('model_type,files', [
    ('SRModel', {
        'models/net_g_1.pth': ['params', 'params_ema']
    }),
    ('ESRGANModel', {
        'models/net_d_1.pth': ['params'],
        'models/net_g_1.pth': ['params']
    }),
])
def test_basicsr_models_save_atomically_with_the_extras_of_the_training_state(model_type, files, tmp_path):
    model = _basicsr_model(model_type, tmp_path)
    _one_step(model)
    model.training_state_extras = {'rng_states': [{'torch': torch.get_rng_state()}], 'data_position': {'samples': 2}}
    model.save(0, 1)
    saved = _file_bytes(tmp_path)
    state_keys = ['data_position', 'epoch', 'iter', 'optimizers', 'rng_states', 'schedulers']  # no GradScalers here
    assert {
        name: sorted(torch.load(tmp_path / name, weights_only=True))
        for name in saved
    } == {
        **files, 'states/1.state': state_keys
    }
    state = torch.load(tmp_path / 'states' / '1.state', weights_only=True)
    assert state['data_position'] == {'samples': 2}
    fresh = _basicsr_model(model_type, tmp_path / 'fresh')
    fresh.resume_training(state)  # BasicSR's own resume reads the file
    assert [optimizer.state_dict()['state'][0]['step'].item()
            for optimizer in fresh.optimizers] == [1] * len(fresh.optimizers)

    _one_step(model)
    errors = []
    with _file_size_limit(4096):
        for save in (lambda: model.save(0, 1), lambda: model.save_training_state(0, 1)):
            with pytest.raises(CheckpointWriteError) as error:
                save()
            errors.append(str(error.value).split(': ')[0])
    assert errors == [
        f"cannot write '{tmp_path / 'models' / 'net_g_1.pth'}'", f"cannot write '{tmp_path / 'states' / '1.state'}'"
    ]
    assert _file_bytes(tmp_path) == saved  # the earlier files byte for byte, no partial or temporary file


def test_package_version_is_exposed():
    assert basicsr_nlattn.__version__
