"""``basicsr attention``: where chosen query pixels attend, in every ENLCA and NLSA block of a network.

The papers argue with such pictures: ENLCA Fig. 1 and 7 (one query's attention under exact non-local attention and
under ENLCA, with and without amplification) and NLSA Fig. 1 (the buckets a query falls in). Here they are drawn for
a real image through a real network (random weights, or ``path.pretrain_network_g``, as
:func:`~basicsr_nlattn.tools.network_loading.load_network` reads them):

* ENLCA: the block's own kernel weights of the query, phi(q_i)^T phi(k_n) / sum_n phi(q_i)^T phi(k_n) (Eq. 5-6),
  beside the exact softmax attention of the same embeddings, softmax_n(k cos(q_i, k_n)), which ENLCA approximates,
  and beside the same without amplification (k = 1);
* NLSA: for each hashing round, the softmax weights over the positions of the chunks the query attends to (its own
  chunk and the two neighbours in bucket order, Eq. 8-10); positions outside them get nothing.

Maps live on the block's input grid and are drawn over the input image, the query marked.
"""
import math
from os import path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.nlsa import NLSA, chunked_order
from basicsr_nlattn.archs.attention.random_features import softmax_kernel_features
from basicsr_nlattn.tools.network_loading import load_network
from basicsr_nlattn.utils.atomic_write import save_figure
from basicsr_nlattn.utils.errors import OptionError


class QueryMap(NamedTuple):
    kind: str  # what the map shows, for the panel title
    weights: Tensor  # (h, w) on the block's input grid, summing to 1


class BlockMaps(NamedTuple):
    block: str  # e.g. 'body.9 (ENLCA)'
    point: Tuple[int, int]  # the query in input image pixels (y, x)
    maps: List[QueryMap]


