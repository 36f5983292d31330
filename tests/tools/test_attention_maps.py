"""basicsr attention: the maps are the blocks' own attention weights (checked against the blocks' outputs and the
literal kernel), the figure has one panel per map, bad points, images and networks are one line, exit 2."""
import math

import cv2
import numpy as np
import pytest
import torch
import yaml
from helpers.official_reference import official_softmax_kernel
from skimage import data as skimage_data

from basicsr_nlattn import cli
from basicsr_nlattn.archs.attention import ENLCA, NLSA, bucketed_attention
from basicsr_nlattn.archs.enlcn_arch import ENLCN
from basicsr_nlattn.archs.nlsn_arch import NLSN
from basicsr_nlattn.tools.attention_maps import attention_figure, attention_maps, enlca_query_maps, nlsa_query_maps


def test_enlca_map_is_the_blocks_kernel_row_and_reproduces_its_output():
    torch.manual_seed(0)
    block = ENLCA(16, reduction=2, amplification=6, num_random_features=32, res_scale=1.0).double().eval()
    x = torch.randn(1, 16, 6, 7, dtype=torch.float64)
    index = 17
    enlca, exact, plain = enlca_query_maps(block, x, index)
    query, key, value = block.embed(x)
    scale = math.sqrt(6)
    phi_q = official_softmax_kernel(query[:, index:index + 1] * scale, block.random_features)
    phi_k = official_softmax_kernel(key * scale, block.random_features)
    kernel = (phi_q @ phi_k.transpose(1, 2))[0, 0]
    torch.testing.assert_close(enlca.weights.flatten(), kernel / kernel.sum(), rtol=1e-10, atol=1e-14)
    # the weights are what the block used: sum_n w_n v_n is its attention output at the query
    attended = (block(x) - x).flatten(2)[0, :, index]
    torch.testing.assert_close(enlca.weights.flatten() @ value[0], attended, rtol=1e-9, atol=1e-12)
    cosine = key[0] @ query[0, index]
    torch.testing.assert_close(exact.weights.flatten(), torch.softmax(6 * cosine, 0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(plain.weights.flatten(), torch.softmax(cosine, 0), rtol=1e-12, atol=1e-14)
    assert exact.weights.max() > 2 * plain.weights.max()  # amplification sharpens the map


@pytest.mark.parametrize('size', [(20, 23), (6, 7)])  # 4 chunks (padded), and one chunk below 144
def test_nlsa_round_maps_are_the_weights_of_the_blocks_rounds(size):
    torch.manual_seed(0)
    block = NLSA(16, reduction=4, n_hashes=3).double().eval()
    x = torch.randn(1, 16, *size, dtype=torch.float64)
    n = size[0] * size[1]
    index = n // 3
    maps = nlsa_query_maps(block, x, index)
    assert len(maps) == 3
    query, key, value, codes, num_buckets = block.embed_and_hash(x)
    attended, _ = bucketed_attention(query, key, value, codes, block.chunk_size, num_buckets)
    for round_index, round_map in enumerate(maps):
        weights = round_map.weights.flatten()
        torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))
        torch.testing.assert_close(weights @ value[0], attended[0, round_index, index], rtol=1e-9, atol=1e-12)
        assert (weights > 0).sum() <= min(n, 3 * 144)  # the query's chunks only
    if n > 144:
        assert (maps[0].weights > 0).sum() < n  # sparse: not every position


def _count_image_panels(figure):
    return sum(1 for ax in figure.axes if ax.get_images())


def test_figure_has_one_row_per_block_and_point_and_one_panel_per_map():
    torch.manual_seed(0)
    enlcn = ENLCN(num_feat=8, num_block=2, upscale=2, attn_every=1, reduction=2).eval()  # 3 ENLCA blocks
    lq = torch.rand(1, 3, 12, 14)
    rows = attention_maps(enlcn, lq, [(2, 3), (10, 12)])
    assert [row.block for row in rows] == ['body.0 (ENLCA)'] * 2 + ['body.2 (ENLCA)'] * 2 + ['body.4 (ENLCA)'] * 2
    figure = attention_figure(lq[0], rows)
    assert _count_image_panels(figure) == 6 * 3
    nlsn = NLSN(num_feat=8, num_block=1, upscale=2, attn_every=1, n_hashes=2).eval()  # 2 NLSA blocks, 2 rounds
    rows = attention_maps(nlsn, lq, [(5, 5)])
    assert len(rows) == 2 and _count_image_panels(attention_figure(lq[0], rows)) == 2 * 2


