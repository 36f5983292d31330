"""Print the demo's validation PSNR/SSIM (Y channel) next to bicubic upsampling of the same LR images, and draw
``<experiments_root>/visual.png``: for each validation image, crops of LR (nearest), bicubic, ours and HR.

Reads the option file, loads ``<experiments_root>/models/net_g_latest.pth``, super-resolves every image of the
``val`` dataset and upsamples it with BasicSR's MATLAB-like bicubic ``imresize``, and scores both with BasicSR's
``calculate_psnr`` / ``calculate_ssim`` (``crop_border`` = scale, Y channel), as the option's validation does.

Usage: ``python scripts/demo_report.py -opt options/demo/train_demo_x4.yml``
"""
import argparse
import sys
from os import path as osp
from typing import Dict, List, Tuple

import torch


def evaluate(option_file: str) -> Tuple[List[Dict[str, float]], list, str]:
    """Per-image and mean PSNR/SSIM of bicubic and of the trained network on the option's val set, the images for
    the visual comparison, and the experiment root."""
    # isort: off
    import basicsr_nlattn  # noqa: F401  (compat first: basicsr does not import on today's torchvision without it)
    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize
    from basicsr_nlattn.tools.visual_comparison import Comparison
    from basicsr_nlattn.utils import OptionError, load_option_file
    # isort: on

    opt = load_option_file(option_file)
    scale = opt['scale']
    experiments_root = (opt.get('path') or {}).get('experiments_root') or osp.join('experiments', opt['name'])
    weights = osp.join(experiments_root, 'models', 'net_g_latest.pth')
    if not osp.isfile(weights):
        raise OptionError(f"path.experiments_root: no trained network at '{weights}'; train first: "
                          f'basicsr train -opt {option_file}')
    net = build_network(opt['network_g'])
    net.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True)['params'], strict=True)
    net.eval()

    dataset_opt = dict(opt['datasets']['val'], phase='val', scale=scale)
    rows, comparisons = [], []
    for item in build_dataset(dataset_opt):
        lq, gt = item['lq'], tensor2img(item['gt'])
        with torch.no_grad():
            outputs = {'bicubic': imresize(lq, scale), 'network': net(lq[None])[0]}
        row = {'image': osp.splitext(osp.basename(item['gt_path']))[0]}
        images = {}
        for method, output in outputs.items():
            images[method] = tensor2img(output)
            row[f'{method}_psnr'] = calculate_psnr(images[method], gt, crop_border=scale, test_y_channel=True)
            row[f'{method}_ssim'] = calculate_ssim(images[method], gt, crop_border=scale, test_y_channel=True)
        rows.append(row)
        rgb = {name: image[:, :, ::-1] for name, image in (('lr', tensor2img(lq)), ('hr', gt), *images.items())}
        comparisons.append(
            Comparison(row['image'], rgb['lr'], rgb['bicubic'], rgb['network'], rgb['hr'], row['bicubic_psnr'],
                       row['network_psnr']))
    mean = {'image': 'mean'}
    for key in rows[0]:
        if key != 'image':
            mean[key] = sum(row[key] for row in rows) / len(rows)
    return rows + [mean], comparisons, experiments_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-opt', required=True, help='the option file the demo trained with')
    args = parser.parse_args()
    from basicsr_nlattn.utils import OptionError
    try:
        rows, comparisons, experiments_root = evaluate(args.opt)
    except OptionError as error:
        sys.stderr.write(f'demo_report: error: {error}\n')
        return 2
    print('| image | bicubic PSNR / SSIM | network PSNR / SSIM | gain (dB) |')
    print('| --- | --- | --- | --- |')
    for row in rows:
        print(f"| {row['image']} | {row['bicubic_psnr']:.2f} / {row['bicubic_ssim']:.4f} | "
              f"{row['network_psnr']:.2f} / {row['network_ssim']:.4f} | "
              f"{row['network_psnr'] - row['bicubic_psnr']:+.2f} |")
    from basicsr_nlattn.tools.visual_comparison import comparison_figure
    visual = osp.join(experiments_root, 'visual.png')
    comparison_figure(comparisons, network_label='ENLCN').savefig(visual, dpi=64)
    print(f'\nVisual comparison (crops of LR, bicubic, ENLCN, HR): {visual}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
