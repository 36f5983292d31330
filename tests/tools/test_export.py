"""basicsr export: ENLCN, NLSN, CCLNN and WithAttention as ONNX models that onnxruntime runs within 1e-4 of PyTorch
on a photograph, NLSA's seeded eval rotations as constants of the graph, --dynamic at two batch sizes and image
sizes, and bad input as one line with exit status 2, the output file untouched."""
import copy
import sys

import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from helpers.models import TINY_ENLCN
from helpers.options import write_option

from basicsr_nlattn import cli
from basicsr_nlattn.archs.attention import nlsa as nlsa_module
from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.tools import export, onnx_network
from basicsr_nlattn.tools.export import photo_batch, traceable_nlsa
from basicsr_nlattn.utils import OptionError

onnx = pytest.importorskip('onnx')  # a guard only: scripts/setup_env.sh installs the export extra
onnxruntime = pytest.importorskip('onnxruntime')

SIZE = (20, 23)  # 460 positions: four NLSA chunks of 144, the last padded
EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 2, 'upscale': 2}
NLSA_OPTIONS = {'reduction': 2, 'n_hashes': 2}
NETWORKS = {
    'ENLCN': TINY_ENLCN,
    'NLSN': {
        'type': 'NLSN',
        'num_feat': 8,
        'num_block': 2,
        'upscale': 2,
        'attn_every': 1,
        **NLSA_OPTIONS
    },
    'CCLNN': {
        'type': 'CCLNN',
        'num_feat': 16,
        'num_block': 2,
        'upscale': 2,
        'attn_every': 1,
        **NLSA_OPTIONS
    },
    'WithAttention': {
        'type': 'WithAttention',
        'base': EDSR,
        'attention': {
            'type': 'ENLCA',
            'reduction': 2,
            'num_random_features': 8
        }
    },
}


def write_network(folder, network_g, with_weights=True):
    """An option file for ``network_g`` (and a checkpoint of it, seeded apart from manual_seed); returns both paths."""
    weights = None
    if with_weights:
        torch.manual_seed(1)
        weights = str(folder / 'net.pth')
        torch.save({'params': build_network(copy.deepcopy(network_g)).state_dict()}, weights)
    path = {'pretrain_network_g': weights} if weights else {}
    return write_option({'name': 'export', 'scale': 2, 'network_g': network_g, 'path': path}, str(folder)), weights


def loaded_network(network_g, weights):
    net = build_network(copy.deepcopy(network_g))
    net.load_state_dict(torch.load(weights, weights_only=True)['params'])
    return net.eval()


def run_onnx(path, lq):
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return torch.from_numpy(session.run(None, {'lq': lq.numpy()})[0])


