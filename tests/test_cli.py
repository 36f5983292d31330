"""The ``basicsr`` command: help, and bad input rejected before anything is written."""
import os
import shutil
import subprocess
import sys
from os import path as osp

import pytest
from helpers.options import tiny_demo_option, write_option
from helpers.runs import REPO_ROOT, check_ok, run_basicsr, subprocess_env

from basicsr_nlattn import cli


def _help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_explains_commands_and_flags(capsys):
    top = _help(['--help'], capsys)
    assert 'train' in top and 'test' in top and 'torchrun' in top
    for command in ('attention', 'plot', 'bench', 'convert', 'flops', 'export', 'lam'):
        assert command in top
    bench = _help(['bench', '--help'], capsys)
    for flag in ('--network', '--amp', '--compile', '--image_size', '--tile'):
        assert flag in bench
    train = _help(['train', '--help'], capsys)
    for flag in ('-opt', '--launcher', '--auto_resume', '--debug', '--force_yml', 'none,pytorch,slurm'):
        assert flag in train
    assert '--auto_resume' not in _help(['test', '--help'], capsys)


def test_module_entry_points_take_the_same_flags(tmp_path, capsys, monkeypatch):
    result = subprocess.run([sys.executable, '-m', 'basicsr_nlattn.test', '--help'],
                            cwd=str(tmp_path),
                            env=subprocess_env(),
                            capture_output=True,
                            text=True)
    check_ok(result)  # a real python -m process
    assert '-opt FILE' in result.stdout and '--launcher' in result.stdout
    monkeypatch.setattr(sys, 'argv', ['python -m basicsr_nlattn.train', '--help'])
    with pytest.raises(SystemExit):
        cli.module_main('train')
    out = capsys.readouterr().out
    assert '-opt FILE' in out and '--launcher' in out and '--auto_resume' in out


def test_missing_option_file(tmp_path):
    result = run_basicsr(['train', '-opt', 'no_such_option.yml'], cwd=str(tmp_path))
    assert result.returncode == 2
    assert "-opt: option file 'no_such_option.yml' does not exist" in result.stderr
    assert 'Traceback' not in result.stderr
    assert os.listdir(tmp_path) == []


def test_option_file_that_is_not_yaml(tmp_path):
    (tmp_path / 'broken.yml').write_text('name: [unclosed\n')
    result = run_basicsr(['test', '-opt', 'broken.yml'], cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == ("basicsr test: error: -opt: 'broken.yml' line 2, column 1: did not find expected ',' or "
                             "']' (while parsing a flow sequence)\n")


def _existing_experiment(workdir, name):
    folder = workdir / 'experiments' / name
    folder.mkdir(parents=True)
    (folder / 'net_g_1000.pth').write_text('precious')
    return folder


@pytest.mark.parametrize('section, key, value, expected', [
    ('network_g', 'type', 'EDSRR', "network_g.type: unknown arch type 'EDSRR'. Did you mean 'EDSR'"),
    (None, 'model_type', 'SRModle', "model_type: unknown model type 'SRModle'. Did you mean 'SRModel'"),
    ('train', 'pixel_opt', {
        'type': 'L1',
        'loss_weight': 1.0
    }, "train.pixel_opt.type: unknown loss type 'L1'"),
])
def test_unknown_type_is_named_before_training(demo_data_root, tmp_path, section, key, value, expected):
    opt = tiny_demo_option('bad_type')
    if section is None:
        opt[key] = value
    else:
        opt[section][key] = value
    workdir = tmp_path / 'work'
    workdir.mkdir()
    os.symlink(osp.join(demo_data_root, 'datasets'), workdir / 'datasets')
    experiment = _existing_experiment(workdir, 'bad_type')
    result = run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=str(workdir))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert 'Registered' in result.stderr and 'Traceback' not in result.stderr
    assert (experiment / 'net_g_1000.pth').read_text() == 'precious'
    assert sorted(os.listdir(workdir / 'experiments')) == ['bad_type']


