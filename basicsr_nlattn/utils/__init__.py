"""The bottom layer: what every layer of the package may use, importing nothing else of it.

``errors`` (OptionError, the one type for bad options; RunStopped, a run ended with a one-line reason),
``option_file`` (reading an option file as BasicSR does), ``image_files`` (bicubic LR images and PNGs written whole,
for the data scripts), ``checkpoint_files`` (atomic saves, and the network weights of a checkpoint for export and
inference), and for long runs ``training_state`` (the models' atomic checkpoints and exact-resume state, installed
on BasicSR's BaseModel by ``compat``), ``rng_states``, ``stop_signals`` and ``distributed`` (agreements between
ranks).
"""
from basicsr_nlattn.utils.errors import OptionError, RunStopped, as_option_errors
from basicsr_nlattn.utils.image_files import bicubic_downscale, write_png
from basicsr_nlattn.utils.option_file import load_option_file

__all__ = ['OptionError', 'RunStopped', 'as_option_errors', 'bicubic_downscale', 'load_option_file', 'write_png']
