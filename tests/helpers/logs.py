"""Reading what BasicSR wrote: an experiment's log and its validation PSNRs."""
import os
import re
from os import path as osp
from typing import List


def experiment_log(experiments_root: str, phase: str = 'train') -> str:
    """Text of the (newest) BasicSR log file of an experiment folder."""
    logs = sorted(name for name in os.listdir(experiments_root) if name.startswith(phase) and name.endswith('.log'))
    assert logs, f'no {phase} log in {experiments_root}: {os.listdir(experiments_root)}'
    with open(osp.join(experiments_root, logs[-1]), encoding='utf-8') as file:
        return file.read()


def validation_psnrs(log_text: str) -> List[float]:
    """The ``# psnr:`` values that BasicSR's validation logs, in order."""
    return [float(value) for value in re.findall(r'# psnr: ([0-9.]+)', log_text)]
