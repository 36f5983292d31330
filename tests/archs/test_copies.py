"""Copies of ENLCN, NLSN, CCLNN and WithAttention: ``copy.deepcopy``, ``torch.compile`` and EMAs made by deepcopy
compute what the original computes and run on their own parameters; copies start without records and record their
own; BasicSR's DataParallel path (``num_gpu > 1`` without a launcher) is refused."""
import copy
import re
from typing import Callable, List

import pytest
import torch
import torch._dynamo
from basicsr.archs import build_network
from basicsr.models import build_model
from basicsr.utils.options import parse_options
from helpers.models import training_options
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import basicsr_nlattn  # noqa: F401  (registers the archs and the model)
from basicsr_nlattn.archs.attention import ENLCA, NLSA, CCLNBlock
from basicsr_nlattn.archs.attention.recording import recording_blocks
from basicsr_nlattn.utils import OptionError

NETWORKS = {
    'ENLCN': {
        'type': 'ENLCN',
        'num_feat': 8,
        'num_block': 1,
        'upscale': 2,
        'reduction': 2,
        'num_random_features': 8
    },
    'NLSN': {
        'type': 'NLSN',
        'num_feat': 8,
        'num_block': 1,
        'upscale': 2,
        'reduction': 2,
        'chunk_size': 16,
        'n_hashes': 2
    },
    'CCLNN': {
        'type': 'CCLNN',
        'num_feat': 8,
        'num_block': 1,
        'upscale': 2,
        'reduction': 2,
        'chunk_size': 16,
        'n_hashes': 2,
        'cca_reduction': 4
    },
    'WithAttention': {  # insert_after omitted: ENLCA after body.0 and body.1
        'type': 'WithAttention',
        'base': {
            'type': 'EDSR',
            'num_in_ch': 3,
            'num_out_ch': 3,
            'num_feat': 8,
            'num_block': 2,
            'upscale': 2,
            'img_range': 1.0
        },
        'attention': {
            'type': 'ENLCA',
            'num_random_features': 8
        }
    },
}
RECORDING = ['ENLCN', 'CCLNN', 'WithAttention']  # NLSN's blocks record nothing
DELTA = 0.1  # added to every attention parameter
CHANGED = 1e-3  # the least max |change| of an output that saw DELTA (the smallest seen is about 1e-2)
EXACT = dict(rtol=0, atol=0)  # the same operations on the same values (NLSA in eval mode draws seeded rotations)
COMPILED = dict(rtol=1e-5, atol=1e-6)  # aot_eager may decompose operations and round differently
AVERAGED = dict(rtol=1e-5, atol=1e-6)  # (e + m) / 2 against e + DELTA / 2


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return build_network(copy.deepcopy(NETWORKS[name])).eval()


def lq() -> Tensor:
    return torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))


def attention_parameters(net: nn.Module) -> List[nn.Parameter]:
    """Every parameter of the network's attention blocks (CCLN's NLSA counted once)."""
    found = {}
    for module in net.modules():
        if isinstance(module, (ENLCA, NLSA, CCLNBlock)):
            found.update((id(parameter), parameter) for parameter in module.parameters())
    return list(found.values())


@torch.no_grad()
def perturb(net: nn.Module, delta: float = DELTA) -> None:
    for parameter in attention_parameters(net):
        parameter.add_(delta)


@torch.no_grad()
def check_own_parameters(original: nn.Module, copied: nn.Module, copy_forward: Callable[[Tensor], Tensor],
                         tolerance: dict) -> None:
    """``copy_forward`` (the copy, compiled or wrapped) computes what ``original`` does; after perturbing the copy's
    attention only its output changes, after perturbing the original's only the original's does."""
    x = lq()
    expected = original(x)
    torch.testing.assert_close(copy_forward(x), expected, **tolerance)
    perturb(copied)
    changed_copy = copy_forward(x)
    assert (changed_copy - expected).abs().max() > CHANGED
    torch.testing.assert_close(original(x), expected, **EXACT)
    perturb(original)
    assert (original(x) - expected).abs().max() > CHANGED
    torch.testing.assert_close(copy_forward(x), changed_copy, **EXACT)


class DeepcopyEma:
    """An EMA as timm's ModelEmaV2 keeps one (timm is no dependency of ours): a deepcopy of the model whose
    floating-point state moves towards the model's, e <- decay e + (1 - decay) m."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model)
        self.decay = decay

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        for average, current in zip(self.module.state_dict().values(), model.state_dict().values()):
            if average.is_floating_point():
                average.lerp_(current, 1 - self.decay)

    def __call__(self, x: Tensor) -> Tensor:
        return self.module(x)


def make_ema(kind: str, net: nn.Module, decay: float):
    if kind == 'ModelEmaV2':
        return DeepcopyEma(net, decay)
    return AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay))


@pytest.fixture
def fresh_dynamo():
    """Each compiled network starts from empty dynamo caches (several instances of one class would otherwise reach
    the recompile limit and run eagerly)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize('name', NETWORKS)
