"""Reading an option file the way BasicSR does, with one-line errors for a file that cannot be one."""
from os import path as osp
from typing import Any, Dict, Optional, Sequence

import yaml

from basicsr_nlattn.utils.errors import OptionError


def yaml_error_line(path: str, error: yaml.YAMLError) -> str:
    """``'<path>' line L, column C: <problem>`` (one line) for a YAML error of the file ``path``."""
    mark = getattr(error, 'problem_mark', None)
    problem = getattr(error, 'problem', None) or str(error)
    context = getattr(error, 'context', None)
    where = f' line {mark.line + 1}, column {mark.column + 1}' if mark is not None else ''
    what = f'{problem} ({context})' if context else problem
    return ' '.join(f"'{path}'{where}: {what}".split())


def load_option_file(option_file: str) -> Dict[str, Any]:
    """Read an option YAML file as BasicSR does; a missing, unreadable or non-mapping file raises OptionError."""
    from basicsr.utils.options import ordered_yaml  # here, not at the top: compat imports this before basicsr works
    if not osp.isfile(option_file):
        raise OptionError(f"-opt: option file '{option_file}' does not exist")
    try:
        with open(option_file, encoding='utf-8') as file:
            opt = yaml.load(file, Loader=ordered_yaml()[0])
    except yaml.YAMLError as error:
        raise OptionError(f'-opt: {yaml_error_line(option_file, error)}') from error
    if not isinstance(opt, dict):
        raise OptionError(f"-opt: option file '{option_file}' must hold a mapping of options, got {type(opt).__name__}")
    return opt


def apply_force_yml(opt: Dict[str, Any], overrides: Optional[Sequence[str]]) -> Dict[str, Any]:
    """BasicSR's ``--force_yml KEY=VALUE ...`` for commands outside its pipelines: nested keys joined by ``:``, the
    value read as YAML (``path:pretrain_network_g=model.pth``, ``network_g:n_hashes=8``); returns ``opt``."""
    for item in overrides or []:
        key, separator, value = item.partition('=')
        if not separator or not key:
            raise OptionError(f"--force_yml: '{item}' is not KEY=VALUE (nested keys joined by ':')")
        *parents, leaf = key.split(':')
        target = opt
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise OptionError(f"--force_yml: '{key}': '{name}' is not a mapping in the option file")
        target[leaf] = yaml.safe_load(value)
    return opt
