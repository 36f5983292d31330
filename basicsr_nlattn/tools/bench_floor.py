"""Attention blocks against their arithmetic floor: the time their multiply-adds take at the rate a plain matmul
reaches on the same machine, in the same run.

The multiply-adds of a block are counted by mmengine's ``FlopAnalyzer`` over the block's own evaluation forward:
convolutions, ``einsum``, ``matmul`` and ``bmm`` as executed (NLSA: every round, the padded positions and the
three-chunk windows; the hashing product), elementwise operations (exp, softmax, normalisation) not counted. The
floor is 2 x multiply-adds / the matmul rate; the ratio is the measured time over the floor. Times are medians of
runs interleaved with the matmul, so that a change of load hits both alike.
"""
import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.tools.bench import interleaved_medians, machine_name, official_formula_enlca, peak_memory_bytes
from basicsr_nlattn.tools.flops import count_macs
from basicsr_nlattn.utils.atomic_write import write_text

MATMUL_SIZE = 2048  # a square float32 product of this size runs near the machine's peak rate
# (block name, channels, height, width): NLSA(64) on an Urban100 x4 LR image, the 256-channel blocks at 100x100
FLOOR_CASES: Tuple[Tuple[str, int, int, int],
                   ...] = (('NLSA', 64, 192, 256), ('NLSA', 256, 100, 100), ('ENLCA', 256, 100, 100))


def official_formula_nlsa(block: NLSA, x: Tensor) -> Tensor:
    """The official NonLocalSparseAttention's evaluation steps with this block's weights and seeded rotations:
    hash, one sort of the round-offset codes, gather, pad with the sorted tail, concatenate own + previous + next
    chunk, logits of every round at once, logsumexp, softmax-weighted values, unsort, softmax over rounds."""
    b, c, h, w = x.shape
    n = h * w
    embed = nn.functional.conv2d(x, block.match_conv.weight, block.match_conv.bias, padding=1)
    embed = embed.flatten(2).transpose(1, 2)  # (b, n, c')
    value = block.value_conv(x).flatten(2).transpose(1, 2)  # (b, n, c)
    rotations = block.rotations(embed.shape[-1], n, x.device, x.dtype)
    rotated = torch.einsum('bnc,crm->brnm', embed, rotations)
    codes = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # (b, r, n)
    rounds, num_buckets = codes.shape[1], 2 * rotations.shape[-1]
    offsets = torch.arange(rounds, device=x.device).view(1, -1, 1) * num_buckets
    order = (codes + offsets).view(b, -1).sort(dim=-1).indices  # (b, r n)
    undo = order.sort(dim=-1).indices
    positions = order % n
    chunk = block.chunk_size
    padding = (-n) % chunk

    def sorted_chunks(tensor: Tensor) -> Tensor:  # (b, n, d) -> (b, r, k, s, d)
        gathered = tensor.gather(1, positions.unsqueeze(-1).expand(-1, -1, tensor.shape[-1])).view(b, rounds, n, -1)
        if padding:
            gathered = torch.cat([gathered, gathered[:, :, -padding:]], dim=2)
        return gathered.view(b, rounds, -1, chunk, tensor.shape[-1])

    def with_neighbours(chunks: Tensor) -> Tensor:
        return torch.cat([chunks, chunks.roll(1, dims=2), chunks.roll(-1, dims=2)], dim=3)

    queries = sorted_chunks(embed)
    keys = with_neighbours(nn.functional.normalize(sorted_chunks(embed), dim=-1, eps=5e-5))
    values = with_neighbours(sorted_chunks(value))
    logits = torch.einsum('brkie,brkje->brkij', queries, keys)
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    attended = torch.einsum('brkij,brkje->brkie', torch.exp(logits - lse), values).reshape(b, rounds, -1, c)
    lse = lse.reshape(b, rounds, -1)
    if padding:
        attended, lse = attended[:, :, :-padding], lse[:, :, :-padding]
    attended = attended.reshape(b, -1, c).gather(1, undo.unsqueeze(-1).expand(-1, -1, c)).view(b, rounds, n, c)
    lse = lse.reshape(b, -1).gather(1, undo).view(b, rounds, n, 1)
    out = (attended * torch.softmax(lse, dim=1)).sum(dim=1)
    return x + block.res_scale * out.transpose(1, 2).reshape(b, c, h, w)


def _block(name: str, channels: int) -> nn.Module:
    return (NLSA(channels) if name == 'NLSA' else ENLCA(channels)).eval()


def _official(name: str, block: nn.Module) -> Callable[[Tensor], Tensor]:
    return (lambda x: official_formula_nlsa(block, x)) if name == 'NLSA' else (
        lambda x: official_formula_enlca(block, x))


