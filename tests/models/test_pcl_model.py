"""PCLModel: the PCL term reaches the SR network, alternating D/G steps, grad_clip, resume of D and both optimizers,
errors."""
from os import path as osp

import pytest
import torch
from helpers.logs import experiment_log
from helpers.models import gradient_norm, gradients_at_step, training_options
from helpers.options import tiny_demo_option, write_option
from helpers.runs import check_ok, run_basicsr

import basicsr_nlattn  # noqa: F401
from basicsr_nlattn.models import PCLModel

TINY_EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
TINY_RCAN = {
    'type': 'RCAN',
    'num_in_ch': 3,
    'num_out_ch': 3,
    'num_feat': 16,
    'num_group': 1,
    'num_block': 1,
    'squeeze_factor': 4,
    'upscale': 4
}
TINY_D = {'type': 'HaarDiscriminator', 'num_feat': 8, 'num_stages': 4}


def pcl_options(tmp_path, network_g=TINY_EDSR, scale=2, **train):
    train = {
        'optim_d': {
            'type': 'Adam',
            'lr': 1e-3
        },
        'pcl_opt': {
            'type': 'PCLContrastiveLoss',
            'loss_weight': 0.1,
            'num_pos': 2,
            'num_neg': 3
        },
        **train
    }
    options = training_options(
        'PCLModel',
        network_g,
        scale,
        manual_seed=3,
        path={
            'models': str(tmp_path / 'models'),
            'training_states': str(tmp_path / 'states')
        },
        **train)
    options['network_d'] = dict(TINY_D)
    return options


def feed(model, seed=0, size=8, scale=2):
    generator = torch.Generator().manual_seed(seed)
    model.feed_data({
        'lq': torch.rand(2, 3, size, size, generator=generator),
        'gt': torch.rand(2, 3, size * scale, size * scale, generator=generator)
    })


def test_the_pcl_term_alone_reaches_the_sr_network(tmp_path):
    torch.manual_seed(0)
    model = PCLModel(pcl_options(tmp_path))
    feed(model)
    model.output = model.net_g(model.lq)
    gradients = torch.autograd.grad(model.pcl_loss(*model.make_samples(1)), list(model.net_g.parameters()))
    assert all(g is not None for g in gradients) and sum(g.abs().sum() for g in gradients) > 0


def test_iterations_alternate_d_and_g_and_log_their_losses(tmp_path):
    torch.manual_seed(0)
    model = PCLModel(pcl_options(tmp_path, net_d_init_iters=1))
    d_before = [p.detach().clone() for p in model.net_d.parameters()]
    g_before = [p.detach().clone() for p in model.net_g.parameters()]
    feed(model, 1)
    model.optimize_parameters(1)  # D only (net_d_init_iters)
    assert set(model.get_current_log()) == {'l_d'}
    assert any(not torch.equal(a, b) for a, b in zip(d_before, model.net_d.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(g_before, model.net_g.parameters()))
    feed(model, 2)
    model.optimize_parameters(2)
    assert set(model.get_current_log()) == {'l_d', 'l_pix', 'l_pcl'}
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.net_g.parameters()))


def test_grad_clip_clips_g_not_d(tmp_path):
    clip = 1e-3
    stepped = {}
    for grad_clip in (None, clip):
        torch.manual_seed(0)
        model = PCLModel(pcl_options(tmp_path, grad_clip=grad_clip))
        stepped[grad_clip] = (gradients_at_step(model.optimizer_g), gradients_at_step(model.optimizer_d))
        feed(model, 1)
        model.optimize_parameters(1)
        assert set(model.get_current_log()) == {'l_d', 'l_pix', 'l_pcl'}
    (g_unclipped, d_unclipped), (g_clipped, d_clipped) = stepped[None], stepped[clip]
    norm = gradient_norm(g_unclipped[0])
    assert norm > 10 * clip
    for ours, raw in zip(g_clipped[0], g_unclipped[0]):  # clip_grad_norm_ scales by max_norm / (norm + 1e-6)
        torch.testing.assert_close(ours, raw * (clip / (norm + 1e-6)), rtol=1e-5, atol=1e-12)
    # the norm is clip * norm / (norm + 1e-6): within 1e-4 of clip
    torch.testing.assert_close(gradient_norm(g_clipped[0]), torch.tensor(clip), rtol=1e-4, atol=0)
    for ours, raw in zip(d_clipped[0], d_unclipped[0]):  # D's step, before G's, is not clipped
        torch.testing.assert_close(ours, raw, rtol=0, atol=0)


def test_official_sampling_trains(tmp_path):
    model = PCLModel(pcl_options(tmp_path, pcl_opt={'num_pos': 2, 'num_neg': 2, 'sampling': 'official'}))
    feed(model, 1)
    _, negatives = model.make_samples(1)
    upsampled = torch.nn.functional.interpolate(model.lq, scale_factor=2, mode='bicubic', align_corners=False)
    torch.testing.assert_close(negatives[0], upsampled.clamp(0, 1))  # the official code's LR negative
    model.optimize_parameters(1)
    assert model.get_current_log()['l_pcl'] > 0


