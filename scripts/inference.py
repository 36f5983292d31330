"""Super-resolve one image or a folder of images with a trained network: ``basicsr infer`` under this script's name.

    python scripts/inference.py -opt options/test_ENLCN_x4.yml --input photos/ --output results/photos_x4
    python scripts/inference.py -opt FILE --input img.png --output out/ --weights net_g_latest.pth --tile 128 32
    python scripts/inference.py -opt FILE --input photos/ --output out/ --onnx model.onnx   # from basicsr export

``basicsr infer --help`` and ``docs/export.md`` describe the flags.
"""
import sys

from basicsr_nlattn.cli import script_main

if __name__ == '__main__':
    sys.exit(script_main('infer', 'inference'))
