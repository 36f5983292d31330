"""``python -m basicsr_nlattn.train`` with a non-finite batch on one rank, for ``tests/training/test_faults.py``.

Launched by torchrun instead of ``-m basicsr_nlattn.train``, with the same flags. On the rank ``$NAN_RANK``, the
low-quality batch of each iteration listed in ``$NAN_ITERS`` (comma-separated, counted from 1 as the run's
iterations) is filled with NaN before the model sees it; every other batch is left alone.
"""
import os
import sys

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main
from basicsr_nlattn.models.contrastive_sr_model import ContrastiveSRModel


def main() -> int:
    if int(os.environ.get('RANK', '0')) == int(os.environ['NAN_RANK']):
        nan_iters = {int(value) for value in os.environ['NAN_ITERS'].split(',')}
        feed_data = ContrastiveSRModel.feed_data
        calls = [0]

        def feed_nan_data(model, data):
            calls[0] += 1
            if calls[0] in nan_iters:
                data = dict(data, lq=data['lq'].clone().fill_(float('nan')))
            feed_data(model, data)

        ContrastiveSRModel.feed_data = feed_nan_data
    return module_main('train')


if __name__ == '__main__':
    sys.exit(main())
