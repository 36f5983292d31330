"""Whole networks side by side with BasicSR's EDSR of the same width and depth (a script, never a test).

``basicsr bench --network ENLCN|NLSN|CCLNN|EDSR`` measures, for the network and for ``basicsr.archs.edsr_arch.EDSR``
with the same ``num_feat``, ``num_block``, ``res_scale`` and ``upscale``:

- a training step on a batch of LR patches: forward, L1 loss, the network's contrastive loss in the paper's recipe
  (ENLCN: ``ENLCAContrastiveLoss``; CCLNN: ``CCAContrastiveLoss``, n = 10 % at x4, 15 % otherwise; NLSN and EDSR:
  none), backward and an Adam step, as ``ContrastiveSRModel.optimize_parameters`` runs them (less the scheduled
  redraw of ENLCA's random features);
- an inference pass on the same batch (eval mode, no autograd);
- inference of one Urban100-sized image (the LR of a 1024x768 HR image, 512x384 at x2) whole, tiled
  (``{size, overlap}``) and chopped (the official ``forward_chop``), through ``tiled_inference.super_resolve``.

Time: median of ``repeats`` passes after one warm-up pass, the network's and EDSR's passes timed in turn
(``bench.interleaved_medians``), so that a load change hits both alike. Memory: the peak of what one pass allocated
and had not yet freed, as ``bench.measure`` reads it (CUDA allocator statistics; on the CPU the profiler's
allocation trace, ``bench.peak_memory_bytes``). With ``amp`` the passes run under ``torch.autocast`` (fp16 training
with a GradScaler); with ``compile`` both networks go through ``torch.compile``, compiled by a probe (a training
step and an eval pass) and the warm-up passes, and a network whose compilation raises is measured uncompiled, with
a note (compiled graphs allocate outside the profiler's op events: on the CPU their memory rows under-count).

The defaults (64 features, 8 residual blocks, batch 2 on the CPU) finish in about a minute on two CPU cores; the
papers' networks are ``--num_feat 256 --num_block 32 --batch 16`` (a GPU's work).
"""
import dataclasses
import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from basicsr.archs.edsr_arch import EDSR
from basicsr.losses.basic_loss import L1Loss
from torch import Tensor, nn

from basicsr_nlattn.archs import CCLNN, ENLCN, NLSN
from basicsr_nlattn.archs.attention.recording import recording_blocks
from basicsr_nlattn.losses import CCAContrastiveLoss, ENLCAContrastiveLoss
from basicsr_nlattn.models.contrastive_sr_model import bare_network, grad_scaler
from basicsr_nlattn.models.tiled_inference import AMP_DTYPES, autocast_to, parse_tile_options, super_resolve
from basicsr_nlattn.tools.bench import interleaved_medians, machine_name, peak_memory_bytes
from basicsr_nlattn.utils.atomic_write import write_text
from basicsr_nlattn.utils.errors import OptionError

NETWORKS = {'ENLCN': ENLCN, 'NLSN': NLSN, 'CCLNN': CCLNN, 'EDSR': EDSR}
# The papers' trunk settings that --num_feat / --num_block leave alone (the arch defaults: res_scale 0.1,
# img_range 1, an attention block before the first residual block and after every 8).
RES_SCALE = 0.1
IMG_RANGE = 1.0
# CCLNN's channel attention reduces num_feat by 16; ENLCA and NLSA embed num_feat / 4.
MIN_NUM_FEAT = {'ENLCN': 4, 'NLSN': 4, 'CCLNN': 16, 'EDSR': 1}
URBAN100_HR = (768, 1024)  # (h, w) of most Urban100 images
ADAM = {'lr': 1e-4, 'betas': (0.9, 0.99)}  # the ENLCN / NLSN recipes


