"""``basicsr train``: BasicSR's options and pre-flight check, then the training loop of
:mod:`basicsr_nlattn.training.loop` (BasicSR's loop with atomic checkpoints, exact resume, preemption and fault
handling). The pre-flight check of :mod:`basicsr_nlattn.tools.option_check` runs on the parsed options before
BasicSR makes or renames any folder. The stop signals are recorded from before the options are parsed until the run
ends (:mod:`basicsr_nlattn.training.preemption`)."""
import torch

from basicsr_nlattn import compat
from basicsr_nlattn.tools.option_check import preflight
from basicsr_nlattn.training.loop import run_training
from basicsr_nlattn.utils.distributed import release_process_group
from basicsr_nlattn.utils.stop_signals import StopRequest


def train_pipeline(root_path: str) -> None:
    """Train from the option file given on the command line (``-opt``); runs write under ``root_path``.

    Raises:
        OptionError: a bad option or an unreadable resume state, before anything is written.
        RunStopped: the run ended early (preempted, non-finite updates, unreadable data, a failed save).
    """
    import basicsr.utils.options
    with StopRequest(ignore_after_a_stop=True) as stop:
        try:
            with compat.after_parse_options(preflight):
                opt, args = basicsr.utils.options.parse_options(root_path, is_train=True)
            opt['root_path'] = root_path
            torch.backends.cudnn.benchmark = True
            run_training(opt, args.opt, stop)
        finally:
            release_process_group()  # while a signal is still recorded, not fatal
