"""basicsr bench --network on tiny networks: the table rows and JSON of every network, bf16 autocast, one-line flag
errors, the EDSR built beside each network, the papers' contrastive terms and the compile fallback (times are
measured, never asserted)."""
import json
import math

import pytest
import torch
from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.archs.edsr_arch import EDSR

from basicsr_nlattn import cli
from basicsr_nlattn.archs.attention.recording import recording_blocks
from basicsr_nlattn.losses import CCAContrastiveLoss, ENLCAContrastiveLoss
from basicsr_nlattn.tools.bench_network import (NetworkBenchSettings, compiled_or_eager, contrastive_losses,
                                                make_network, training_step)

PASSES = ['train step', 'inference', 'image, whole', 'image, tiled', 'image, chop']
ROW_KEYS = {'pass', 'input', 'network', 'params_m', 'seconds', 'memory_mb', 'time_vs_edsr', 'memory_vs_edsr'}
# CCLNN's channel attention reduces by 16: its smallest width is 16.
TINY = [
    '--num_block', '2', '--batch', '1', '--size', '8', '--image_size', '12', '10', '--tile', '6', '2', '--repeats', '1'
]


def _bench(tmp_path, capsys, network, *flags):
    json_path = tmp_path / 'network.json'
    num_feat = '16' if network == 'CCLNN' else '8'
    code = cli.main(['bench', '--network', network, '--num_feat', num_feat, '--json',
                     str(json_path)] + TINY + list(flags))
    assert code == 0
    return capsys.readouterr().out, json.load(open(json_path))


@pytest.mark.parametrize('network', ['ENLCN', 'NLSN', 'CCLNN', 'EDSR'])
def test_bench_network_rows_and_json(tmp_path, capsys, network):
    out, results = _bench(tmp_path, capsys, network, '--scale', '2')
    names = [network] if network == 'EDSR' else [network, 'EDSR']
    rows = results['rows']
    assert [(row['pass'], row['network']) for row in rows] == [(label, name) for label in PASSES for name in names]
    assert [row['input'] for row in rows[::len(names)]] == ['1x3x8x8', '1x3x8x8'] + ['1x3x12x10'] * 3
    for row in rows:
        assert set(row) == ROW_KEYS
        for key in ROW_KEYS - {'pass', 'input', 'network'}:
            assert math.isfinite(row[key]) and row[key] > 0, (row['pass'], row['network'], key)
        edsr = next(other for other in rows if other['pass'] == row['pass'] and other['network'] == 'EDSR')
        assert row['time_vs_edsr'] == pytest.approx(row['seconds'] / edsr['seconds'])
        assert row['memory_vs_edsr'] == pytest.approx(row['memory_mb'] / edsr['memory_mb'])
        assert f"| {row['pass']} | {row['input']} | {row['network']} |" in out
    assert set(results) == {'machine', 'torch', 'settings', 'compiled', 'rows'}
    assert results['compiled'] == {name: False for name in names}
    settings = results['settings']
    assert (settings['network'], settings['scale'], settings['image_size'], settings['tile']) == (network, 2, [12, 10],
                                                                                                  [6, 2])
    assert settings['amp'] is None and 'float32' in out


def test_bench_network_under_bf16_autocast(tmp_path, capsys):
    out, results = _bench(tmp_path, capsys, 'ENLCN', '--scale', '2', '--amp', 'bf16')
    assert results['settings']['amp'] == 'bf16' and 'autocast bf16' in out
    assert all(math.isfinite(row['seconds']) and row['memory_mb'] > 0 for row in results['rows'])


def test_urban100_image_size_by_scale():
    assert NetworkBenchSettings('ENLCN', scale=2).lr_image_size() == (384, 512)
    assert NetworkBenchSettings('ENLCN', scale=3).lr_image_size() == (256, 341)
    assert NetworkBenchSettings('ENLCN', scale=4).lr_image_size() == (192, 256)
    assert NetworkBenchSettings('ENLCN', image_size=(12, 10)).lr_image_size() == (12, 10)


