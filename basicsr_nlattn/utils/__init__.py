"""Helpers shared by the CLI, the models and the scripts."""
from basicsr_nlattn.utils.option_check import OptionError, check_options, load_option_file

__all__ = ['OptionError', 'check_options', 'load_option_file']
