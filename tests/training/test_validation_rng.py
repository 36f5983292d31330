"""Validation does not consume the training randomness: a run that validates after every iteration ends with the
weights of the same run without validation. The runs are BasicSR's training pipeline through ``basicsr train``'s
own entry point, in this process (no interpreter start-up per run), on a tiny NLSN, whose training draws its hash
rotations from torch's global generator every forward."""
import contextlib

from helpers.long_runs import final_weights, long_run_option, max_difference, train_in_process, write_long_run

from basicsr_nlattn.training import loop


def _train(demo_data_root: str, folder: str, name: str, val_freq: int) -> dict:
    root = f'{folder}/{name}'
    opt = long_run_option('NLSN', name, root, demo_data_root, total_iter=4, save_freq=100)
    opt['val']['val_freq'] = val_freq
    assert train_in_process(write_long_run(opt, folder, f'{name}.yml')) == 0
    return final_weights(root, ['net_g'])


def test_validating_every_iteration_leaves_the_training_randomness_alone(demo_data_root, tmp_path, monkeypatch):
    """Validation at iterations 1-4 against none before the end: the same final weights. The control run
    validates without ``preserved_rng_states`` around it: its data loader draws its base seed from torch's
    generator, the next rotations differ and so do the weights, so a validation that consumed the training
    randomness would fail the first comparison."""
    folder = str(tmp_path)
    without = _train(demo_data_root, folder, 'without_validation', 10**6)
    validated = _train(demo_data_root, folder, 'validated', 1)
    assert max_difference(validated, without) == 0
    monkeypatch.setattr(loop, 'preserved_rng_states', contextlib.nullcontext)
    assert max_difference(_train(demo_data_root, folder, 'validated_consuming', 1), without) > 1e-6