def test_deepcopy_computes_the_same_with_its_own_parameters(name):
    net = build(name)
    copied = copy.deepcopy(net)
    assert list(copied.state_dict()) == list(net.state_dict())
    check_own_parameters(net, copied, copied, EXACT)


@pytest.mark.skipif(not torch._dynamo.is_dynamo_supported(), reason='torch.compile is not supported here')
@pytest.mark.parametrize('name', NETWORKS)
def test_compiled_copy_computes_the_same_with_its_own_parameters(name, fresh_dynamo):
    net = build(name)
    compiled = torch.compile(copy.deepcopy(net), backend='aot_eager')
    check_own_parameters(net, compiled._orig_mod, compiled, COMPILED)


@pytest.mark.parametrize('kind', ['ModelEmaV2', 'AveragedModel'])
@pytest.mark.parametrize('name', NETWORKS)
def test_ema_copy_computes_the_same_with_its_own_parameters(name, kind):
    net = build(name)
    ema = make_ema(kind, net, decay=0.5)
    ema.update_parameters(net)  # AveragedModel's first update copies, the EMA's moves nowhere
    check_own_parameters(net, ema.module, ema, EXACT)


@pytest.mark.parametrize('kind', ['ModelEmaV2', 'AveragedModel'])
@pytest.mark.parametrize('name', NETWORKS)
def test_ema_update_averages_into_the_copys_own_blocks(name, kind):
    """After the model moves by DELTA, an EMA of decay 0.5 computes the network moved by DELTA / 2, built anew."""
    net = build(name)
    ema = make_ema(kind, net, decay=0.5)
    ema.update_parameters(net)
    perturb(net)
    ema.update_parameters(net)
    reference = build(name)
    perturb(reference, DELTA / 2)
    x = lq()
    with torch.no_grad():
        torch.testing.assert_close(ema(x), reference(x), **AVERAGED)
        assert (net(x) - reference(x)).abs().max() > CHANGED / 2


@pytest.mark.parametrize('name', RECORDING)
def test_a_copy_starts_without_records_and_records_its_own(name):
    net = build(name).train()
    net(lq())
    records = [block.recorded for block in recording_blocks(net)]
    assert records and all(record is not None for record in records)
    copied = copy.deepcopy(net)  # with the records (non-leaf tensors) copied, this raised
    assert all(block.recorded is None for block in recording_blocks(copied))
    copied(lq())
    copied_blocks = list(recording_blocks(copied))
    assert len(copied_blocks) == len(records) and all(block.recorded is not None for block in copied_blocks)
    assert all(block.recorded is record for block, record in zip(recording_blocks(net), records))
    # the copy's records come from the copy's parameters: their gradients reach the copy, not the original
    sum(tensor.sum() for block in copied_blocks for tensor in block.recorded).backward()
    assert all(parameter.grad is None for parameter in attention_parameters(net))


def data_parallel_message(num_gpu: int, entry: str) -> str:
    script = f' (or scripts/dist_train.sh {num_gpu} FILE)' if entry == 'train' else ''
    return re.escape(f'num_gpu: {num_gpu} without a launcher (DataParallel) is not supported; run one process per '
                     f'GPU: torchrun --nproc_per_node={num_gpu} -m basicsr_nlattn.{entry} -opt FILE --launcher '
                     f'pytorch{script}')


@pytest.mark.parametrize('is_train, entry', [(True, 'train'), (False, 'test')])
def test_data_parallel_is_refused_before_any_network_is_moved(is_train, entry):
    """num_gpu: 2 without a launcher: BasicSR would move net_g to CUDA and wrap it in DataParallel; on this CPU-only
    machine reaching that point would fail otherwise, so the OptionError shows that nothing was moved."""
    opt = training_options('ContrastiveSRModel', NETWORKS['WithAttention'])
    opt.update(num_gpu=2, dist=False, is_train=is_train)
    with pytest.raises(OptionError, match='^' + data_parallel_message(2, entry) + '$'):
        build_model(opt)


def test_num_gpu_auto_reaches_the_model_as_the_device_count(tmp_path, monkeypatch):
    """BasicSR's parse_options turns num_gpu: auto into torch.cuda.device_count(); with 3 devices, the refusal."""
    option_file = tmp_path / 'auto.yml'
    option_file.write_text("""
name: auto_gpus
model_type: ContrastiveSRModel
scale: 2
num_gpu: auto
manual_seed: 0
datasets: {}
network_g: {type: NLSN, num_feat: 8, num_block: 1, upscale: 2, reduction: 2, chunk_size: 16, n_hashes: 2}
path: {}
train:
  optim_g: {type: Adam, lr: !!float 1e-3}
  pixel_opt: {type: L1Loss}
""")
    monkeypatch.setattr('sys.argv', ['train', '-opt', str(option_file)])
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 3)
    opt, _ = parse_options(str(tmp_path), is_train=True)
    assert opt['num_gpu'] == 3 and opt['dist'] is False
    with pytest.raises(OptionError, match=data_parallel_message(3, 'train')):
        build_model(opt)
