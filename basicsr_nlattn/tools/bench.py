"""Side-by-side measurements of the attention blocks and the contrastive loss (a script, never a test).

Every row is measured in the same process, one after the other, so ratios are meaningful on the machine that ran
them. Time: median of ``repeats`` forward+backward passes after one warm-up pass (the ENLCA eval table: forwards
without autograd, ours and the official formula interleaved, pass after pass). Memory: the peak, during one
forward+backward pass, of what the pass allocated and had not yet freed: on CUDA from the allocator's statistics,
on the CPU from the profiler's allocation trace (``torch.profiler`` with ``profile_memory``).
"""
import json
import math
import platform
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA, NORMALIZE_EPS
from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.losses.enlca_loss import enlca_contrastive_loss
from basicsr_nlattn.losses.loss_util import resolve_count
from basicsr_nlattn.tools.bench_plot import benchmark_figure
from basicsr_nlattn.utils.atomic_write import save_figure, write_text


def _cpu_peak_bytes(step: Callable[[], None]) -> int:
    """Peak of the bytes allocated by ``step`` and not yet freed, replayed from the profiler's CPU allocation
    trace (each op's own allocations at its start, frees as ``[memory]`` events)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    changes = sorted((event.time_range.start, event.self_cpu_memory_usage) for event in profiler.events()
                     if event.self_cpu_memory_usage)
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak


def peak_memory_bytes(step: Callable[[], Any], device: torch.device) -> int:
    """Bytes allocated by one call of ``step`` and not yet freed, at their peak: the CUDA allocator's statistics
    on a GPU, the profiler's allocation trace (``_cpu_peak_bytes``) on the CPU."""
    if device.type != 'cuda':
        return _cpu_peak_bytes(step)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - baseline


def machine_name(device: str) -> str:
    """The GPU's name on CUDA, else the processor (or architecture) and torch's thread count."""
    if device.startswith('cuda'):
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'