@dataclasses.dataclass(frozen=True)
class NetworkBenchSettings:
    """What ``basicsr bench --network`` measures; each field is a flag of the command.

    Args:
        network (str): ENLCN, NLSN, CCLNN or EDSR (then EDSR alone).
        scale (int): upscale, 2, 3 or 4. Default: 4.
        batch (int): LR patches per training step and patch inference pass. Default: 2.
        size (int): LR patch side. Default: 48 (the papers' training patch).
        num_feat (int): trunk width of both networks. Default: 64 (the papers: 256).
        num_block (int): residual blocks of both networks. Default: 8 (the papers: 32).
        device (str): cpu or cuda. Default: cpu.
        repeats (int): timed passes per row (median). Default: 3.
        amp (str, optional): bf16 or fp16 autocast, None for float32. Default: None.
        compile (bool): ``torch.compile`` both networks. Default: False.
        image_size (tuple, optional): (h, w) of the whole LR image; None: the LR of a 1024x768 HR image.
        tile (tuple): (size, overlap) in LR pixels of the tiled rows. Default: (128, 32).
    """

    network: str
    scale: int = 4
    batch: int = 2
    size: int = 48
    num_feat: int = 64
    num_block: int = 8
    device: str = 'cpu'
    repeats: int = 3
    amp: Optional[str] = None
    compile: bool = False
    image_size: Optional[Tuple[int, int]] = None
    tile: Tuple[int, int] = (128, 32)

    def lr_image_size(self) -> Tuple[int, int]:
        """(h, w) of the whole-image rows: ``image_size``, or the LR of a 1024x768 HR image (512x384 at x2)."""
        return self.image_size or (URBAN100_HR[0] // self.scale, URBAN100_HR[1] // self.scale)


def check_settings(settings: NetworkBenchSettings) -> None:
    """Raise OptionError, naming the flag, for settings that cannot run."""
    if settings.network not in NETWORKS:
        raise OptionError(f"--network must be one of {', '.join(NETWORKS)}, got '{settings.network}'")
    if settings.scale not in (2, 3, 4):
        raise OptionError(f'--scale must be 2, 3 or 4, got {settings.scale}')
    if settings.amp is not None and settings.amp not in AMP_DTYPES:
        raise OptionError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got '{settings.amp}'")
    for flag in ('batch', 'size', 'num_block', 'repeats'):
        if getattr(settings, flag) < 1:
            raise OptionError(f'--{flag} must be >= 1, got {getattr(settings, flag)}')
    if settings.num_feat < MIN_NUM_FEAT[settings.network]:
        raise OptionError(f'--num_feat must be >= {MIN_NUM_FEAT[settings.network]} for {settings.network}, got '
                          f'{settings.num_feat}')
    if settings.image_size is not None and min(settings.image_size) < 1:
        raise OptionError(f'--image_size must be >= 1, got {list(settings.image_size)}')
    if settings.tile[0] < 1 or settings.tile[1] < 0:
        raise OptionError(f'--tile needs SIZE >= 1 and OVERLAP >= 0, got {list(settings.tile)}')


def make_network(name: str, settings: NetworkBenchSettings) -> nn.Module:
    """The network ``name`` (or EDSR) with the bench's width, depth, res_scale and upscale, the rest the paper's."""
    return NETWORKS[name](
        num_in_ch=3,
        num_out_ch=3,
        num_feat=settings.num_feat,
        num_block=settings.num_block,
        upscale=settings.scale,
        res_scale=RES_SCALE,
        img_range=IMG_RANGE)


def contrastive_losses(name: str, scale: int) -> List[nn.Module]:
    """The contrastive terms of the paper's recipe for network ``name`` (``options/train_*.yml``)."""
    if name == 'ENLCN':
        return [ENLCAContrastiveLoss()]
    if name == 'CCLNN':
        return [CCAContrastiveLoss(n=0.10 if scale == 4 else 0.15)]
    return []


def training_step(net: nn.Module, losses: Sequence[nn.Module], lq: Tensor, gt: Tensor,
                  amp: Optional[torch.dtype]) -> Callable[[], None]:
    """One training iteration of ``net`` on (lq, gt): forward, L1 + ``losses``, backward, Adam step (fp16: with a
    GradScaler), the blocks' records cleared, as ContrastiveSRModel runs it."""
    optimizer = torch.optim.Adam(net.parameters(), **ADAM)
    scaler = grad_scaler(lq.device, amp)
    pixel_loss = L1Loss()
    blocks = list(recording_blocks(bare_network(net)))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast_to(lq.device, amp):
            loss = pixel_loss(net(lq), gt)
            for contrastive in losses:
                loss = loss + contrastive(blocks)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        for block in blocks:
            block.clear_recorded()

    return step


def inference_pass(net: nn.Module, lq: Tensor, scale: int, tile: Optional[Dict[str, Any]],
                   amp: Optional[torch.dtype]) -> Callable[[], None]:
    """SR of ``lq`` by ``net`` whole, tiled or chopped (``tile``, from ``parse_tile_options``), without autograd."""

    @torch.no_grad()
    def run() -> None:
        with autocast_to(lq.device, amp):
            super_resolve(net, lq, scale, tile)

    return run


def compiled_or_eager(net: nn.Module, name: str, probe: Callable[[nn.Module], None]) -> Tuple[nn.Module, bool]:
    """``torch.compile(net)`` and whether it compiled: ``probe`` (a training step and an eval pass) compiles it;
    where that raises, a note is printed and ``net`` is measured uncompiled (``ContrastiveSRModel._compiled``)."""
    compiled = torch.compile(net)
    try:
        probe(compiled)
    except Exception as error:  # noqa: B902  (any backend failure: measure uncompiled, as documented)
        print(f'Note: torch.compile of {name} failed ({error!r}); measuring it uncompiled')
        return net, False
    return compiled, True


def _rows(label: str, input_shape: Sequence[int], runs: Dict[str, Callable[[], None]], params: Dict[str, float],
          settings: NetworkBenchSettings) -> List[Dict[str, Any]]:
    """One row per network of ``runs``: interleaved median time, then peak memory, and the ratios to EDSR."""
    device = torch.device(settings.device)
    seconds = interleaved_medians(runs, device, settings.repeats)
    memory = {name: peak_memory_bytes(run, device) / 2**20 for name, run in runs.items()}
    return [{
        'pass': label,
        'input': 'x'.join(str(side) for side in input_shape),
        'network': name,
        'params_m': params[name],
        'seconds': seconds[name],
        'memory_mb': memory[name],
        'time_vs_edsr': seconds[name] / seconds['EDSR'],
        'memory_vs_edsr': memory[name] / memory['EDSR']
    } for name in runs]


def _probe(name: str, lq: Tensor, gt: Tensor, settings: NetworkBenchSettings,
           amp: Optional[torch.dtype]) -> Callable[[nn.Module], None]:
    """A training step, then an eval pass, of a network (the compilation of ``compiled_or_eager``)."""

    def probe(net: nn.Module) -> None:
        net.train()
        training_step(net, contrastive_losses(name, settings.scale), lq, gt, amp)()
        net.eval()
        inference_pass(net, lq, settings.scale, None, amp)()

    return probe


def bench_networks(settings: NetworkBenchSettings) -> Tuple[List[Dict[str, Any]], Dict[str, bool]]:
    """All rows (training step, patch inference, whole / tiled / chopped image) and, per network, whether it ran
    compiled."""
    check_settings(settings)
    torch.manual_seed(0)
    device = torch.device(settings.device)
    amp = AMP_DTYPES.get(settings.amp)
    names = [settings.network] + ([] if settings.network == 'EDSR' else ['EDSR'])
    nets = {name: make_network(name, settings).to(device) for name in names}
    params = {name: sum(p.numel() for p in net.parameters()) / 1e6 for name, net in nets.items()}
    lq = torch.rand(settings.batch, 3, settings.size, settings.size, device=device)
    gt = torch.rand(settings.batch, 3, settings.size * settings.scale, settings.size * settings.scale, device=device)
    image = torch.rand(1, 3, *settings.lr_image_size(), device=device)
    compiled = {name: False for name in names}
    if settings.compile:
        for name in names:
            nets[name], compiled[name] = compiled_or_eager(nets[name], name, _probe(name, lq, gt, settings, amp))
    for net in nets.values():
        net.train()
    train = {
        name: training_step(net, contrastive_losses(name, settings.scale), lq, gt, amp)
        for name, net in nets.items()
    }
    rows = _rows('train step', lq.shape, train, params, settings)
    for net in nets.values():
        net.eval()
    tiles = parse_tile_options({'size': settings.tile[0], 'overlap': settings.tile[1]})
    chop = parse_tile_options({'mode': 'chop'})
    modes = [('inference', lq, None), ('image, whole', image, None), ('image, tiled', image, tiles),
             ('image, chop', image, chop)]
    for label, batch, tile in modes:
        runs = {name: inference_pass(net, batch, settings.scale, tile, amp) for name, net in nets.items()}
        rows += _rows(label, batch.shape, runs, params, settings)
    return rows, compiled


def format_network_table(rows: List[Dict[str, Any]]) -> str:
    lines = [
        '| pass | input | network | params (M) | ms | peak MB | time / EDSR | memory / EDSR |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |'
    ]
    for row in rows:
        lines.append(f"| {row['pass']} | {row['input']} | {row['network']} | {row['params_m']:.2f} | "
                     f"{1e3 * row['seconds']:.1f} | {row['memory_mb']:.1f} | {row['time_vs_edsr']:.2f} | "
                     f"{row['memory_vs_edsr']:.2f} |")
    return '\n'.join(lines)


def _describe(settings: NetworkBenchSettings, machine: str, compiled: Dict[str, bool]) -> str:
    """The lines printed above the table: machine, precision, compilation and what each pass runs."""
    precision = f'autocast {settings.amp}' if settings.amp else 'float32'
    compile_note = ', '.join(f"{name} {'compiled' if done else 'eager'}" for name, done in compiled.items())
    losses = ''.join(f' + {type(loss).__name__}' for loss in contrastive_losses(settings.network, settings.scale))
    height, width = settings.lr_image_size()
    image = 'an Urban100-sized' if settings.image_size is None else 'one'
    memory_note = ''
    if settings.compile and not settings.device.startswith('cuda'):
        memory_note = (' (compiled on the CPU: the profiler sees the allocations of eager ops only, not the buffers '
                       'of compiled graphs, so these rows under-count)')
    return (f'Machine: {machine}; torch {torch.__version__}; {precision}; {compile_note}\n\n'
            f'{settings.network} x{settings.scale} beside EDSR of the same width and depth ({settings.num_feat} '
            f'features, {settings.num_block} residual blocks, res_scale {RES_SCALE}); inputs (b, c, h, w). '
            f'Training step: forward, L1{losses}, backward, Adam. Inference: eval, no autograd, the same batch, then '
            f'{image} {width}x{height} LR image whole, in {settings.tile[0]}-pixel tiles with {settings.tile[1]} of '
            f'overlap, and chopped (official forward_chop). Median of {settings.repeats}, interleaved; peak memory '
            f'of one pass{memory_note}:')


def run_network_benchmark(settings: NetworkBenchSettings, json_path: Optional[str] = None) -> Dict[str, Any]:
    """Measure (``bench_networks``), print the markdown table with the machine and settings, optionally write JSON.

    Returns:
        dict: ``machine``, ``torch``, ``settings`` (the flags, with the whole image's ``image_size``), ``compiled``
        (per network) and ``rows`` (``pass``, ``input``, ``network``, ``params_m``, ``seconds``, ``memory_mb``,
        ``time_vs_edsr``, ``memory_vs_edsr``).
    """
    rows, compiled = bench_networks(settings)
    machine = machine_name(settings.device)
    config = {**dataclasses.asdict(settings), 'image_size': list(settings.lr_image_size()), 'tile': list(settings.tile)}
    print(_describe(settings, machine, compiled))
    print(format_network_table(rows))
    results = {'machine': machine, 'torch': torch.__version__, 'settings': config, 'compiled': compiled, 'rows': rows}
    if json_path:
        write_text(json_path, json.dumps(results, indent=2))
        print(f'\nWrote {json_path}')
    return results