def graph_constants(path):
    """Every tensor the graph holds: initializers and the values of Constant nodes."""
    model = onnx.load(str(path))
    constants = [onnx.numpy_helper.to_array(tensor) for tensor in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == 'Constant':
            constants += [onnx.numpy_helper.to_array(a.t) for a in node.attribute if a.name == 'value']
    return model, constants


@pytest.mark.parametrize('arch', list(NETWORKS))
def test_onnxruntime_matches_pytorch_on_a_photograph(arch, tmp_path, capsys):
    option, weights = write_network(tmp_path, NETWORKS[arch])
    output = tmp_path / 'models' / f'{arch}.onnx'  # the folder is made
    assert cli.main(['export', '-opt', option, '--output', str(output), '--size', *map(str, SIZE)]) == 0
    printed = capsys.readouterr()
    assert printed.err == '' and 'onnxruntime against PyTorch on astronaut, 1x3x20x23 -> 1x3x40x46' in printed.out
    net = loaded_network(NETWORKS[arch], weights)  # built and loaded here, apart from the export
    lq = photo_batch(['astronaut'], *SIZE)
    assert lq.std() > 0.1  # a photograph, not a flat image
    with torch.no_grad(), traceable_nlsa(net):
        expected = net(lq)
    torch.testing.assert_close(run_onnx(output, lq), expected, rtol=0, atol=1e-4)
    model, constants = graph_constants(output)
    assert not [node.op_type for node in model.graph.node if node.op_type.startswith('Random')]
    for block in (module for module in net.modules() if isinstance(module, NLSA)):
        rotations = block.rotations(block.match_conv.out_channels, SIZE[0] * SIZE[1], torch.device('cpu')).numpy()
        assert any(c.shape == rotations.shape and np.array_equal(c, rotations) for c in constants)  # the eval draw


def test_nlsa_ties_by_position_is_the_bucket_order_of_a_stable_sort():
    """The export's tie order: the same buckets in the same sequence as NLSA's torch.sort, positions in order."""
    codes = torch.randint(0, 4, (2, 3, 50), generator=torch.Generator().manual_seed(0))
    order = nlsa_module.sort_by_bucket(codes, 4, ties_by_position=True)
    offset_codes = codes + torch.arange(3).view(1, 3, 1) * 4
    stable = offset_codes.view(2, 150).sort(dim=-1, stable=True).indices % 50
    assert torch.equal(order, stable.view(2, 3, 50))
    torch_order = nlsa_module.sort_by_bucket(codes, 4)
    assert torch.equal(codes.gather(2, order), codes.gather(2, torch_order))
    assert not torch.equal(order, torch_order)  # torch.sort's CPU order of ties is another one


def test_dynamic_model_runs_at_other_batch_sizes_and_image_sizes(tmp_path, capsys):
    option, _ = write_network(tmp_path, TINY_ENLCN, with_weights=False)
    output = tmp_path / 'dynamic.onnx'
    assert cli.main(['export', '-opt', option, '--output', str(output), '--size', '24', '24', '--dynamic']) == 0
    printed = capsys.readouterr()
    assert printed.err.strip() == ('basicsr export: warning: neither --weights nor path.pretrain_network_g is set, '
                                   'exported random weights (manual_seed 0)')
    assert 'astronaut, coffee, 2x3x31x27 -> 2x3x62x54' in printed.out
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the random weights of the export
        net = build_network(copy.deepcopy(TINY_ENLCN)).eval()
    for photos, height, width in ((['astronaut'], 24, 24), (['coffee', 'astronaut'], 17, 30)):
        lq = photo_batch(photos, height, width)
        with torch.no_grad():
            expected = net(lq)
        assert expected.shape == (len(photos), 3, 2 * height, 2 * width)
        torch.testing.assert_close(run_onnx(output, lq), expected, rtol=0, atol=1e-4)


def _bad_input(case, tmp_path):
    """(option file, extra flags) of one bad input of ``basicsr export``."""
    network_g, extra = TINY_ENLCN, []
    if case == 'unknown type':
        network_g = {'type': 'NoSuchNet'}
    elif case == 'no export support':
        network_g = EDSR
    elif case == 'dynamic NLSA':
        network_g, extra = NETWORKS['NLSN'], ['--dynamic']
    elif case == 'size':
        extra = ['--size', '0', '24']
    option, _ = write_network(tmp_path, network_g, with_weights=False)
    if case == 'missing weights':
        extra = ['--weights', str(tmp_path / 'missing.pth')]
    elif case == 'not a checkpoint':
        (tmp_path / 'notes.pth').write_text('not a checkpoint')
        extra = ['--weights', str(tmp_path / 'notes.pth')]
    elif case == 'weights that do not fit':
        torch.save({'params': build_network({**TINY_ENLCN, 'num_feat': 16}).state_dict()}, tmp_path / 'other.pth')
        extra = ['--weights', str(tmp_path / 'other.pth')]
    return option, extra


@pytest.mark.parametrize('case, message', [
    ('unknown type', "network_g.type: unknown arch type 'NoSuchNet'"),
    ('no export support', "network_g.type: 'EDSR' has no export support; exportable: ENLCN, NLSN, CCLNN"),
    ('missing weights', "--weights: checkpoint '"),
    ('not a checkpoint', "notes.pth' cannot be read: not a PyTorch checkpoint (neither a zip archive nor a torch "
     "pickle; it begins with b'not a checkp')"),
    ('weights that do not fit', "other.pth' does not fit network_g (ENLCN): size mismatch for conv_first.weight"),
    ('size', '--size: height and width must be >= 1, got 0 24'),
    ('dynamic NLSA', '--dynamic: NLSN cannot be exported with dynamic height and width: its NLSA blocks (body.0, '),
])
def test_bad_input_is_one_line_and_leaves_the_output_untouched(case, message, tmp_path, capsys):
    option, extra = _bad_input(case, tmp_path)
    output = tmp_path / 'model.onnx'
    output.write_bytes(b'the previous model')
    assert cli.main(['export', '-opt', option, '--output', str(output), *extra]) == 2
    printed = capsys.readouterr()
    assert printed.err.startswith('basicsr export: error: ') and message in printed.err, printed.err
    assert len(printed.err.splitlines()) == 1
    assert printed.out == '' and output.read_bytes() == b'the previous model'
    assert sorted(path.name for path in tmp_path.iterdir() if 'onnx' in path.name) == ['model.onnx']


def test_a_failed_check_leaves_the_output_untouched(tmp_path, capsys, monkeypatch):
    option, _ = write_network(tmp_path, TINY_ENLCN, with_weights=False)
    output = tmp_path / 'model.onnx'
    output.write_bytes(b'the previous model')
    monkeypatch.setattr(export, 'TOLERANCE', -1.0)  # no model can pass
    assert cli.main(['export', '-opt', option, '--output', str(output), '--size', '24', '24']) == 2
    printed = capsys.readouterr().err
    assert printed.startswith('basicsr export: error: ENLCN: onnxruntime differs from PyTorch by ') and \
        'on astronaut 1x3x24x24, more than -1' in printed and len(printed.splitlines()) == 1, printed
    assert output.read_bytes() == b'the previous model' and not (tmp_path / 'model.onnx.partial').exists()


def _reverse_the_nodes(path) -> None:
    """Put the graph's nodes in reverse order: onnx.checker requires a topological order, onnxruntime (which sorts
    the graph itself) still runs the model and gives the network's output."""
    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    onnx.save(model, str(path))


def test_a_model_that_onnx_checker_rejects_is_not_written(tmp_path, capsys, monkeypatch):
    """The traced model, its nodes reversed before the checks: ``basicsr export`` prints one line with
    onnx.checker's own message and leaves the output as it was. onnxruntime runs this model within the tolerance
    (checked below), so without onnx.checker the export would write it."""
    option, _ = write_network(tmp_path, TINY_ENLCN, with_weights=False)
    output = tmp_path / 'model.onnx'
    output.write_bytes(b'the previous model')
    trace_to_onnx = export.trace_to_onnx

    def trace_then_reverse(net, example, path, dynamic):
        trace_to_onnx(net, example, path, dynamic)
        _reverse_the_nodes(path)

    monkeypatch.setattr(export, 'trace_to_onnx', trace_then_reverse)
    assert cli.main(['export', '-opt', option, '--output', str(output), '--size', '24', '24']) == 2
    printed = capsys.readouterr()
    assert printed.out == '' and len(printed.err.splitlines()) == 1, printed.err
    assert printed.err.startswith('basicsr export: error: ENLCN: the exported graph is not a valid ONNX model: '
                                  'Nodes in a graph must be topologically sorted'), printed.err
    assert output.read_bytes() == b'the previous model'
    assert sorted(path.name for path in tmp_path.iterdir() if 'onnx' in path.name) == ['model.onnx']

    reversed_model = tmp_path / 'reversed.onnx'  # the same model, outside the command
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the random weights of the export
        net = build_network(copy.deepcopy(TINY_ENLCN)).eval()
    lq = photo_batch(['astronaut'], 24, 24)
    trace_then_reverse(net, lq, str(reversed_model), False)
    with pytest.raises(onnx.checker.ValidationError, match='topologically sorted'):
        onnx.checker.check_model(str(reversed_model), full_check=True)
    with torch.no_grad():
        torch.testing.assert_close(run_onnx(reversed_model, lq), net(lq), rtol=0, atol=export.TOLERANCE)


def test_missing_onnxruntime_names_the_extra(tmp_path, capsys, monkeypatch):
    option, _ = write_network(tmp_path, TINY_ENLCN, with_weights=False)
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import onnxruntime raises ImportError
    assert cli.main(['export', '-opt', option, '--output', str(tmp_path / 'model.onnx')]) == 2
    printed = capsys.readouterr().err
    assert printed == ('basicsr export: error: onnx and onnxruntime are needed for ONNX models (onnxruntime is '
                       'missing): pip install -e ".[export]"\n')
    assert not (tmp_path / 'model.onnx').exists()


def test_onnx_network_runs_like_the_network_and_refuses_other_sizes_and_scales(tmp_path):
    option, weights = write_network(tmp_path, TINY_ENLCN)
    output = str(tmp_path / 'fixed.onnx')
    (check, ) = export.export_onnx(export.prepare_network(option), output, (24, 24))
    assert check.input_shape == (1, 3, 24, 24) and check.output_shape == (1, 3, 48, 48)
    model = onnx_network.OnnxNetwork(output, scale=2)
    assert model.fixed_size == (24, 24)
    lq = photo_batch(['coffee'], 24, 24)
    with torch.no_grad():
        expected = loaded_network(TINY_ENLCN, weights)(lq)
    torch.testing.assert_close(model(lq), expected, rtol=0, atol=1e-4)
    with pytest.raises(OptionError, match=r"--onnx: '.*fixed.onnx' takes 1x3x24x24 inputs, got 1x3x24x25"):
        model(photo_batch(['coffee'], 24, 25))
    with pytest.raises(OptionError, match=r"scale: the option file gives 3, but '.*' turns 24x24 into 48x48"):
        onnx_network.OnnxNetwork(output, scale=3)(lq)
