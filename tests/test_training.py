"""End-to-end runs of the real ``basicsr`` command and ``torchrun`` on the demo data (CPU)."""
import os
import signal
import subprocess
import sys
import time
from os import path as osp

from helpers.logs import experiment_log, validation_psnrs
from helpers.options import tiny_demo_option, write_option
from helpers.runs import REPO_ROOT, basicsr_command, check_ok, run_basicsr, subprocess_env, torchrun_command

from basicsr_nlattn.tools.plot import read_curves


def test_demo_option_trains_and_validation_psnr_rises(demo_data_root, tmp_path):
    opt = tiny_demo_option('psnr_rises', total_iter=240, val__val_freq=60, logger__save_checkpoint_freq=1000)
    opt['train']['optim_g']['lr'] = 1e-3
    # halved at 120 and 180: at a constant 1e-3 this tiny network's PSNR swings by 4 dB from one validation to the
    # next (measured), so the last one says little about the run
    opt['train']['scheduler'].update(milestones=[120, 180], gamma=0.5)
    option_file = write_option(opt, str(tmp_path))
    check_ok(run_basicsr(['train', '-opt', option_file], cwd=demo_data_root))
    experiments_root = osp.join(demo_data_root, 'experiments', 'psnr_rises')
    psnrs = validation_psnrs(experiment_log(experiments_root))
    # validations at 60, 120, 180, 240 and once more after the last iteration
    assert len(psnrs) == 5, psnrs
    assert psnrs[-1] > psnrs[0] + 0.3, f'validation PSNR did not rise over the run: {psnrs}'
    assert osp.isfile(osp.join(experiments_root, 'models', 'net_g_latest.pth'))
    assert not osp.exists(osp.join(os.path.dirname(basicsr_command()[0]), 'experiments'))
    # the demo's report: the same PSNR as the last validation, beside bicubic upsampling
    report = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'scripts', 'demo_report.py'), '-opt', option_file],
        cwd=demo_data_root,
        env=subprocess_env(),
        capture_output=True,
        text=True)
    check_ok(report, 'demo_report.py')
    mean = next(line for line in report.stdout.splitlines() if line.startswith('| mean |')).split('|')
    assert abs(float(mean[3].split('/')[0]) - psnrs[-1]) < 0.01 and float(mean[2].split('/')[0]) > 20
    visual = osp.join(experiments_root, 'visual.png')
    assert osp.isfile(visual) and osp.relpath(visual, demo_data_root) in report.stdout
    # basicsr plot on the real log: the validations at 60, 120, 180, 240 (the final one replaces the one at 240)
    check_ok(run_basicsr(['plot', experiments_root], cwd=demo_data_root), 'basicsr plot')
    curves = read_curves(experiments_root)
    assert [iteration for iteration, _ in curves.metrics['demo_val/psnr']] == [60, 120, 180, 240]
    assert [round(value, 4) for _, value in curves.metrics['demo_val/psnr']
            ] == [round(p, 4) for p in psnrs[:3]] + [round(psnrs[-1], 4)]
    assert [iteration for iteration, _ in curves.losses['l_pix']] == list(range(10, 241, 10))
    assert osp.getsize(osp.join(experiments_root, 'curves.png')) > 10000


def _state_names(training_states):
    """The ``<iter>.state`` files of the folder, not the temporary ``.<iter>.state.*.tmp`` of a save in progress
    (or one a SIGKILL interrupted)."""
    names = os.listdir(training_states) if osp.isdir(training_states) else []
    return [name for name in names if name.endswith('.state') and not name.startswith('.')]