def _timed(run: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of ``run`` (the device's queued work included on CUDA)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(run: Callable[[], Tensor], device: torch.device, repeats: int) -> Dict[str, float]:
    """Median seconds of forward+backward of ``run`` and its peak memory in MB (module docstring)."""

    def step() -> None:
        run().sum().backward()

    step()
    timings = [_timed(step, device) for _ in range(repeats)]
    return {'seconds': statistics.median(timings), 'memory_mb': peak_memory_bytes(step, device) / 2**20}


class ExactAttention(nn.Module):
    """ENLCA's convolutions and embeddings with exact softmax attention (``scaled_dot_product_attention``)."""

    def __init__(self, block: ENLCA) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query, key, value = self.block.embed(x)
        scale = math.sqrt(self.block.amplification)
        attended = F.scaled_dot_product_attention(query * scale, key * scale, value, scale=1.0)  # (b, hw, c)
        return x + self.block.res_scale * attended.transpose(1, 2).reshape(b, c, h, w)


def bench_attention(sizes: Sequence[int],
                    num_feat: int = 64,
                    reduction: int = 1,
                    num_random_features: int = 128,
                    batch: int = 1,
                    device: str = 'cpu',
                    repeats: int = 3,
                    nlsa_rounds: Sequence[int] = (1, 2, 4, 8)) -> List[Dict[str, Any]]:
    """Exact attention, ENLCA and NLSA-r blocks on the same input, forward+backward, at size x size inputs.

    Every block has ``num_feat`` channels in and out and ``num_feat // reduction``-dim queries and keys; the exact
    block is ENLCA's convolutions and embeddings with ``scaled_dot_product_attention``. Ratios are to exact.
    """
    torch.manual_seed(0)
    target = torch.device(device)
    enlca = ENLCA(num_feat, reduction=reduction, num_random_features=num_random_features).to(target)
    blocks = [('exact', ExactAttention(enlca)), (f'ENLCA-m{num_random_features}', enlca)]
    blocks += [(f'NLSA-r{r}', NLSA(num_feat, reduction=reduction, n_hashes=r).to(target)) for r in nlsa_rounds]
    rows = []
    for size in sizes:
        x = torch.randn(batch, num_feat, size, size, device=target, requires_grad=True)
        exact = None
        for name, module in blocks:
            result = measure(lambda module=module: module(x), target, repeats)
            exact = exact or result
            rows.append({
                'size': size,
                'positions': size * size,
                'method': name,
                'seconds': result['seconds'],
                'memory_mb': result['memory_mb'],
                'time_vs_exact': result['seconds'] / exact['seconds'],
                'memory_vs_exact': result['memory_mb'] / exact['memory_mb']
            })
    return rows


def official_formula_enlca(block: ENLCA, x: Tensor) -> Tensor:
    """The baseline of ``bench_enlca_eval``: ENLCA's forward written plainly from the official formula, with
    ``block``'s weights and F. Three 1x1 convolutions (theta, delta, psi), F.normalize (eps 5e-5) times sqrt(k),
    the literal features m^-1/2 (exp(F x - |x|^2 / 2) + eps) by einsum, keys times values first, then the queries
    and D^-1 (Eq. 3-6)."""
    b, c, h, w = x.shape
    scale = math.sqrt(block.amplification)

    def positions(embedded: Tensor) -> Tensor:  # (b, d, h, w) -> (b, hw, d)
        return embedded.permute(0, 2, 3, 1).reshape(b, h * w, -1)

    def features(embedded: Tensor) -> Tensor:  # (b, hw, c') -> (b, hw, m)
        exponent = torch.einsum('bnc,mc->bnm', embedded, block.random_features) - embedded.pow(2).sum(-1, True) / 2
        return (torch.exp(exponent) + block.eps) / math.sqrt(block.random_features.shape[0])

    query = positions(F.normalize(block.query_conv(x), dim=1, eps=NORMALIZE_EPS) * scale)
    key = positions(F.normalize(block.key_conv(x), dim=1, eps=NORMALIZE_EPS) * scale)
    value = positions(block.value_conv(x))
    query_features, key_features = features(query), features(key)
    context = torch.einsum('bnm,bnc->bmc', key_features, value)  # (b, m, c)
    normaliser = torch.einsum('bnm,bm->bn', query_features, key_features.sum(dim=1))
    attended = torch.einsum('bnm,bmc->bnc', query_features, context) / normaliser.unsqueeze(-1)  # (b, hw, c)
    return x + block.res_scale * attended.permute(0, 2, 1).reshape(b, c, h, w)


def interleaved_medians(runs: Dict[str, Callable[[], Any]], device: torch.device, repeats: int) -> Dict[str, float]:
    """Median seconds of each run, after one warm-up pass each, timed in turn within every repeat (so that a load
    change on the machine hits all runs alike)."""
    for run in runs.values():
        run()
    timings: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            timings[name].append(_timed(run, device))
    return {name: statistics.median(values) for name, values in timings.items()}


@torch.no_grad()
def bench_enlca_eval(sizes: Sequence[int],
                     num_feat: int = 256,
                     device: str = 'cpu',
                     repeats: int = 3) -> List[Dict[str, Any]]:
    """ENLCA in eval (no autograd) against :func:`official_formula_enlca`, the official block (reduction 4, m = 128,
    amplification 6), batch 1, at size x size inputs; each row also gives the largest difference of the outputs
    relative to the largest attention term |Y - X|."""
    torch.manual_seed(0)
    target = torch.device(device)
    block = ENLCA(num_feat).to(target).eval()
    rows = []
    for size in sizes:
        x = torch.randn(1, num_feat, size, size, device=target)
        ours, official = block(x), official_formula_enlca(block, x)
        difference = ((ours - official).abs().max() / (official - x).abs().max()).item()
        medians = interleaved_medians({
            'ours': lambda: block(x),
            'official': lambda: official_formula_enlca(block, x)
        }, target, repeats)
        rows.append({
            'size': size,
            'channels': num_feat,
            'ours_seconds': medians['ours'],
            'official_seconds': medians['official'],
            'speedup': medians['official'] / medians['ours'],
            'relative_difference': difference
        })
    return rows


def full_sort_contrastive_loss(query: Tensor,
                               key: Tensor,
                               num_pos: int,
                               negative_start: int,
                               margin: float,
                               amplification: float,
                               hinge: bool = True) -> Tensor:
    """The baseline that ``bench_contrastive_loss`` measures ``enlca_contrastive_loss`` against: the official
    formulation, the whole (B, N, N) similarity sorted per row."""
    ranked = (amplification * query @ key.transpose(1, 2)).sort(dim=-1, descending=True).values
    positive = ranked[..., :num_pos].exp().mean(-1)
    negative = ranked[..., negative_start:negative_start + num_pos].exp().mean(-1)
    per_query = -torch.log(positive / negative) + margin
    return (F.relu(per_query) if hinge else per_query).mean()


def bench_contrastive_loss(batch: int = 16,
                           size: int = 48,
                           channels: int = 64,
                           device: str = 'cpu',
                           repeats: int = 2) -> Dict[str, float]:
    """Chunked top-k loss against the full sort at the paper's training size (batch 16, LR patch 48)."""
    target = torch.device(device)
    positions = size * size
    generator = torch.Generator(device=target).manual_seed(0)
    query = F.normalize(torch.randn(batch, positions, channels, device=target, generator=generator), dim=-1)
    key = F.normalize(torch.randn(batch, positions, channels, device=target, generator=generator), dim=-1)
    query.requires_grad_()
    key.requires_grad_()
    num_pos, negative_start = resolve_count(0.02, positions), resolve_count(0.08, positions)
    ours = measure(lambda: enlca_contrastive_loss(query, key, 0.02, 0.08, 1.0, 6.0), target, repeats)
    full = measure(lambda: full_sort_contrastive_loss(query, key, num_pos, negative_start, 1.0, 6.0), target, repeats)
    return {
        'batch': batch,
        'size': size,
        'channels': channels,
        'chunked_seconds': ours['seconds'],
        'chunked_memory_mb': ours['memory_mb'],
        'full_sort_seconds': full['seconds'],
        'full_sort_memory_mb': full['memory_mb'],
        'memory_ratio': full['memory_mb'] / ours['memory_mb']
    }


def format_attention_table(rows: List[Dict[str, Any]]) -> str:
    lines = ['| input | method | ms | MB | time / exact | memory / exact |', '| --- | --- | --- | --- | --- | --- |']
    for row in rows:
        lines.append(f"| {row['size']}x{row['size']} | {row['method']} | {1e3 * row['seconds']:.1f} | "
                     f"{row['memory_mb']:.1f} | {row['time_vs_exact']:.3f} | {row['memory_vs_exact']:.3f} |")
    return '\n'.join(lines)


def format_eval_table(rows: List[Dict[str, Any]]) -> str:
    lines = [
        '| input | channels | ours ms | official formula ms | official / ours | max difference / max attention term |',
        '| --- | --- | --- | --- | --- | --- |'
    ]
    for row in rows:
        lines.append(f"| {row['size']}x{row['size']} | {row['channels']} | {1e3 * row['ours_seconds']:.1f} | "
                     f"{1e3 * row['official_seconds']:.1f} | {row['speedup']:.2f} | {row['relative_difference']:.1e} |")
    return '\n'.join(lines)


def format_loss_table(row: Dict[str, float]) -> str:
    return '\n'.join([
        '| contrastive loss (batch, size, channels) | chunked top-k ms | full sort ms | chunked MB | full sort MB | '
        'full / chunked memory |', '| --- | --- | --- | --- | --- | --- |',
        f"| {row['batch']}, {row['size']}x{row['size']}, {row['channels']} | {1e3 * row['chunked_seconds']:.0f} | "
        f"{1e3 * row['full_sort_seconds']:.0f} | {row['chunked_memory_mb']:.1f} | {row['full_sort_memory_mb']:.1f} | "
        f"{row['memory_ratio']:.1f} |"
    ])


def run_benchmarks(sizes: Sequence[int],
                   num_feat: int,
                   num_random_features: int,
                   device: str,
                   repeats: int,
                   with_loss: bool = True,
                   eval_sizes: Sequence[int] = (100, 200),
                   json_path: Optional[str] = None,
                   plot_path: Optional[str] = None) -> Dict[str, Any]:
    """Run the comparisons, print them as markdown tables (with the machine), optionally write JSON and draw the
    attention rows (time and memory against the input size, ``bench_plot``). ``eval_sizes`` empty skips the ENLCA
    eval table."""
    on_cuda = device.startswith('cuda')
    machine = machine_name(device)
    print(f"Machine: {machine}; torch {torch.__version__}; memory: "
          f"{'peak allocated (CUDA allocator)' if on_cuda else 'peak allocated (profiler trace)'} per pass")
    rows = bench_attention(
        sizes, num_feat=num_feat, reduction=1, num_random_features=num_random_features, device=device, repeats=repeats)
    print(f'\nAttention blocks against exact softmax attention, {num_feat} channels in and out, {num_feat}-dim '
          'queries and keys, forward + backward, batch 1:')
    print(format_attention_table(rows))
    results: Dict[str, Any] = {'machine': machine, 'torch': torch.__version__, 'attention': rows}
    if eval_sizes:
        results['enlca_eval'] = bench_enlca_eval(eval_sizes, device=device, repeats=repeats)
        print('\nENLCA eval against the official formula (reduction 4, m = 128, amplification 6), forward without '
              'autograd, batch 1, timed interleaved:')
        print(format_eval_table(results['enlca_eval']))
    if with_loss:
        results['contrastive_loss'] = bench_contrastive_loss(device=device)
        print('\nENLCA contrastive loss, n1 = 2 %, n2 = 8 %, forward + backward:')
        print(format_loss_table(results['contrastive_loss']))
    if json_path:
        write_text(json_path, json.dumps(results, indent=2))
        print(f'\nWrote {json_path}')
    if plot_path:
        save_figure(benchmark_figure(rows, f'{num_feat} channels, forward + backward, batch 1; {machine}'), plot_path)
        print(f'\nWrote {plot_path}')
    return results