def attention_blocks(net: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Every ENLCA and NLSA block of ``net`` (also inside CCLN blocks and WithAttention), by module name."""
    return [(name, module) for name, module in net.named_modules() if isinstance(module, (ENLCA, NLSA))]


def block_inputs(net: nn.Module, lq: Tensor) -> Dict[str, Tensor]:
    """The input of every attention block in one eval forward of ``lq`` (b = 1), by module name."""
    inputs: Dict[str, Tensor] = {}
    handles = [
        module.register_forward_pre_hook(lambda _module, args, name=name: inputs.setdefault(name, args[0].detach()))
        for name, module in attention_blocks(net)
    ]
    try:
        with torch.no_grad():
            net(lq)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


@torch.no_grad()
def enlca_query_maps(block: ENLCA, x: Tensor, index: int) -> List[QueryMap]:
    """ENLCA's weights for query ``index`` of ``x`` (1, c, h, w), beside exact softmax attention with and
    without amplification."""
    _, _, h, w = x.shape
    query, key, _ = block.embed(x)  # unit vectors, (1, hw, c')
    scale = math.sqrt(block.amplification)
    phi_query = softmax_kernel_features(
        query[:, index:index + 1] * scale, block.random_features, is_query=True, eps=block.eps)
    phi_key = softmax_kernel_features(key * scale, block.random_features, is_query=False, eps=block.eps)
    kernel = torch.einsum('bqm,bnm->bn', phi_query, phi_key)[0]  # (hw,), the scale of each side cancels below
    cosine = key[0] @ query[0, index]
    num_rows = block.random_features.shape[0]
    return [
        QueryMap(f'ENLCA (m = {num_rows}, k = {block.amplification:g})', (kernel / kernel.sum()).view(h, w)),
        QueryMap(f'exact softmax, k = {block.amplification:g}',
                 torch.softmax(block.amplification * cosine, 0).view(h, w)),
        QueryMap('exact softmax, k = 1 (no amplification)',
                 torch.softmax(cosine, 0).view(h, w)),
    ]


@torch.no_grad()
def nlsa_query_maps(block: NLSA, x: Tensor, index: int) -> List[QueryMap]:
    """NLSA's weights for query ``index`` of ``x`` (1, c, h, w) in each hashing round: softmax over the positions
    of its own chunk and the neighbouring ones (a position there twice counts twice), zero elsewhere."""
    _, _, h, w = x.shape
    query, key, _, codes, num_buckets = block.embed_and_hash(x)
    order, chunk = chunked_order(codes, num_buckets, block.chunk_size)  # (1, r, k * s)
    num_chunks = order.shape[-1] // chunk
    maps = []
    for round_index in range(codes.shape[1]):
        sequence = order[0, round_index]
        rank = int((sequence[:h * w] == index).nonzero()[0])
        own = rank // chunk
        chunk_ids = [own] if num_chunks == 1 else [own, (own - 1) % num_chunks, (own + 1) % num_chunks]
        members = torch.cat([sequence[c * chunk:(c + 1) * chunk] for c in chunk_ids])
        weights = torch.softmax(key[0, members] @ query[0, index], 0)
        grid = torch.zeros(h * w, dtype=weights.dtype, device=weights.device).index_add_(0, members, weights)
        maps.append(QueryMap(f'NLSA round {round_index + 1} of {codes.shape[1]}', grid.view(h, w)))
    return maps


def query_maps(block: nn.Module, x: Tensor, index: int) -> List[QueryMap]:
    """The maps of one block for query ``index`` (a flat position of the block's input grid)."""
    if isinstance(block, ENLCA):
        return enlca_query_maps(block, x, index)
    return nlsa_query_maps(block, x, index)


def attention_maps(net: nn.Module, lq: Tensor, points: Sequence[Tuple[int, int]]) -> List[BlockMaps]:
    """Maps of every attention block of ``net`` (eval) for each query point (y, x) of ``lq`` (1, c, H, W).

    A point is mapped to the block's grid by scaling (our networks keep the LR grid: the same pixel).
    """
    _, _, height, width = lq.shape
    for y, x in points:
        if not (0 <= y < height and 0 <= x < width):
            raise OptionError(f'--point {y} {x}: outside the {height}x{width} input image (y in [0, {height - 1}], '
                              f'x in [0, {width - 1}])')
    blocks = attention_blocks(net)
    if not blocks:
        raise OptionError(f'network_g: {type(net).__name__} has no ENLCA or NLSA block to draw')
    inputs = block_inputs(net, lq)
    result = []
    for name, block in blocks:
        if name not in inputs:
            continue  # a block the forward does not call
        features = inputs[name]
        grid_h, grid_w = features.shape[-2:]
        for y, x in points:
            row, col = y * grid_h // height, x * grid_w // width
            label = f'{name} ({type(block).__name__})'
            result.append(BlockMaps(label, (y, x), query_maps(block, features, row * grid_w + col)))
    return result


def attention_figure(image: Tensor, rows: List[BlockMaps]):
    """A matplotlib figure (Agg): one row per block and point, one column per map, each map over the image.

    Args:
        image (Tensor): (3, H, W) RGB in [0, 1], the network's input.
        rows (list[BlockMaps]): from :func:`attention_maps`.

    Returns:
        matplotlib.figure.Figure: with one image axes per map (other axes switched off).
    """
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    height, width = image.shape[-2:]
    columns = max(len(row.maps) for row in rows)
    panel = 2.6
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(panel * columns * max(width / height, 0.6), panel * len(rows)), squeeze=False)
    gray = image.mean(0).cpu().numpy()
    for row_axes, row in zip(axes, rows):
        for ax in row_axes[len(row.maps):]:
            ax.axis('off')
        for ax, query_map in zip(row_axes, row.maps):
            heat = F.interpolate(query_map.weights[None, None].float(), size=(height, width), mode='nearest')[0, 0]
            ax.imshow(gray, cmap='gray', vmin=0, vmax=1)
            ax.imshow((heat / heat.max().clamp_min(1e-12)).cpu().numpy(), cmap='inferno', alpha=0.6, vmin=0, vmax=1)
            ax.plot([row.point[1]], [row.point[0]], marker='+', color='cyan', markersize=10, markeredgewidth=2)
            ax.set_title(f'{row.block}\n{query_map.kind}', fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.tight_layout()
    return figure


def read_rgb(path: str) -> Tensor:
    """(1, 3, h, w) RGB in [0, 1] of an image file; an unreadable file is an OptionError naming it."""
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR) if osp.isfile(path) else None
    if image is None:
        raise OptionError(f"--input: cannot read an image from '{path}'")
    return torch.from_numpy(image[:, :, ::-1].copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)


def draw_attention(option_file: str,
                   image_file: str,
                   points: Sequence[Tuple[int, int]],
                   output: str,
                   force_yml: Optional[Sequence[str]] = None) -> int:
    """``basicsr attention``: build ``network_g`` of ``option_file`` (with the ``--force_yml`` overrides), draw its
    maps for ``points`` of the image, write ``output``; returns the number of rows (block x point)."""
    from basicsr_nlattn.utils.option_file import apply_force_yml, load_option_file

    net = load_network(apply_force_yml(load_option_file(option_file), force_yml))
    lq = read_rgb(image_file)
    try:
        rows = attention_maps(net, lq, points)
    except RuntimeError as error:  # a shape the network cannot take: the first line of torch's message
        first_line = str(error).strip().splitlines()[0]
        raise OptionError(f'--input: network_g cannot take the {lq.shape[2]}x{lq.shape[3]} image '
                          f"'{image_file}': {first_line}") from error
    save_figure(attention_figure(lq[0], rows), output)
    return len(rows)
