"""``basicsr test``: BasicSR's test pipeline (same options, loaders, model, validation, logs, saved images), with
the pre-flight check of :mod:`basicsr_nlattn.tools.option_check` first, ending with one markdown table of every
tested set beside the paper's published numbers (:mod:`basicsr_nlattn.tools.paper_results`), logged and written to
``<results_root>/benchmark.md``.
"""
import logging
from os import path as osp
from typing import List

import torch

from basicsr_nlattn.tools.network_loading import checkpoint_param_key
from basicsr_nlattn.tools.option_check import preflight
from basicsr_nlattn.tools.paper_results import DatasetResult, comparison_table
from basicsr_nlattn.utils.atomic_write import write_text


def use_loader_param_key(opt: dict) -> None:
    """Set ``path.param_key_g``, when the option file leaves it unset, to the entry of ``path.pretrain_network_g``
    that :func:`~basicsr_nlattn.tools.network_loading.load_network` reads (``params_ema``, else ``params``, else the
    file's own mapping), so that BasicSR's model tests the weights every other command reads."""
    path_opt = opt['path']
    if path_opt.get('pretrain_network_g') and 'param_key_g' not in path_opt:
        path_opt['param_key_g'] = checkpoint_param_key(path_opt['pretrain_network_g'])


def test_pipeline(root_path: str) -> List[DatasetResult]:
    """Run the test sets of the option file given on the command line (``-opt``) and return their mean metrics."""
    import basicsr.utils.options
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    from basicsr.utils import get_env_info, get_root_logger, get_time_str, make_exp_dirs

    opt, _ = basicsr.utils.options.parse_options(root_path, is_train=False)
    preflight(opt)
    use_loader_param_key(opt)
    torch.backends.cudnn.benchmark = True
    make_exp_dirs(opt)
    log_file = osp.join(opt['path']['log'], f"test_{opt['name']}_{get_time_str()}.log")
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=log_file)
    logger.info(get_env_info())
    logger.info(basicsr.utils.options.dict2str(opt))

    loaders = []
    for _, dataset_opt in sorted(opt['datasets'].items()):
        dataset = build_dataset(dataset_opt)
        loaders.append(
            build_dataloader(
                dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'], sampler=None, seed=opt['manual_seed']))
        logger.info(f"Number of test images in {dataset_opt['name']}: {len(dataset)}")
    model = build_model(opt)

    results = []
    for loader in loaders:
        name = loader.dataset.opt['name']
        logger.info(f'Testing {name}...')
        model.validation(loader, current_iter=opt['name'], tb_logger=None, save_img=opt['val']['save_img'])
        results.append(DatasetResult(name, len(loader.dataset), dict(getattr(model, 'metric_results', None) or {})))
    if opt['rank'] == 0 and opt['val'].get('metrics'):
        table = comparison_table(opt, results)
        table_file = osp.join(opt['path']['results_root'], 'benchmark.md')
        write_text(table_file, table)
        logger.info(f'Results against the paper (also in {table_file}):\n{table}')
    return results
