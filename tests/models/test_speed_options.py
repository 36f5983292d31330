"""The speed options of ContrastiveSRModel and PCLModel: train.amp / val.amp, train.compile, train.accumulate and
train.channels_last, each against the float32, uncompiled, one-batch, default-format run."""
import copy
import functools
import logging
import re

import pytest
import torch
from basicsr.archs import build_network
from helpers.models import TINY_ENLCN, gradients_at_step, training_options

import basicsr_nlattn  # noqa: F401  (registers the models)
from basicsr_nlattn.archs.attention import bucket_attention
from basicsr_nlattn.archs.attention.bucket_attention import combine_rounds
from basicsr_nlattn.models import ContrastiveSRModel, PCLModel
from basicsr_nlattn.utils import OptionError

CONTRAST = {'type': 'ENLCAContrastiveLoss', 'loss_weight': 1.0, 'n1': 2, 'n2': 4}
TINY_EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
TINY_D = {'type': 'HaarDiscriminator', 'num_feat': 8, 'num_stages': 4}


def enlcn_options(tmp_path=None, **train):
    path = {} if tmp_path is None else {'models': str(tmp_path), 'training_states': str(tmp_path)}
    return training_options('ContrastiveSRModel', TINY_ENLCN, path=path, contrastive_opt=CONTRAST, **train)


def pcl_options(tmp_path, **train):
    options = training_options(
        'PCLModel',
        TINY_EDSR,
        path={
            'models': str(tmp_path),
            'training_states': str(tmp_path)
        },
        optim_d={
            'type': 'Adam',
            'lr': 1e-3
        },
        pcl_opt={
            'num_pos': 2,
            'num_neg': 2
        },
        **train)
    options['network_d'] = dict(TINY_D)
    return options


def batch(seed=0, size=12, samples=2):
    generator = torch.Generator().manual_seed(seed)
    return {
        'lq': torch.rand(samples, 3, size, size, generator=generator),
        'gt': torch.rand(samples, 3, 2 * size, 2 * size, generator=generator)
    }


def first_step(model_class, options, data=None, init_scale=None):
    """Build ``model_class`` under seed 0, run iteration 1; -> (model, gradients at G's step, D's step or None).

    ``init_scale`` replaces the fp16 GradScalers by ones starting at that scale: at the default 65536 the tiny
    networks' float16 gradients overflow, and a GradScaler skips such steps while it lowers its scale.
    """
    torch.manual_seed(0)
    model = model_class(options)
    if init_scale is not None:
        model.scaler_g = torch.amp.GradScaler('cpu', init_scale=init_scale)
        if getattr(model, 'scaler_d', None) is not None:
            model.scaler_d = torch.amp.GradScaler('cpu', init_scale=init_scale)
    steps_g = gradients_at_step(model.optimizer_g)
    steps_d = gradients_at_step(model.optimizer_d) if hasattr(model, 'optimizer_d') else None
    model.feed_data(data or batch())
    model.optimize_parameters(1)
    return model, steps_g[0], (steps_d[0] if steps_d is not None else None)


def flat(gradients):
    return torch.cat([g.flatten() for g in gradients if g is not None])


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(flat(a), flat(b), dim=0)


# ---- train.amp / val.amp --------------------------------------------------------------------------------------------

INIT_SCALE = {'bf16': None, 'fp16': 256.0}


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_on_enlcn_with_its_contrastive_loss_gives_finite_float32_like_gradients(amp):
    _, reference, _ = first_step(ContrastiveSRModel, enlcn_options())
    model, gradients, _ = first_step(ContrastiveSRModel, enlcn_options(amp=amp), init_scale=INIT_SCALE[amp])
    assert set(model.log_dict) == {'l_pix', 'l_contrast'}
    assert all(torch.isfinite(torch.tensor(value)) for value in model.log_dict.values())
    assert model.log_dict['l_contrast'] > 0
    assert torch.isfinite(flat(gradients)).all()
    assert all(g.dtype == torch.float32 for g in gradients if g is not None)  # unscaled, on the float32 weights
    # a loose tolerance: bfloat16 keeps 8 mantissa bits; the flattened gradient points the same way
    assert cosine(gradients, reference) > 0.98
    assert (model.scaler_g is not None) == (amp == 'fp16')


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_amp_in_pcl_keeps_g_and_d_gradients_finite_and_close_to_float32(tmp_path, amp):
    _, reference_g, reference_d = first_step(PCLModel, pcl_options(tmp_path))
    model, gradients_g, gradients_d = first_step(PCLModel, pcl_options(tmp_path, amp=amp), init_scale=INIT_SCALE[amp])
    assert set(model.log_dict) == {'l_d', 'l_pix', 'l_pcl'}
    assert all(torch.isfinite(torch.tensor(value)) for value in model.log_dict.values())
    assert torch.isfinite(flat(gradients_g)).all() and torch.isfinite(flat(gradients_d)).all()
    assert cosine(gradients_g, reference_g) > 0.98
    assert cosine(gradients_d, reference_d) > 0.98


