"""Each fix of basicsr_nlattn.compat, shown to be needed and shown to work. The CPU launch, resume and rank-0
validation fixes are exercised end to end in test_training.py (real torchrun and killed processes)."""
import argparse
import subprocess
import sys

import pytest
import torch
from helpers.runs import subprocess_env
from packaging.version import Version

import basicsr_nlattn
from basicsr_nlattn import compat


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
        'functional_tensor', 'parse_options', 'init_dist_pytorch', 'model_to_device', 'dist_validation'
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


def test_package_version_is_exposed():
    assert basicsr_nlattn.__version__
