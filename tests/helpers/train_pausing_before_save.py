"""``python -m basicsr_nlattn.train`` that pauses before each save of the training loop, for
``tests/training/test_signals_and_changed_resumes.py``.

Launched instead of ``basicsr train``, with the same flags. Before ``TrainingRun.save`` writes anything, it writes
the iteration into the file ``$PAUSE_MARKER`` and waits (up to ``PAUSE_SECONDS``, then saves as usual), so that a
test can send a signal while the run is known to be about to save.
"""
import os
import sys
import time
from typing import Any

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main
from basicsr_nlattn.training.loop import TrainingRun

PAUSE_SECONDS = 300


def main() -> int:
    marker = os.environ['PAUSE_MARKER']
    save = TrainingRun.save

    def pause_then_save(run: TrainingRun, epoch: int, current_iter: int, *args: Any, **kwargs: Any) -> None:
        with open(marker, 'w', encoding='utf-8') as file:
            file.write(str(current_iter))
        deadline = time.monotonic() + PAUSE_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
        save(run, epoch, current_iter, *args, **kwargs)

    TrainingRun.save = pause_then_save
    return module_main('train')


if __name__ == '__main__':
    sys.exit(main())
