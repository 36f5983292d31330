"""basicsr plot: curves from BasicSR's train logs (resumed runs joined), or from tensorboard events; one panel per
quantity; a folder without a log is one line, exit 2. A real log is plotted in tests/test_training.py."""
import pytest
import yaml

from basicsr_nlattn import cli
from basicsr_nlattn.tools.plot import curves_figure, read_curves


def _train_line(iteration, lr, **terms):
    values = ' '.join(f'{name}: {value:.4e}' for name, value in terms.items())
    return (f'2026-12-02 20:40:00,000 INFO: [run..][epoch:  1, iter:{iteration:8,d}, lr:({lr:.3e},)] '
            f'[eta: 0:01:00, time (data): 0.300 (0.005)] {values} \n')


def _validation(name, psnr, ssim):
    return (f'2026-12-02 20:40:01,000 INFO: Validation {name}\n\t # psnr: {psnr:.4f}\tBest: {psnr:.4f} @ 1 iter\n'
            f'\t # ssim: {ssim:.4f}\tBest: {ssim:.4f} @ 1 iter\n\n')


@pytest.fixture
def experiment(tmp_path):
    """Two runs: the first logs iterations 100-300 and validates at 200 (its state at 200 is the last one saved);
    the second resumes from 200, logs 300-400 and validates at 400."""
    folder = tmp_path / 'experiments' / 'run'
    folder.mkdir(parents=True)
    with open(folder / 'run.yml', 'w', encoding='utf-8') as file:
        yaml.safe_dump({'val': {'val_freq': 200}}, file)
    first = [
        _train_line(100, 1e-4, l_pix=0.5),
        _train_line(200, 1e-4, l_pix=0.4, l_contrast=0.01),
        _validation('Set5', 30.0, 0.80),
        _validation('Set14', 27.0, 0.70),
        _train_line(300, 1e-4, l_pix=0.9, l_contrast=0.02)
    ]
    second = [
        _train_line(300, 5e-5, l_pix=0.3, l_contrast=0.005),
        _train_line(400, 5e-5, l_pix=0.2, l_contrast=0.004),
        _validation('Set5', 31.0, 0.82),
        _validation('Set14', 27.5, 0.71)
    ]
    (folder / 'train_run_20261202_100000.log').write_text(''.join(first), encoding='utf-8')
    (folder / 'train_run_20261202_110000.log').write_text(''.join(second), encoding='utf-8')
    return folder


def test_resumed_runs_are_joined_and_validations_placed_at_their_iteration(experiment):
    curves = read_curves(str(experiment))
    assert curves.source == 'train logs'
    assert curves.losses['l_pix'] == [(100, 0.5), (200, 0.4), (300, 0.3), (400, 0.2)]  # run 2 replaced 300
    assert curves.losses['l_contrast'] == [(200, 0.01), (300, 0.005), (400, 0.004)]
    assert curves.learning_rate['lr'] == [(100, 1e-4), (200, 1e-4), (300, 5e-5), (400, 5e-5)]
    assert curves.metrics == {
        'Set5/psnr': [(200, 30.0), (400, 31.0)],
        'Set5/ssim': [(200, 0.8), (400, 0.82)],
        'Set14/psnr': [(200, 27.0), (400, 27.5)],
        'Set14/ssim': [(200, 0.7), (400, 0.71)]
    }
    figure = curves_figure(curves, 'run')
    assert [ax.get_title() for ax in figure.axes] == ['losses', 'learning rate', 'validation psnr', 'validation ssim']
    assert [len(ax.get_lines()) for ax in figure.axes] == [2, 1, 2, 2]


def test_tensorboard_events_are_read_instead_when_present(experiment):
    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter(str(experiment.parent.parent / 'tb_logger' / 'run'))
    for step, value in ((100, 0.7), (200, 0.6)):
        writer.add_scalar('losses/l_pix', value, step)
    writer.add_scalar('metrics/Set5/psnr', 29.5, 200)
    writer.close()
    curves = read_curves(str(experiment))
    assert curves.source == 'tensorboard events'
    assert [(i, round(v, 6)) for i, v in curves.losses['l_pix']] == [(100, 0.7), (200, 0.6)]
    assert list(curves.metrics) == ['Set5/psnr'] and curves.learning_rate['lr'][-1] == (400, 5e-5)


def test_cli_writes_the_figure_and_names_a_folder_without_logs(experiment, tmp_path, capsys):
    assert cli.main(['plot', str(experiment)]) == 0
    assert (experiment / 'curves.png').stat().st_size > 10000
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert cli.main(['plot', str(empty), '--output', str(tmp_path / 'x.png')]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"basicsr plot: error: EXPERIMENT_DIR: '{empty}' holds no train_*.log "
        "(BasicSR's train log)"
    ]
    assert not (tmp_path / 'x.png').exists()