def test_the_contrastive_losses_and_nlsa_compute_in_float32_under_autocast(monkeypatch):
    model = ContrastiveSRModel(enlcn_options())
    model.feed_data(batch())
    model._set_recording(1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model.net_g(model.lq)
        loss = model.cri_contrast[0].loss(model._recording_blocks())
    assert loss.dtype == torch.float32
    seen = []

    def spy(rounds):
        combined = combine_rounds(rounds)
        seen.append((combined.dtype, combined.dtype, torch.is_autocast_enabled('cpu')))
        return combined

    monkeypatch.setattr(bucket_attention, 'combine_rounds', spy)
    nlsn = build_network({'type': 'NLSN', 'num_feat': 8, 'num_block': 1, 'upscale': 2, 'chunk_size': 16})
    with torch.autocast('cpu', dtype=torch.bfloat16):
        nlsn(torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0)))
    assert seen and all(call == (torch.float32, torch.float32, False) for call in seen)


@pytest.mark.parametrize('labels', [('g', ), ('g', 'd')])
def test_fp16_grad_scalers_are_saved_in_the_training_state_and_restored(tmp_path, labels):
    model_class, options = ((ContrastiveSRModel, enlcn_options(tmp_path, amp='fp16')) if labels == ('g', ) else
                            (PCLModel, pcl_options(tmp_path, amp='fp16')))
    torch.manual_seed(0)
    model = model_class(copy.deepcopy(options))  # BasicSR pops optim_g's type from the options it is given
    for current_iter in (1, 2):
        model.feed_data(batch(current_iter))
        model.optimize_parameters(current_iter)
    model.scaler_g.update(new_scale=1024.0)  # a scale no fresh scaler has (65536 by default)
    model.save_training_state(0, 2)
    state = torch.load(tmp_path / '2.state', weights_only=True)
    assert sorted(state['grad_scalers']) == sorted(labels)
    assert state['grad_scalers']['g']['scale'] == 1024.0
    resumed = model_class(copy.deepcopy(options))
    assert resumed.scaler_g.get_scale() == 65536.0
    resumed.resume_training(state)
    assert resumed.scaler_g.get_scale() == 1024.0
    assert resumed.scaler_g.state_dict() == model.scaler_g.state_dict()
    if 'd' in labels:
        assert resumed.scaler_d.state_dict() == model.scaler_d.state_dict()
    options['train']['amp'] = False
    without_amp = model_class(options)
    without_amp.resume_training(state)  # the state file stays loadable without amp
    assert without_amp._grad_scalers() == {}


def test_val_amp_runs_the_test_under_autocast_and_returns_float32():
    outputs = {}
    for amp in (False, 'bf16'):
        torch.manual_seed(0)
        options = enlcn_options()
        options['val'] = {'amp': amp}
        model = ContrastiveSRModel(options)
        model.feed_data(batch())
        model.test()
        outputs[amp] = model.output
    assert outputs['bf16'].dtype == torch.float32
    assert not torch.equal(outputs['bf16'], outputs[False])  # it did run in bfloat16
    torch.testing.assert_close(outputs['bf16'], outputs[False], rtol=0, atol=0.05)


@pytest.mark.parametrize('key, value', [('train', 'fp32'), ('train', True), ('train', None), ('val', 'bfloat16')])
def test_bad_amp(key, value):
    options = enlcn_options()
    options[key] = {**options[key], 'amp': value}
    message = f"{key}.amp: must be one of ['bf16', 'fp16'] or false, got {value!r}"
    with pytest.raises(OptionError, match=re.escape(message)):
        ContrastiveSRModel(options)


