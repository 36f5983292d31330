"""The bottom layer: what every layer of the package may use, importing nothing else of it.

``errors`` (OptionError, the one type for bad options), ``option_file`` (reading an option file as BasicSR does)
and ``image_files`` (bicubic LR images and PNGs written whole, for the data scripts).
"""
from basicsr_nlattn.utils.errors import OptionError, as_option_errors
from basicsr_nlattn.utils.image_files import bicubic_downscale, write_png
from basicsr_nlattn.utils.option_file import load_option_file

__all__ = ['OptionError', 'as_option_errors', 'bicubic_downscale', 'load_option_file', 'write_png']
