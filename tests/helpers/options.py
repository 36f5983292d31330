"""Option files for the tests: the demo option made tiny, written under a test folder."""
import copy
from os import path as osp
from typing import Any, Dict

import yaml
from helpers.runs import REPO_ROOT

DEMO_OPTION = osp.join(REPO_ROOT, 'options', 'demo', 'train_demo_x4.yml')


def load_yaml(path: str) -> Dict[str, Any]:
    with open(path, encoding='utf-8') as file:
        return yaml.safe_load(file)


def tiny_demo_option(name: str, total_iter: int = 40, **overrides: Any) -> Dict[str, Any]:
    """The demo option (ENLCN x4) made tiny (16 features, 2 blocks) with small batches: seconds on two CPU cores.

    ``overrides`` are ``section__key=value`` pairs, e.g. ``logger__save_checkpoint_freq=20``.
    """
    opt = copy.deepcopy(load_yaml(DEMO_OPTION))
    opt['name'] = name
    opt['network_g'].update(num_feat=16, num_block=2)
    opt['datasets']['train'].update(batch_size_per_gpu=4, gt_size=64, dataset_enlarge_ratio=200)
    opt['train']['total_iter'] = total_iter
    opt['train']['scheduler']['milestones'] = [total_iter * 10]
    opt['val']['val_freq'] = total_iter
    opt['logger'].update(print_freq=10, save_checkpoint_freq=total_iter)
    for key, value in overrides.items():
        section, option = key.split('__')
        opt[section][option] = value
    return opt


def write_option(opt: Dict[str, Any], folder: str, filename: str = 'option.yml') -> str:
    path = osp.join(folder, filename)
    with open(path, 'w', encoding='utf-8') as file:
        yaml.safe_dump(opt, file, sort_keys=False)
    return path
