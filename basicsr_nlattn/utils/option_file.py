"""Reading an option file the way BasicSR does, with one-line errors for a file that cannot be one."""
from os import path as osp
from typing import Any, Dict

import yaml

from basicsr_nlattn.utils.errors import OptionError


def load_option_file(option_file: str) -> Dict[str, Any]:
    """Read an option YAML file as BasicSR does; a missing, unreadable or non-mapping file raises OptionError."""
    from basicsr.utils.options import ordered_yaml  # here, not at the top: compat imports this before basicsr works
    if not osp.isfile(option_file):
        raise OptionError(f"-opt: option file '{option_file}' does not exist")
    try:
        with open(option_file, encoding='utf-8') as file:
            opt = yaml.load(file, Loader=ordered_yaml()[0])
    except yaml.YAMLError as error:
        raise OptionError(f"-opt: option file '{option_file}' is not valid YAML: {error}") from error
    if not isinstance(opt, dict):
        raise OptionError(f"-opt: option file '{option_file}' must hold a mapping of options, got {type(opt).__name__}")
    return opt