def test_discriminator_samples_join_the_d_step(tmp_path):
    torch.manual_seed(0)
    model = PCLModel(pcl_options(tmp_path, discriminator_samples=True))
    seen = []
    model.net_d.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    feed(model, 1)
    model.optimize_parameters(1)
    # D step: real = 2 HR + 1 x 2 sharpened, fake = 2 SR + 3 x 2 blurred; the G step uses features() only
    assert seen[:2] == [4, 8]
    samples = model.make_samples(1)
    torch.testing.assert_close(samples[0], model.make_samples(1)[0], rtol=0, atol=0)  # seeded by the iteration


def test_save_and_resume_restore_d_and_both_optimizers(tmp_path):
    (tmp_path / 'models').mkdir()
    (tmp_path / 'states').mkdir()
    torch.manual_seed(0)
    model = PCLModel(pcl_options(tmp_path))
    for current_iter in (1, 2, 3):
        feed(model, current_iter)
        model.optimize_parameters(current_iter)
    model.save(0, 3)
    state = torch.load(tmp_path / 'states' / '3.state', weights_only=True)
    assert len(state['optimizers']) == 2
    options = pcl_options(tmp_path)
    options['path']['pretrain_network_d'] = str(tmp_path / 'models' / 'net_d_3.pth')
    options['path']['pretrain_network_g'] = str(tmp_path / 'models' / 'net_g_3.pth')
    torch.manual_seed(1)
    resumed = PCLModel(options)
    resumed.resume_training(state)
    for ours, theirs in zip(resumed.net_d.state_dict().values(), model.net_d.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    for ours, theirs in zip(resumed.optimizers, model.optimizers):
        for a, b in zip(ours.state_dict()['state'].values(), theirs.state_dict()['state'].values()):
            torch.testing.assert_close(a['exp_avg'], b['exp_avg'], rtol=0, atol=0)


@pytest.mark.parametrize('change, match', [
    ({
        'pcl_opt': {
            'num_pos': 0
        }
    }, r'train.pcl_opt.num_pos: must be an int >= 1, got 0'),
    ({
        'pcl_opt': {
            'num_neg': 0
        }
    }, r'train.pcl_opt.num_neg: must be an int >= 1, got 0'),
    ({
        'pcl_opt': {
            'layers': [0, 9]
        }
    }, r'unknown feature layer\(s\) \[9\]; the embedding network has 4'),
    ({
        'pcl_opt': {
            'temperature': 2
        }
    }, r"train.pcl_opt: unknown key\(s\) \['temperature'\]"),
    ({
        'freeze_d': True
    }, 'train.freeze_d: needs path.pretrain_network_d'),
    ({
        'grad_clip': 0
    }, 'train.grad_clip: must be a number > 0, got 0'),
])
def test_bad_pcl_options(tmp_path, change, match):
    options = pcl_options(tmp_path)
    options['train'].update(change)
    with pytest.raises(ValueError, match=match):
        PCLModel(options)


def test_output_of_another_size_than_hr(tmp_path):
    model = PCLModel(pcl_options(tmp_path))
    feed(model, scale=4)  # HR 4x, the network 2x
    with pytest.raises(ValueError, match=r'network_g: output \(2, 3, 16, 16\) differs from the HR batch'):
        model.optimize_parameters(1)


@pytest.mark.parametrize('network_g, name', [(TINY_EDSR, 'pcl_edsr'), (TINY_RCAN, 'pcl_rcan')])
def test_basicsr_train_with_basicsrs_own_networks(demo_data_root, tmp_path, network_g, name):
    opt = tiny_demo_option(name, total_iter=6, logger__print_freq=3, logger__save_checkpoint_freq=6)
    opt['model_type'] = 'PCLModel'
    opt['network_g'] = dict(network_g, upscale=4)
    opt['network_d'] = dict(TINY_D)
    del opt['train']['contrastive_opt']
    opt['train'].update(optim_d={'type': 'Adam', 'lr': 1e-4}, pcl_opt={'num_pos': 2, 'num_neg': 2}, grad_clip=1.0)
    check_ok(run_basicsr(['train', '-opt', write_option(opt, str(tmp_path))], cwd=demo_data_root))
    experiments_root = osp.join(demo_data_root, 'experiments', name)
    lines = [line for line in experiment_log(experiments_root).splitlines() if '[epoch:' in line]
    assert len(lines) == 2 and all('l_d' in line and 'l_pcl' in line and 'l_pix' in line for line in lines)
    assert osp.isfile(osp.join(experiments_root, 'models', 'net_d_6.pth'))


def test_a_nan_batch_skips_the_updates_of_d_and_g(tmp_path):
    model = PCLModel(pcl_options(tmp_path, nonfinite={'max_consecutive': 5}))
    nets = {'net_g': model.net_g, 'net_d': model.net_d}
    before = {label: [p.detach().clone() for p in net.parameters()] for label, net in nets.items()}
    generator = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 3, 16, 16, generator=generator)
    gt[1, 2, 3, 4] = float('nan')
    model.feed_data({'lq': torch.rand(2, 3, 8, 8, generator=generator), 'gt': gt})
    model.optimize_parameters(1)
    for label, net in nets.items():
        assert all(torch.equal(p, q) for p, q in zip(before[label], net.parameters())), label
    assert model.nonfinite_guard.consecutive == {'net_d': 1, 'net_g': 1}
    feed(model, seed=1)
    model.optimize_parameters(2)
    for label, net in nets.items():
        assert not all(torch.equal(p, q) for p, q in zip(before[label], net.parameters())), label
    assert model.nonfinite_guard.consecutive == {'net_d': 0, 'net_g': 0}
