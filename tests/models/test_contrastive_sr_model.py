"""ContrastiveSRModel: contrastive terms with warm-up, seeded redraws (ranks, resume, EMA), grad_clip, bad options."""
import os
import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.models import TINY_ENLCN, gradient_norm, gradients_at_step, training_options

import basicsr_nlattn  # noqa: F401  (registers the model)
from basicsr_nlattn.archs.attention import ENLCA, orthogonal_gaussian_matrix
from basicsr_nlattn.models import ContrastiveSRModel
from basicsr_nlattn.models.contrastive_sr_model import random_feature_seed


def model_options(contrastive_opt=None, network_g=None, ema_decay=0, **train):
    return training_options(
        'ContrastiveSRModel', network_g or TINY_ENLCN, ema_decay=ema_decay, contrastive_opt=contrastive_opt, **train)


def batch(seed=0, size=8):
    generator = torch.Generator().manual_seed(seed)
    return {
        'lq': torch.rand(2, 3, size, size, generator=generator),
        'gt': torch.rand(2, 3, 2 * size, 2 * size, generator=generator)
    }


def train_steps(model, iterations, seed=0):
    logs = []
    for current_iter in iterations:
        model.feed_data(batch(seed + current_iter))
        model.optimize_parameters(current_iter)
        logs.append(dict(model.get_current_log()))
    return logs


def enlca_blocks(model):
    return [m for m in model.get_bare_model(model.net_g).modules() if isinstance(m, ENLCA)]


CONTRAST = {'type': 'ENLCAContrastiveLoss', 'loss_weight': 0.1, 'n1': 2, 'n2': 4, 'start_iter': 3}


def test_contrastive_term_starts_at_start_iter_and_records_are_cleared():
    model = ContrastiveSRModel(model_options(CONTRAST))
    logs = train_steps(model, range(1, 5))
    assert [('l_contrast' in log) for log in logs] == [False, False, True, True]
    assert all('l_pix' in log for log in logs)
    assert logs[-1]['l_contrast'] > 0
    assert all(block.recorded is None for block in enlca_blocks(model))


def test_without_contrastive_opt_it_trains_like_srmodel_and_records_nothing():
    model = ContrastiveSRModel(model_options(None))
    model.feed_data(batch())
    model._set_recording(1)
    model.net_g(model.lq)
    assert all(block.recorded is None for block in enlca_blocks(model))
    logs = train_steps(model, [1, 2])
    assert set(logs[-1]) == {'l_pix'}


def test_contrastive_term_reaches_the_attention_weights():
    torch.manual_seed(0)
    with_term = ContrastiveSRModel(model_options({**CONTRAST, 'loss_weight': 10.0, 'start_iter': 0}))
    torch.manual_seed(0)
    without = ContrastiveSRModel(model_options({**CONTRAST, 'start_iter': 100}))
    train_steps(with_term, [1])
    train_steps(without, [1])
    changed = with_term.net_g.body[0].query_conv.weight - without.net_g.body[0].query_conv.weight
    assert changed.abs().max() > 1e-6


def test_random_features_follow_the_seeded_schedule_and_survive_a_resume():
    torch.manual_seed(1)
    model = ContrastiveSRModel(model_options(CONTRAST))
    seen = []
    for current_iter in range(1, 6):
        train_steps(model, [current_iter])
        seen.append(enlca_blocks(model)[0].random_features.clone())
    # redraw_interval 2: iterations 1-2 share draw 0, 3-4 draw 1, 5 draw 2
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])
    assert not torch.equal(seen[1], seen[2]) and not torch.equal(seen[3], seen[4])
    torch.manual_seed(99)  # a resumed process: other global RNG, other initial features
    resumed = ContrastiveSRModel(model_options(CONTRAST))
    resumed.redraw_random_features(5)
    for ours, theirs in zip(enlca_blocks(resumed), enlca_blocks(model)):
        torch.testing.assert_close(ours.random_features, theirs.random_features, rtol=0, atol=0)
    blocks = enlca_blocks(model)
    assert not torch.equal(blocks[0].random_features, blocks[1].random_features)
    assert random_feature_seed(5, 2, 0) != random_feature_seed(5, 2, 1) != random_feature_seed(6, 2, 1)


def test_ema_network_gets_the_random_features():
    model = ContrastiveSRModel(model_options(CONTRAST, ema_decay=0.9))
    train_steps(model, [1, 2, 3])
    for ours, ema in zip(enlca_blocks(model), [m for m in model.net_g_ema.modules() if isinstance(m, ENLCA)]):
        torch.testing.assert_close(ema.random_features, ours.random_features, rtol=0, atol=0)