@pytest.fixture
def workdir(tmp_path):
    photo = cv2.resize(skimage_data.astronaut(), (40, 32), interpolation=cv2.INTER_AREA)  # a real photograph
    cv2.imwrite(str(tmp_path / 'astronaut.png'), photo[:, :, ::-1])
    network = {'type': 'ENLCN', 'num_feat': 8, 'num_block': 2, 'upscale': 2, 'attn_every': 1, 'reduction': 2}
    for name, network_g in (('enlcn', network), ('edsr', {
            'type': 'EDSR',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 8,
            'num_block': 1,
            'upscale': 2
    }), ('gray', dict(network, num_in_ch=1, num_out_ch=1, rgb_mean=[0.5]))):
        with open(tmp_path / f'{name}.yml', 'w', encoding='utf-8') as file:
            yaml.safe_dump({'name': name, 'scale': 2, 'network_g': network_g}, file)
    return tmp_path


def test_cli_writes_the_figure(workdir, capsys):
    output = workdir / 'maps' / 'enlcn.png'
    code = cli.main([
        'attention', '-opt',
        str(workdir / 'enlcn.yml'), '--input',
        str(workdir / 'astronaut.png'), '--point', '10', '20', '--point', '30', '5', '--output',
        str(output)
    ])
    assert code == 0 and 'Wrote' in capsys.readouterr().out
    image = cv2.imread(str(output))
    assert image is not None and image.shape[0] > 300 and image.std() > 10


@pytest.mark.parametrize('option, point, image, message', [
    ('enlcn', ['32', '0'], 'astronaut.png', r'--point 32 0: outside the 32x40 input image'),
    ('enlcn', ['0', '-1'], 'astronaut.png', r'--point 0 -1: outside'),
    ('enlcn', ['1', '1'], 'missing.png', r"--input: cannot read an image from '.*missing.png'"),
    ('edsr', ['1', '1'], 'astronaut.png', r'network_g: EDSR has no ENLCA or NLSA block'),
    ('gray', ['1', '1'], 'astronaut.png', r'--input: network_g cannot take the 32x40 image'),
])
def test_bad_input_is_one_line_and_exit_2(workdir, capsys, option, point, image, message):
    import re
    output = workdir / 'out.png'
    code = cli.main([
        'attention', '-opt',
        str(workdir / f'{option}.yml'), '--input',
        str(workdir / image), '--point', *point, '--output',
        str(output)
    ])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and 'Traceback' not in err
    assert re.search('basicsr attention: error: ' + message, err), err
    assert not output.exists()


def test_a_blank_image_still_draws():
    torch.manual_seed(0)
    net = ENLCN(num_feat=8, num_block=1, upscale=2, attn_every=1, reduction=2).eval()
    rows = attention_maps(net, torch.zeros(1, 3, 8, 8), [(0, 0)])
    assert all(np.isfinite(m.weights.numpy()).all() for row in rows for m in row.maps)


def test_force_yml_points_the_command_at_trained_weights(workdir, capsys):
    from basicsr_nlattn.tools.network_loading import load_network
    from basicsr_nlattn.utils.option_file import apply_force_yml, load_option_file
    torch.manual_seed(5)
    trained = ENLCN(num_feat=8, num_block=2, upscale=2, attn_every=1, reduction=2)
    torch.save({'params': trained.state_dict()}, workdir / 'trained.pth')
    opt = apply_force_yml(
        load_option_file(str(workdir / 'enlcn.yml')),
        [f'path:pretrain_network_g={workdir / "trained.pth"}', 'network_g:amplification=3'])
    assert opt['path'] == {'pretrain_network_g': str(workdir / 'trained.pth')}
    assert opt['network_g']['amplification'] == 3
    net = load_network(opt)
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(net.state_dict()[name], tensor, rtol=0, atol=0)
    assert net.body[0].amplification == 3.0
    code = cli.main([
        'attention', '-opt',
        str(workdir / 'enlcn.yml'), '--input',
        str(workdir / 'astronaut.png'), '--point', '1', '1', '--output',
        str(workdir / 'o.png'), '--force_yml', 'path:pretrain'
    ])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == ("basicsr attention: error: --force_yml: 'path:pretrain' is not KEY=VALUE "
                                         "(nested keys joined by ':')")
    code = cli.main([
        'attention', '-opt',
        str(workdir / 'enlcn.yml'), '--input',
        str(workdir / 'astronaut.png'), '--point', '1', '1', '--output',
        str(workdir / 'o.png'), '--force_yml', 'path:pretrain_network_g=missing.pth'
    ])
    assert code == 2 and "path.pretrain_network_g: checkpoint 'missing.pth' does not exist" in capsys.readouterr().err