@torch.no_grad()
def bench_floor(cases: Sequence[Tuple[str, int, int, int]] = FLOOR_CASES,
                device: str = 'cpu',
                repeats: int = 5,
                matmul_size: int = MATMUL_SIZE) -> List[Dict[str, Any]]:
    """One row per (block, channels, height, width), batch 1, evaluation: multiply-adds, the matmul rate measured
    beside the block, floor, time, ratio, peak memory, and the official formula's time with the speed-up over it."""
    torch.manual_seed(0)
    target = torch.device(device)
    left = torch.randn(matmul_size, matmul_size, device=target)
    right = torch.randn(matmul_size, matmul_size, device=target)
    rows = []
    for name, channels, height, width in cases:
        block = _block(name, channels).to(target)
        x = torch.randn(1, channels, height, width, device=target)
        macs = count_macs(block, (x, ))
        official = _official(name, block)
        difference = ((block(x) - official(x)).abs().max() / (official(x) - x).abs().max()).item()
        medians = interleaved_medians(
            {
                'matmul': lambda: left @ right,
                'block': lambda: block(x),
                'official': lambda: official(x)
            }, target, repeats)
        rate = 2 * matmul_size**3 / medians['matmul']  # FLOP/s
        floor = 2 * macs / rate
        rows.append({
            'block': f'{name}({channels})',
            'input': f'1x{channels}x{height}x{width}',
            'gmacs': macs / 1e9,
            'matmul_gflops': rate / 1e9,
            'floor_ms': floor * 1e3,
            'ms': medians['block'] * 1e3,
            'ratio': medians['block'] / floor,
            'memory_mb': peak_memory_bytes(lambda: block(x), target) / 2**20,
            'official_ms': medians['official'] * 1e3,
            'official_memory_mb': peak_memory_bytes(lambda: official(x), target) / 2**20,
            'speedup': medians['official'] / medians['block'],
            'relative_difference': difference,
        })
    return rows


# One NLSA block's training step at the papers' patch: batch 16, 48x48 LR, 256 channels
TRAINING_CASE: Tuple[int, int, int, int] = (16, 256, 48, 48)


def bench_training_step(case: Tuple[int, int, int, int] = TRAINING_CASE,
                        device: str = 'cpu',
                        repeats: int = 3) -> Dict[str, Any]:
    """Forward + backward of one NLSA block in training against autograd through the official evaluation steps
    (:func:`official_formula_nlsa`, the same weights and rotations): median time and peak memory of each."""
    torch.manual_seed(0)
    target = torch.device(device)
    batch, channels, height, width = case
    block = NLSA(channels).to(target).eval()  # eval: the seeded rotations, so that both compute the same thing
    x = torch.randn(batch, channels, height, width, device=target, requires_grad=True)

    def ours() -> None:
        with torch.enable_grad():
            block(x).sum().backward()

    def official() -> None:
        with torch.enable_grad():
            official_formula_nlsa(block, x).sum().backward()

    medians = interleaved_medians({'ours': ours, 'official': official}, target, repeats)
    memory = {name: peak_memory_bytes(run, target) / 2**20 for name, run in (('ours', ours), ('official', official))}
    return {
        'block': f'NLSA({channels})',
        'input': f'{batch}x{channels}x{height}x{width}',
        'ms': medians['ours'] * 1e3,
        'memory_mb': memory['ours'],
        'official_ms': medians['official'] * 1e3,
        'official_memory_mb': memory['official'],
        'memory_ratio': memory['official'] / memory['ours'],
    }


def format_training_table(row: Dict[str, Any]) -> str:
    """Markdown table of :func:`bench_training_step`'s row."""
    return '\n'.join([
        'One NLSA block, training step (forward + backward), ours against autograd through the official formula', '',
        '| block | input | ms | peak MB | official ms | official MB | official / ours memory |',
        '|---|---|---|---|---|---|---|',
        f"| {row['block']} | {row['input']} | {row['ms']:.0f} | {row['memory_mb']:.0f} | {row['official_ms']:.0f} "
        f"| {row['official_memory_mb']:.0f} | {row['memory_ratio']:.1f} |"
    ])


def format_floor_table(rows: List[Dict[str, Any]], machine: Optional[str] = None) -> str:
    """Markdown table of :func:`bench_floor`'s rows."""
    lines = [
        f'Attention blocks against their floor (evaluation, batch 1{", " + machine if machine else ""})', '',
        '| block | input | GMACs | matmul GFLOP/s | floor ms | ms | x floor | peak MB | official ms | official MB '
        '| speed-up | max diff |', '|---|---|---|---|---|---|---|---|---|---|---|---|'
    ]
    for row in rows:
        lines.append(f"| {row['block']} | {row['input']} | {row['gmacs']:.2f} | {row['matmul_gflops']:.0f} "
                     f"| {row['floor_ms']:.0f} | {row['ms']:.0f} | {row['ratio']:.2f} | {row['memory_mb']:.0f} "
                     f"| {row['official_ms']:.0f} | {row['official_memory_mb']:.0f} | {row['speedup']:.2f} "
                     f"| {row['relative_difference']:.1e} |")
    return '\n'.join(lines)


def run_floor_benchmark(device: str = 'cpu',
                        repeats: int = 5,
                        matmul_size: int = MATMUL_SIZE,
                        json_path: Optional[str] = None) -> List[Dict[str, Any]]:
    """Print :func:`bench_floor`'s table for :data:`FLOOR_CASES` with how it was measured, then
    :func:`bench_training_step` at :data:`TRAINING_CASE`; write JSON if asked."""
    machine = machine_name(device)
    print(f'Machine: {machine}; torch {torch.__version__}; float32. Multiply-adds by mmengine FlopAnalyzer over the '
          "block's evaluation forward (convolutions, einsum, matmul, bmm; elementwise operations not counted); "
          f'floor = 2 x multiply-adds / the rate of a {matmul_size}x{matmul_size} float32 matmul measured between the '
          f"block's runs; median of {repeats}; official: the official block's evaluation steps with the same weights "
          'and rotations; max diff: the largest |ours - official| over the largest attention term.\n')
    rows = bench_floor(FLOOR_CASES, device, repeats, matmul_size)
    print(format_floor_table(rows, machine))
    training = bench_training_step(TRAINING_CASE, device, repeats)
    print('\n' + format_training_table(training))
    if json_path:
        results = {'machine': machine, 'torch': torch.__version__, 'rows': rows, 'training_step': training}
        write_text(json_path, json.dumps(results, indent=2))
        print(f'\nWrote {json_path}')
    return rows