def _kill_after_first_checkpoint(command, cwd, training_states, timeout=300):
    """Start a training process and SIGKILL it once its first training state is completely written."""
    process = subprocess.Popen(
        command, cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            assert process.poll() is None, f'training ended before its first checkpoint:\n{process.stdout.read()}'
            states = _state_names(training_states)
            if states:
                state = osp.join(training_states, states[0])
                size = osp.getsize(state)
                time.sleep(0.3)
                if size > 0 and osp.getsize(state) == size:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError('no training state was written in time')
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return sorted(int(name.split('.')[0]) for name in _state_names(training_states))


def _check_resumed(result, experiments_root, killed_at, total_iter):
    check_ok(result)
    log = experiment_log(experiments_root)
    assert 'Resuming training from epoch: ' in log
    assert f'iter: {killed_at}.' in log
    assert 'Start training from epoch: ' in log and 'iter: 0\n' not in log.split('Start training')[1][:60]
    iterations = [int(line.split('iter:')[1].split(',')[0]) for line in log.splitlines() if '[epoch:' in line]
    assert iterations and iterations[0] > killed_at and iterations[-1] == total_iter, iterations
    assert osp.isfile(osp.join(experiments_root, 'models', f'net_g_{total_iter}.pth'))


def test_auto_resume_continues_from_the_killed_run(demo_data_root, tmp_path):
    opt = tiny_demo_option('resume_cwd', total_iter=2000, logger__save_checkpoint_freq=40, val__val_freq=10000)
    option_file = write_option(opt, str(tmp_path))
    experiments_root = osp.join(demo_data_root, 'experiments', 'resume_cwd')
    states = _kill_after_first_checkpoint(basicsr_command() + ['train', '-opt', option_file], demo_data_root,
                                          osp.join(experiments_root, 'training_states'))
    killed_at = states[-1]
    assert killed_at >= 40
    total_iter = killed_at + 40
    result = run_basicsr(
        ['train', '-opt', option_file, '--auto_resume', '--force_yml', f'train:total_iter={total_iter}'],
        cwd=demo_data_root)
    _check_resumed(result, experiments_root, killed_at, total_iter)


def test_auto_resume_from_another_directory_with_experiments_root(demo_data_root, tmp_path):
    experiments_root = str(tmp_path / 'runs' / 'resume_elsewhere')
    opt = tiny_demo_option('resume_elsewhere', total_iter=2000, logger__save_checkpoint_freq=40, val__val_freq=10000)
    opt['path']['experiments_root'] = experiments_root
    for phase in ('train', 'val'):
        for key in ('dataroot_gt', 'dataroot_lq'):
            opt['datasets'][phase][key] = osp.join(demo_data_root, opt['datasets'][phase][key])
    option_file = write_option(opt, str(tmp_path))
    first_cwd, second_cwd = tmp_path / 'first', tmp_path / 'second'
    first_cwd.mkdir()
    second_cwd.mkdir()
    states = _kill_after_first_checkpoint(basicsr_command() + ['train', '-opt', option_file], str(first_cwd),
                                          osp.join(experiments_root, 'training_states'))
    killed_at = states[-1]
    total_iter = killed_at + 40
    result = run_basicsr(
        ['train', '-opt', option_file, '--auto_resume', '--force_yml', f'train:total_iter={total_iter}'],
        cwd=str(second_cwd))
    _check_resumed(result, experiments_root, killed_at, total_iter)
    assert not osp.exists(second_cwd / 'experiments') and not osp.exists(first_cwd / 'experiments')


def test_torchrun_rank0_validation_of_a_network_with_buffers(demo_data_root, tmp_path):
    """SwinIR keeps buffers (relative position index, attention mask). Validating its DDP wrapper on rank 0 only
    broadcasts those buffers in a collective the other rank never joins: basicsr 1.4.2 then dies with 'Connection
    closed by peer' (compat fix 6). Validating the bare network keeps the ranks in step."""
    opt = tiny_demo_option('torchrun_swinir', total_iter=20, val__val_freq=5, logger__save_checkpoint_freq=100)
    opt['datasets']['train']['num_worker_per_gpu'] = 0  # spawned workers re-import torch: ~10 s a run
    opt['model_type'] = 'SRModel'
    del opt['train']['contrastive_opt']
    opt['network_g'] = dict(
        type='SwinIR',
        upscale=4,
        in_chans=3,
        img_size=16,
        window_size=4,
        img_range=1.,
        depths=[1],
        embed_dim=12,
        num_heads=[2],
        mlp_ratio=2,
        upsampler='pixelshuffledirect',
        resi_connection='1conv')
    option_file = write_option(opt, str(tmp_path))
    command = torchrun_command(2, 'basicsr_nlattn.train', ['-opt', option_file, '--launcher', 'pytorch'])
    result = subprocess.run(
        command, cwd=demo_data_root, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    check_ok(result, 'torchrun')
    log = experiment_log(osp.join(demo_data_root, 'experiments', 'torchrun_swinir'))
    assert len(validation_psnrs(log)) == 5  # at 5, 10, 15, 20 and after the last iteration


def test_demo_enlcn_logs_the_contrastive_loss_after_its_warm_up(demo_data_root, tmp_path):
    opt = tiny_demo_option('contrast_log', total_iter=30)
    opt['train']['contrastive_opt']['start_iter'] = 15
    check_ok(run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=demo_data_root))
    log = experiment_log(osp.join(demo_data_root, 'experiments', 'contrast_log'))
    lines = {int(line.split('iter:')[1].split(',')[0]): line for line in log.splitlines() if '[epoch:' in line}
    assert sorted(lines) == [10, 20, 30]
    assert 'l_contrast' not in lines[10] and 'l_contrast' in lines[20] and 'l_contrast' in lines[30]
    assert 'Model [ContrastiveSRModel] is created.' in log


def test_torchrun_two_cpu_processes_train_pcl(demo_data_root, tmp_path):
    """PCLModel under DDP: D is wrapped too and takes two forwards (HR, SR) before its backward."""
    opt = tiny_demo_option('torchrun_pcl', total_iter=4, logger__print_freq=2, logger__save_checkpoint_freq=4)
    opt['datasets']['train']['num_worker_per_gpu'] = 0  # spawned workers re-import torch: ~10 s a run
    opt['model_type'] = 'PCLModel'
    opt['network_g'] = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 4}
    opt['network_d'] = {'type': 'HaarDiscriminator', 'num_feat': 8, 'num_stages': 4}
    del opt['train']['contrastive_opt']
    opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-4}, pcl_opt={'num_pos': 2, 'num_neg': 2})
    command = torchrun_command(2, 'basicsr_nlattn.train',
                               ['-opt', write_option(opt, str(tmp_path)), '--launcher', 'pytorch'])
    result = subprocess.run(
        command, cwd=demo_data_root, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    check_ok(result, 'torchrun')
    experiments_root = osp.join(demo_data_root, 'experiments', 'torchrun_pcl')
    lines = [line for line in experiment_log(experiments_root).splitlines() if '[epoch:' in line]
    assert len(lines) == 2 and all('l_d' in line and 'l_pcl' in line for line in lines)
    assert osp.isfile(osp.join(experiments_root, 'models', 'net_d_4.pth'))
