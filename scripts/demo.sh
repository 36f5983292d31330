#!/usr/bin/env bash
# The CPU demo end to end: install, make the demo data from scikit-image's photographs, train the x4 demo option
# (a few minutes on two cores), then print its validation PSNR/SSIM next to bicubic upsampling.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
. scripts/setup_env.sh
option=options/demo/train_demo_x4.yml
python scripts/make_demo_data.py --output datasets/demo --scales 2 3 4
basicsr train -opt "$option"
echo
echo "Validation (Y channel, border of 4 pixels cropped):"
python scripts/demo_report.py -opt "$option"
echo
echo "Results: experiments/demo_ENLCN_x4 (train log, option copy, models/net_g_latest.pth, training_states/, visual.png)"
echo "Curves: basicsr plot experiments/demo_ENLCN_x4   Attention maps: see the README, section Pictures"
