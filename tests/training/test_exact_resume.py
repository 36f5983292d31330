"""Exact resume, end to end: a run stopped at iteration k and continued with ``--auto_resume`` ends with the
weights of the run that was never interrupted (the real ``basicsr train``, tiny networks on the demo data).

The runs cross an epoch boundary after the resume (5 iterations an epoch, stop at 3, end at 8), validate at the
saved iteration, and use the randomness each model has: ENLCN's random features (redrawn every 2 iterations) and
its contrastive loss from iteration 2, NLSN's hash rotations drawn every forward, PCL's samples, D and two
optimizers; the ENLCN run loads its data in a worker process. BasicSR's own models save through
``basicsr_nlattn.compat``'s fix 6: SRModel with EMA (``params`` and ``params_ema`` compared), ESRGANModel with its D.
"""
import subprocess

import pytest
from helpers.logs import experiment_log
from helpers.long_runs import (final_weights, least_change, long_run_option, max_difference, train_command,
                               write_long_run)
from helpers.runs import check_ok, subprocess_env

TOTAL_ITER, STOP_AT = 8, 3


def _train(option_file: str, cwd: str, *flags: str) -> None:
    result = subprocess.run(
        train_command(option_file, *flags), cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    check_ok(result)


@pytest.mark.parametrize('kind,workers', [('ENLCN', 1), ('NLSN', 0), ('PCL', 0), ('SRModel', 0), ('ESRGAN', 0)])
def test_resumed_run_ends_with_the_weights_of_the_uninterrupted_one(kind, workers, demo_data_root, tmp_path):
    runs = {}
    for name in ('whole', 'resumed'):
        root = str(tmp_path / name)
        opt = long_run_option(kind, f'{kind}_{name}', root, demo_data_root, TOTAL_ITER, STOP_AT, workers)
        runs[name] = (root, write_long_run(opt, str(tmp_path), f'{name}.yml'))
    _train(runs['whole'][1], str(tmp_path))
    _train(runs['resumed'][1], str(tmp_path), '--force_yml', f'train:total_iter={STOP_AT}')
    _train(runs['resumed'][1], str(tmp_path), '--auto_resume')
    log = experiment_log(runs['resumed'][0])
    assert f'Resuming training from epoch: 0, iter: {STOP_AT}.' in log
    assert 'Resume: the training state has no' not in log
    labels = ['net_g', 'net_d'] if kind in ('PCL', 'ESRGAN') else ['net_g']
    whole, resumed = final_weights(runs['whole'][0], labels), final_weights(runs['resumed'][0], labels)
    if kind == 'SRModel':
        assert {name.split('/')[1] for name in resumed} == {'params', 'params_ema'}
    assert max_difference(whole, resumed) <= 1e-6
    # not equal for want of training: every network (and the EMA) moved after the stop
    assert least_change(final_weights(runs['resumed'][0], labels, str(STOP_AT)), resumed) > 1e-4
