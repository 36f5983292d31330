"""Multiply-accumulates of the attention cores and of whole networks, counted by mmengine's FlopAnalyzer.

The papers report "GFLOPs" = 2 x multiply-accumulates (MACs), of the attention core only (the embedding
convolutions excluded), for a 100 x 100 input with 64 channels in and out:

* ENLCA paper, Table 4: 64-dim queries and keys (no reduction): NLA 25.6, NLSA-r4 5.08, ENLCA-m128 0.66, conv 0.74.
* NLSA paper, Table 5: NLA 16.0 is reproduced exactly by 16-dim queries and keys (the block's reduction of 4 on
  64 channels) with 64-dim values; its NLSA rows (0.9 / 1.4 / 2.4 / 4.3 for r = 1 / 2 / 4 / 8) grow by about
  0.5 per round on a fixed part of about 0.4, which counting the core alone does not reproduce (the per-round
  cost matches attention to about two chunks of 144; the fixed part is not documented).
"""
from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.nlsa import bucketed_attention, num_hash_buckets, spherical_hash
from basicsr_nlattn.archs.attention.random_features import orthogonal_gaussian_matrix, random_feature_attention

ENLCA_TABLE_4 = {
    'NLA': 25.60,
    'conv3x3': 0.74,
    'NLSA-r4': 5.08,
    'ENLCA-m256': 1.31,
    'ENLCA-m128': 0.66,
    'ENLCA-m64': 0.33,
    'ENLCA-m32': 0.16,
    'ENLCA-m16': 0.08,
    'ENLCA-m8': 0.04,
    'ENLCA-m4': 0.02,
    'ENLCA-m2': 0.01
}
NLSA_TABLE_5 = {'NLA': 16.0, 'conv3x3': 0.7, 'NLSA-r1': 0.9, 'NLSA-r2': 1.4, 'NLSA-r4': 2.4, 'NLSA-r8': 4.3}


class ExactAttentionCore(nn.Module):
    """softmax(Q K^T) V (Eq. 1 of both papers), the N x N way."""

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        return torch.einsum('bnm,bmc->bnc', torch.softmax(torch.einsum('bnc,bmc->bnm', query, key), -1), value)


class SparseAttentionCore(nn.Module):
    """NLSA's core: spherical hashing, bucketed chunk attention, round combination (Eq. 7-11)."""

    def __init__(self, embed_dim: int, num_positions: int, n_hashes: int, chunk_size: int = 144) -> None:
        super().__init__()
        self.chunk_size = chunk_size
        self.num_buckets = buckets = num_hash_buckets(num_positions, chunk_size)
        generator = torch.Generator().manual_seed(0)
        self.register_buffer('rotations', torch.randn(embed_dim, n_hashes, buckets // 2, generator=generator))

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        codes = spherical_hash(query, self.rotations)
        attended, logsumexp = bucketed_attention(query, key, value, codes, self.chunk_size, self.num_buckets)
        return (torch.softmax(logsumexp, dim=1).unsqueeze(-1) * attended).sum(1)


class RandomFeatureCore(nn.Module):
    """ENLCA's core: positive random features and the linear-order attention (Eq. 4-6)."""

    def __init__(self, embed_dim: int, num_random_features: int) -> None:
        super().__init__()
        self.register_buffer('projection', orthogonal_gaussian_matrix(num_random_features, embed_dim))

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        return random_feature_attention(query, key, value, self.projection)


def count_macs(module: nn.Module, inputs: Tuple[Tensor, ...]) -> int:
    """Multiply-accumulates of one forward, by mmengine's FlopAnalyzer (einsum, matmul and conv included)."""
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(module, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return analyzer.total()


def attention_core_gflops(qk_dim: int, value_dim: int = 64, size: int = 100) -> List[Dict[str, object]]:
    """GFLOPs (2 x MACs) of each attention core at size x size with the given widths, plus a 3x3 conv."""
    positions = size * size
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(1, positions, qk_dim, generator=generator)
    key = torch.nn.functional.normalize(torch.randn(1, positions, qk_dim, generator=generator), dim=-1)
    value = torch.randn(1, positions, value_dim, generator=generator)
    cores: List[Tuple[str, nn.Module]] = [('NLA', ExactAttentionCore())]
    cores += [(f'NLSA-r{r}', SparseAttentionCore(qk_dim, positions, r)) for r in (1, 2, 4, 8)]
    cores += [(f'ENLCA-m{m}', RandomFeatureCore(qk_dim, m)) for m in (256, 128, 64, 32, 16, 8, 4, 2)]
    rows = []
    with torch.no_grad():
        for name, core in cores:
            rows.append({
                'name': name,
                'qk_dim': qk_dim,
                'value_dim': value_dim,
                'gflops': 2 * count_macs(core, (query, key, value)) / 1e9
            })
        conv = nn.Conv2d(value_dim, value_dim, 3, 1, 1)
        rows.append({
            'name': 'conv3x3',
            'qk_dim': None,
            'value_dim': value_dim,
            'gflops': 2 * count_macs(conv, (torch.zeros(1, value_dim, size, size), )) / 1e9
        })
    return rows


def format_core_table(rows: List[Dict[str, object]], paper: Dict[str, float], paper_name: str) -> str:
    lines = [f'| core | queries/keys | values | GFLOPs (ours) | {paper_name} |', '| --- | --- | --- | --- | --- |']
    for row in rows:
        qk = '-' if row['qk_dim'] is None else f"{row['qk_dim']}-dim"
        reported = paper.get(str(row['name']))
        lines.append(f"| {row['name']} | {qk} | {row['value_dim']}-dim | {row['gflops']:.2f} | "
                     f"{'-' if reported is None else f'{reported:.2f}'} |")
    return '\n'.join(lines)


def network_complexity(net: nn.Module, input_shape: Tuple[int, int, int], max_depth: int = 2) -> str:
    """Parameters and GFLOPs (2 x MACs) of a network per module (to ``max_depth`` levels), as a markdown table."""
    from mmengine.analysis import FlopAnalyzer
    net = net.eval()
    with torch.no_grad():
        analyzer = FlopAnalyzer(net, (torch.zeros(1, *input_shape), ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        by_module = analyzer.by_module()
    lines = ['| module | parameters (M) | GFLOPs |', '| --- | --- | --- |']
    for name, module in net.named_modules():
        depth = 0 if name == '' else name.count('.') + 1
        if depth > max_depth:
            continue
        params = sum(p.numel() for p in module.parameters()) / 1e6
        lines.append(f"| {name or '(total)'} | {params:.3f} | {2 * by_module.get(name, 0) / 1e9:.3f} |")
    return '\n'.join(lines)