# ---- train.compile --------------------------------------------------------------------------------------------------


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with the eager backend: dynamo's capture and the OptimizedModule wrapper without inductor's
    code generation (about 6 s for the tiny ENLCN's first step here, against about 57 s with inductor)."""
    monkeypatch.setattr(torch, 'compile', functools.partial(torch.compile, backend='eager'))


def test_compiled_networks_train_and_save_plain_checkpoints(tmp_path, eager_compile):
    model = PCLModel(pcl_options(tmp_path, compile=True))
    assert isinstance(model.net_g, torch._dynamo.eval_frame.OptimizedModule)
    assert isinstance(model.net_d, torch._dynamo.eval_frame.OptimizedModule)
    model.feed_data(batch())
    model.optimize_parameters(1)
    assert set(model.log_dict) == {'l_d', 'l_pix', 'l_pcl'}
    model.save(0, 1)
    for label, network in (('net_g', TINY_EDSR), ('net_d', TINY_D)):
        saved = torch.load(tmp_path / f'{label}_1.pth', weights_only=True)['params']
        plain = build_network(dict(network))
        assert list(saved) == list(plain.state_dict())
        plain.load_state_dict(saved, strict=True)
        trained = model.get_bare_model(getattr(model, label)).state_dict()
        for name, value in saved.items():
            torch.testing.assert_close(value, trained[name], rtol=0, atol=0)


def test_compiled_enlcn_gives_the_eager_gradients(eager_compile):
    _, reference, _ = first_step(ContrastiveSRModel, enlcn_options())
    model, gradients, _ = first_step(ContrastiveSRModel, enlcn_options(compile=True))
    assert isinstance(model.net_g, torch._dynamo.eval_frame.OptimizedModule)
    assert set(model.log_dict) == {'l_pix', 'l_contrast'}
    for ours, theirs in zip(gradients, reference):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_a_failing_compile_is_logged_and_the_network_runs_uncompiled(monkeypatch, caplog):

    def failing_compile(net):
        raise RuntimeError('no backend here')

    monkeypatch.setattr(torch, 'compile', failing_compile)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        model = ContrastiveSRModel(enlcn_options(compile=True))
    assert not isinstance(model.net_g, torch._dynamo.eval_frame.OptimizedModule)
    assert 'train.compile: torch.compile of net_g failed' in caplog.text
    assert 'no backend here' in caplog.text


def test_bad_compile():
    with pytest.raises(OptionError, match="train.compile: must be true or false, got 'yes'"):
        ContrastiveSRModel(enlcn_options(compile='yes'))


# ---- train.accumulate -----------------------------------------------------------------------------------------------


def test_accumulating_n_batches_of_b_gives_the_gradient_of_one_batch_of_n_b():
    whole = batch(samples=4)
    _, reference, _ = first_step(ContrastiveSRModel, enlcn_options(), whole)
    reference_model, _, _ = first_step(ContrastiveSRModel, enlcn_options(), whole)
    torch.manual_seed(0)
    model = ContrastiveSRModel(enlcn_options(accumulate=2))
    steps = gradients_at_step(model.optimizer_g)
    for current_iter, part in ((1, slice(0, 2)), (2, slice(2, 4))):
        model.feed_data({key: value[part] for key, value in whole.items()})
        model.optimize_parameters(current_iter)
        assert len(steps) == current_iter - 1  # the optimizer steps on the 2nd micro-batch only
    assert len(steps) == 1
    for ours, theirs in zip(steps[0], reference):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-7)
    # the logged terms are the means over the micro-batches: the one-batch losses
    for name in ('l_pix', 'l_contrast'):
        assert model.log_dict[name] == pytest.approx(reference_model.log_dict[name], rel=1e-5)


def test_the_scheduler_counts_optimizer_steps():
    model = ContrastiveSRModel(
        enlcn_options(accumulate=2, scheduler={
            'type': 'MultiStepLR',
            'milestones': [2],
            'gamma': 0.5
        }))
    learning_rates = []
    for current_iter in range(1, 7):
        model.update_learning_rate(current_iter)
        learning_rates.append(model.get_current_learning_rate()[0])
    # iterations 1-2 are step 1, 3-4 step 2, 5-6 step 3: the milestone 2 halves the rate from step 3 on
    assert learning_rates == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4])


@pytest.mark.parametrize('accumulate', [0, 1.5, True])
def test_bad_accumulate(accumulate):
    with pytest.raises(OptionError, match=re.escape(f'train.accumulate: must be an int >= 1, got {accumulate!r}')):
        ContrastiveSRModel(enlcn_options(accumulate=accumulate))


def test_pcl_refuses_accumulate(tmp_path):
    with pytest.raises(OptionError, match='train.accumulate: must be 1 for PCLModel, got 2'):
        PCLModel(pcl_options(tmp_path, accumulate=2))


# ---- train.channels_last --------------------------------------------------------------------------------------------


def test_channels_last_gives_the_default_output():
    outputs = {}
    for channels_last in (False, True):
        model, _, _ = first_step(ContrastiveSRModel, enlcn_options(channels_last=channels_last))
        outputs[channels_last] = model.output
        conv = model.net_g.conv_first if hasattr(model.net_g, 'conv_first') else next(m for m in model.net_g.modules()
                                                                                      if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert model.lq.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(outputs[True], outputs[False], rtol=0, atol=1e-5)


def test_bad_channels_last():
    with pytest.raises(OptionError, match='train.channels_last: must be true or false, got 1'):
        ContrastiveSRModel(enlcn_options(channels_last=1))