@pytest.mark.parametrize(
    'flags, message',
    [(['--network', 'RCAN'], "--network must be one of ENLCN, NLSN, CCLNN, EDSR, got 'RCAN'"),
     (['--network', 'ENLCN', '--scale', '8'], '--scale must be 2, 3 or 4, got 8'),
     (['--network', 'NLSN', '--batch', '0'], '--batch must be >= 1, got 0'),
     (['--network', 'ENLCN', '--size', '0'], '--size must be >= 1, got 0'),
     (['--network', 'ENLCN', '--amp', 'fp8'], "--amp must be one of bf16, fp16, got 'fp8'"),
     (['--network', 'CCLNN', '--num_feat', '8'], '--num_feat must be >= 16 for CCLNN, got 8'),
     (['--network', 'EDSR', '--num_block', '0'], '--num_block must be >= 1, got 0'),
     (['--network', 'EDSR', '--image_size', '0', '4'], '--image_size must be >= 1, got [0, 4]'),
     (['--network', 'EDSR', '--tile', '0', '2'], '--tile needs SIZE >= 1 and OVERLAP >= 0, got [0, 2]')])
def test_bench_network_rejects_bad_flags_in_one_line(capsys, flags, message):
    assert cli.main(['bench'] + flags) == 2
    captured = capsys.readouterr()
    assert captured.err == f'basicsr bench: error: {message}\n' and captured.out == ''


@pytest.mark.parametrize('network', ['ENLCN', 'NLSN', 'CCLNN'])
def test_edsr_beside_has_the_same_width_depth_and_res_scale(network):
    settings = NetworkBenchSettings(network, scale=3, num_feat=16, num_block=3)
    ours, edsr = make_network(network, settings), make_network('EDSR', settings)
    assert isinstance(edsr, EDSR)
    for net in (ours, edsr):
        residual = [module for module in net.body if isinstance(module, ResidualBlockNoBN)]
        assert net.conv_first.out_channels == 16 and len(residual) == 3
        assert {block.res_scale for block in residual} == {0.1}
        assert net(torch.rand(1, 3, 5, 4)).shape == (1, 3, 15, 12)


def test_contrastive_terms_follow_the_papers_recipes():
    [enlca] = contrastive_losses('ENLCN', 4)
    [cca_x4], [cca_x2] = contrastive_losses('CCLNN', 4), contrastive_losses('CCLNN', 2)
    assert isinstance(enlca, ENLCAContrastiveLoss) and (enlca.loss_weight, enlca.n1, enlca.n2) == (1e-3, 0.02, 0.08)
    assert isinstance(cca_x4, CCAContrastiveLoss) and (cca_x4.loss_weight, cca_x4.n, cca_x2.n) == (4e-3, 0.10, 0.15)
    assert contrastive_losses('NLSN', 4) == contrastive_losses('EDSR', 4) == []


def test_training_step_updates_the_network_and_clears_the_records():
    torch.manual_seed(0)
    net = make_network('ENLCN', NetworkBenchSettings('ENLCN', scale=2, num_feat=8, num_block=1)).train()
    before = [p.detach().clone() for p in net.parameters()]
    losses = contrastive_losses('ENLCN', 2)
    recorded = []
    losses[0].register_forward_hook(lambda module, args, output: recorded.append(output.item()))
    training_step(net, losses, torch.rand(1, 3, 12, 12), torch.rand(1, 3, 24, 24), None)()
    assert len(recorded) == 1 and recorded[0] > 0  # the contrastive term was computed from the blocks' records
    assert all(not torch.equal(old, new) for old, new in zip(before, net.parameters()) if new.grad is not None)
    assert all(block.recorded is None for block in recording_blocks(net))


def test_compile_failure_falls_back_to_the_eager_network(capsys):
    net = make_network('EDSR', NetworkBenchSettings('EDSR', num_feat=4, num_block=1))

    def failing_probe(compiled):
        raise RuntimeError('no backend')

    assert compiled_or_eager(net, 'EDSR', failing_probe) == (net, False)
    assert "torch.compile of EDSR failed (RuntimeError('no backend'))" in capsys.readouterr().out