def test_grad_clip_clips_the_gradient_norm_of_the_g_step():
    clip = 1e-3
    stepped = {}
    for grad_clip in (None, clip):
        torch.manual_seed(0)
        model = ContrastiveSRModel(model_options({**CONTRAST, 'start_iter': 0}, grad_clip=grad_clip))
        stepped[grad_clip] = gradients_at_step(model.optimizer_g)
        logs = train_steps(model, [1])
        assert set(logs[0]) == {'l_pix', 'l_contrast'}
    unclipped, clipped = stepped[None][0], stepped[clip][0]
    norm = gradient_norm(unclipped)
    assert norm > 10 * clip
    # the same gradients, scaled by clip_grad_norm_'s coefficient max_norm / (norm + 1e-6): a norm within 1e-4 of clip
    torch.testing.assert_close(gradient_norm(clipped), torch.tensor(clip), rtol=1e-4, atol=0)
    for ours, raw in zip(clipped, unclipped):
        torch.testing.assert_close(ours, raw * (clip / (norm + 1e-6)), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize('grad_clip', [0, -1.0, '1.0', True, float('nan')])
def test_bad_grad_clip(grad_clip):
    message = f'train.grad_clip: must be a number > 0, got {grad_clip!r}'
    with pytest.raises(ValueError, match=re.escape(message)):
        ContrastiveSRModel(model_options(CONTRAST, grad_clip=grad_clip))


NOT_CONTRASTIVE = (r"train.contrastive_opt.type: must be one of \['CCAContrastiveLoss', 'CCASparsityLoss', "
                   r"'ENLCAContrastiveLoss'\] \(a contrastive loss\), got 'L1Loss'")


@pytest.mark.parametrize('contrastive_opt, network_g, match', [
    ({
        **CONTRAST, 'n3': 1
    }, None, r"train.contrastive_opt: unknown key\(s\) \['n3'\] for ENLCAContrastiveLoss"),
    ([CONTRAST, {
        **CONTRAST, 'start_iter': -5
    }], None, r'train.contrastive_opt\[1\].start_iter: must be an int >= 0'),
    ({
        'type': 'L1Loss'
    }, None, NOT_CONTRASTIVE),
    ([CONTRAST], {
        'type': 'EDSR',
        'num_in_ch': 3,
        'num_out_ch': 3,
        'num_feat': 8,
        'num_block': 1,
        'upscale': 2
    }, r'train.contrastive_opt\[0\].type: ENLCAContrastiveLoss needs ENLCA blocks in network_g, found none'),
])
def test_bad_contrastive_opt(contrastive_opt, network_g, match):
    with pytest.raises(ValueError, match=match):
        ContrastiveSRModel(model_options(contrastive_opt, network_g))


def _ddp_worker(rank, world_size, result_dir):
    torch.set_num_threads(1)
    # a file store: no port to choose, so no other process can take it first
    store = f"file://{os.path.join(result_dir, 'rendezvous')}"
    dist.init_process_group('gloo', init_method=store, rank=rank, world_size=world_size)
    torch.manual_seed(100 + rank)  # BasicSR seeds every rank differently (seed + rank)
    opt = model_options(CONTRAST)
    opt.update(dist=True, rank=rank, world_size=world_size)
    model = ContrastiveSRModel(opt)
    train_steps(model, range(1, 6), seed=10 * rank)  # different data on each rank
    bare = model.get_bare_model(model.net_g)
    state = {name: tensor.clone() for name, tensor in bare.state_dict().items()}
    torch.save(state, os.path.join(result_dir, f'rank{rank}.pth'))
    dist.destroy_process_group()


def test_two_ddp_ranks_keep_identical_random_features_and_weights(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1))
    features = [name for name in rank0 if name.endswith('random_features')]
    assert len(features) == 3
    # iteration 5 with redraw_interval 2 is draw 2: each block's features come from its seeded generator
    for number, name in enumerate(features):
        seed = random_feature_seed(5, 2, number)
        expected = orthogonal_gaussian_matrix(8, 4, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(rank1[name], expected, rtol=0, atol=0)
    for name in rank0:
        torch.testing.assert_close(rank0[name], rank1[name], rtol=0, atol=0, msg=name)


TINY_CCLNN = {
    'type': 'CCLNN',
    'num_feat': 32,
    'num_block': 2,
    'upscale': 2,
    'attn_every': 1,
    'chunk_size': 16,
    'n_hashes': 2
}


@pytest.mark.parametrize('loss', [{'type': 'CCAContrastiveLoss', 'n': 0.15}, {'type': 'CCASparsityLoss'}])
def test_cclnn_trains_with_its_channel_losses(loss):
    model = ContrastiveSRModel(model_options({**loss, 'loss_weight': 0.1, 'start_iter': 2}, TINY_CCLNN))
    logs = train_steps(model, range(1, 4))
    assert ['l_contrast' in log for log in logs] == [False, True, True]
    assert logs[-1]['l_contrast'] > 0


def test_plain_channel_attention_has_no_block_for_the_loss():
    plain = {**TINY_CCLNN, 'channel_attention': 'plain'}
    with pytest.raises(ValueError, match='CCAContrastiveLoss needs ChannelContrastiveAttention blocks'):
        ContrastiveSRModel(model_options([{'type': 'CCAContrastiveLoss'}], plain))