def test_bad_network_option_is_one_line_before_anything_is_written(demo_data_root, tmp_path):
    opt = tiny_demo_option('bad_network')
    opt['network_g']['amplification'] = -1.0  # checked by the ENLCA blocks as the pre-flight check builds them
    workdir = tmp_path / 'work'
    workdir.mkdir()
    os.symlink(osp.join(demo_data_root, 'datasets'), workdir / 'datasets')
    experiment = _existing_experiment(workdir, 'bad_network')
    mtime = os.stat(experiment).st_mtime_ns
    result = run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=str(workdir))
    assert result.returncode == 2, result.stderr
    assert result.stderr == 'basicsr train: error: network_g.amplification: must be > 0, got -1.0\n'
    assert sorted(os.listdir(workdir)) == ['datasets', 'experiments']
    assert os.listdir(workdir / 'experiments') == ['bad_network']  # not archived, no new folder
    assert os.listdir(experiment) == ['net_g_1000.pth'] and os.stat(experiment).st_mtime_ns == mtime


def test_missing_dataset_folder_is_named(tmp_path):
    opt = tiny_demo_option('no_data')
    workdir = tmp_path / 'work'
    workdir.mkdir()
    experiment = _existing_experiment(workdir, 'no_data')
    result = run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=str(workdir))
    assert result.returncode == 2
    assert "datasets.train.dataroot_gt: folder 'datasets/demo/train/HR.lmdb' does not exist" in result.stderr
    assert (experiment / 'net_g_1000.pth').read_text() == 'precious'
    assert sorted(os.listdir(workdir)) == ['experiments']


def _drop_meta_info(lmdb_folder):
    os.remove(lmdb_folder / 'meta_info.txt')
    return "datasets.train.dataroot_gt: LMDB 'datasets/demo/train/HR.lmdb' has no meta_info.txt"


def _drop_a_key(lmdb_folder):
    meta_info = lmdb_folder.parent / 'LR_bicubic_X4.lmdb' / 'meta_info.txt'
    meta_info.write_text(''.join(meta_info.read_text().splitlines(keepends=True)[1:]))
    return "datasets.train.dataroot_lq: the keys of 'datasets/demo/train/LR_bicubic_X4.lmdb' differ from those of"


@pytest.mark.parametrize('break_lmdb', [_drop_meta_info, _drop_a_key])
def test_lmdb_without_meta_info_or_with_other_keys_is_named(demo_data_root, tmp_path, break_lmdb):
    workdir = tmp_path / 'work'
    shutil.copytree(osp.join(demo_data_root, 'datasets'), workdir / 'datasets')
    experiment = _existing_experiment(workdir, 'bad_lmdb')
    expected = break_lmdb(workdir / 'datasets' / 'demo' / 'train' / 'HR.lmdb')
    result = run_basicsr(['train', '-opt', write_option(tiny_demo_option('bad_lmdb'), str(tmp_path))], cwd=str(workdir))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert (experiment / 'net_g_1000.pth').read_text() == 'precious'
    assert sorted(os.listdir(workdir)) == ['datasets', 'experiments']


def test_rerun_archives_an_existing_experiment_instead_of_deleting_it(demo_data_root, tmp_path):
    workdir = tmp_path / 'work'
    workdir.mkdir()
    os.symlink(osp.join(demo_data_root, 'datasets'), workdir / 'datasets')
    _existing_experiment(workdir, 'rerun')
    opt = tiny_demo_option('rerun', total_iter=2)
    check_ok(run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=str(workdir)))
    archived = [name for name in os.listdir(workdir / 'experiments') if name.startswith('rerun_archived_')]
    assert len(archived) == 1
    assert (workdir / 'experiments' / archived[0] / 'net_g_1000.pth').read_text() == 'precious'
    assert (workdir / 'experiments' / 'rerun' / 'models' / 'net_g_latest.pth').is_file()


def test_repository_has_no_stray_run_folders():
    for folder in ('experiments', 'results', 'tb_logger'):
        assert not osp.exists(osp.join(REPO_ROOT, 'basicsr_nlattn', folder))


def test_every_flag_of_every_command_shows_its_default():
    from basicsr_nlattn.commands.help_format import HelpFormatter
    parser = cli.build_parser()
    [subparsers] = [action for action in parser._actions if action.dest == 'command']
    assert list(subparsers.choices) == list(cli.COMMANDS)
    for name, subparser in subparsers.choices.items():
        formatter = HelpFormatter(f'basicsr {name}')
        for action in subparser._actions:
            if action.option_strings and not action.required and action.dest != 'help':
                assert 'Default:' in formatter._get_help_string(action), (name, action.option_strings)
    export = _help_text(parser, 'export')
    assert '--size H W' in export and 'Default: 64 64' in export and 'Default: off' in export


def _help_text(parser, name):
    [subparsers] = [action for action in parser._actions if action.dest == 'command']
    return subparsers.choices[name].format_help()
