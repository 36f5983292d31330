"""The papers' published PSNR/SSIM (Y channel, border of ``scale`` pixels cropped, no self-ensemble), and the
markdown table that ``basicsr test`` ends with: every tested set beside the paper's numbers, with the difference.
"""
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from basicsr_nlattn.utils import validators

BENCHMARKS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
DATASET_ALIASES = {'BSD100': 'B100', 'BSDS100': 'B100'}
ENLCA_TABLE_1 = 'ENLCA (Xia et al., AAAI 2022), Table 1'
NLSA_TABLE_1 = 'NLSA (Mei et al., CVPR 2021), Table 1'
CCLNN_TABLE_5 = 'CCLNN (IEICE 2024), Table 5'


class PaperResults(NamedTuple):
    source: str
    results: Dict[str, Tuple[Optional[float], Optional[float]]]  # dataset -> (PSNR, SSIM); None: not published


def _row(source: str, *values: float) -> PaperResults:
    """Ten numbers, PSNR and SSIM for each of BENCHMARKS in order, as the tables print them."""
    return PaperResults(source, {name: (values[2 * i], values[2 * i + 1]) for i, name in enumerate(BENCHMARKS)})


# (network, scale) -> published results. The ENLCA paper reports x2 and x4 only (no ENLCN x3 numbers exist).
PUBLISHED: Dict[Tuple[str, int], PaperResults] = {
    ('ENLCN', 2): _row(ENLCA_TABLE_1, 38.37, 0.9618, 34.17, 0.9229, 32.49, 0.9032, 33.56, 0.9398, 39.64, 0.9791),
    ('ENLCN', 4): _row(ENLCA_TABLE_1, 32.67, 0.9004, 28.94, 0.7892, 27.82, 0.7452, 27.12, 0.8141, 31.33, 0.9188),
    ('NLSN', 2): _row(NLSA_TABLE_1, 38.34, 0.9618, 34.08, 0.9231, 32.43, 0.9027, 33.42, 0.9394, 39.59, 0.9789),
    ('NLSN', 3): _row(NLSA_TABLE_1, 34.85, 0.9306, 30.70, 0.8485, 29.34, 0.8117, 29.25, 0.8726, 34.57, 0.9508),
    ('NLSN', 4): _row(NLSA_TABLE_1, 32.59, 0.9000, 28.87, 0.7891, 27.78, 0.7444, 26.96, 0.8109, 31.27, 0.9184),
    ('CCLNN', 2): _row(CCLNN_TABLE_5, 38.35, 0.9618, 34.15, 0.9230, 32.44, 0.9030, 33.46, 0.9398, 39.48, 0.9785),
    ('CCLNN', 3): _row(CCLNN_TABLE_5, 34.88, 0.9308, 30.71, 0.8485, 29.35, 0.8118, 29.18, 0.8723, 34.46, 0.9507),
    ('CCLNN', 4): _row(CCLNN_TABLE_5, 32.64, 0.9003, 28.91, 0.7892, 27.79, 0.7439, 26.93, 0.8104, 31.36, 0.9191),
    ('CCLNN-L', 2): PaperResults('CCLNN (IEICE 2024), Tables 1-2 (Set5 PSNR only)', {'Set5': (38.19, None)}),
}
PAPER_METRICS = {'calculate_psnr': 0, 'calculate_ssim': 1}  # metric type -> index in the (PSNR, SSIM) pair


class DatasetResult(NamedTuple):
    name: str
    num_images: int
    metrics: Dict[str, float]  # metric name (key of val.metrics) -> mean over the images


def paper_row_name(opt: Dict[str, Any]) -> Optional[str]:
    """``val.compare_to_paper``: a network name of the papers' tables, ``false`` for none; default network_g.type."""
    val_opt = opt.get('val') or {}
    if 'compare_to_paper' not in val_opt:
        return (opt.get('network_g') or {}).get('type')
    name = val_opt['compare_to_paper']
    networks = sorted({network for network, _ in PUBLISHED})
    if name is False or name is None:
        return None
    return validators.choice('val.compare_to_paper', name, networks, ' or false')


def _signed(value: float, digits: int) -> str:
    return f'{value:+.{digits}f}'


def comparison_table(opt: Dict[str, Any], results: List[DatasetResult]) -> str:
    """Markdown: one row per tested set; per metric our mean, and for PSNR/SSIM the paper's number and ours minus
    it. Sets or metrics the paper does not report show ``-``."""
    scale = opt['scale']
    metrics_opt = (opt.get('val') or {}).get('metrics') or {}
    network = paper_row_name(opt)
    paper = PUBLISHED.get((network, scale)) if network else None
    if paper is None:
        known = ', '.join(f'{name} x{s}' for name, s in sorted(PUBLISHED))
        title = f"{opt['name']}: no published numbers for {network} x{scale} (known: {known})" if network else \
            opt['name']
    else:
        title = f"{opt['name']}: {network} x{scale} against {paper.source}"
    lines = [f'### {title}', '']
    notes = []
    if (opt.get('val') or {}).get('self_ensemble'):
        notes.append('x8 self-ensemble on (the papers\' numbers are without it)')
    for name, metric_opt in metrics_opt.items():
        if metric_opt.get('type') in PAPER_METRICS and (metric_opt.get('crop_border') != scale
                                                        or not metric_opt.get('test_y_channel')):
            notes.append(f'val.metrics.{name} is not the papers\' protocol (Y channel, crop_border: {scale})')
    if notes:
        lines += ['Note: ' + '; '.join(notes) + '.', '']
    header, rule = ['Dataset', 'Images'], ['---', '---:']
    for name, metric_opt in metrics_opt.items():
        with_paper = paper is not None and metric_opt.get('type') in PAPER_METRICS
        header += [name.upper()] + (['Paper', 'Diff'] if with_paper else [])
        rule += ['---:'] * (3 if with_paper else 1)
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '|'.join(rule) + '|']
    for result in results:
        cells = [result.name, str(result.num_images)]
        published = paper.results.get(DATASET_ALIASES.get(result.name, result.name)) if paper else None
        for name, metric_opt in metrics_opt.items():
            digits = 4 if metric_opt.get('type') == 'calculate_ssim' else 2
            ours = result.metrics.get(name)
            cells.append('-' if ours is None else f'{ours:.{digits}f}')
            if paper is None or metric_opt.get('type') not in PAPER_METRICS:
                continue
            reference = published[PAPER_METRICS[metric_opt['type']]] if published else None
            cells.append('-' if reference is None else f'{reference:.{digits}f}')
            cells.append('-' if reference is None or ours is None else _signed(ours - reference, digits))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
