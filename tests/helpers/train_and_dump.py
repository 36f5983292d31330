"""``python -m basicsr_nlattn.train`` plus a dump of every rank's final network, for ``tests/test_distributed.py``.

Launched by torchrun instead of ``-m basicsr_nlattn.train``, with the same flags (``-opt FILE --launcher pytorch``).
It trains through the real entry point (``basicsr_nlattn.cli.module_main('train')``, which runs the training loop
of :mod:`basicsr_nlattn.training.loop` from the working directory), keeps a reference to the model that the loop's
``build_model`` (BasicSR's) builds, and writes to ``$DUMP_DIR``:

- ``rank<RANK>.pth``: the bare ``net_g``'s final state dict (parameters and buffers). Only rank 0 saves BasicSR
  checkpoints; this shows what every rank holds.
- ``rank<RANK>_redraws.pth`` (models with ``redraw_random_features``, i.e. ContrastiveSRModel): ``{iteration:
  {buffer name: tensor}}``, every ``random_features`` buffer right after the model's scheduled redraw, before the
  DDP forward, whose buffer broadcast from rank 0 would hide a difference between the ranks.
"""
import os
import sys
from os import path as osp

import torch

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main


def _random_features(net):
    return {
        name: buffer.detach().cpu().clone()
        for name, buffer in net.named_buffers() if name.endswith('random_features')
    }


def main() -> int:
    from basicsr_nlattn.training import loop
    dump_dir = os.environ['DUMP_DIR']
    built, redraws = [], {}
    build_model = loop.build_model

    def build_and_keep(opt):
        model = build_model(opt)
        built.append(model)
        redraw = getattr(model, 'redraw_random_features', None)
        if redraw is not None:

            def redraw_and_record(current_iter):
                redraw(current_iter)
                redraws[current_iter] = _random_features(model.get_bare_model(model.net_g))

            model.redraw_random_features = redraw_and_record
        return model

    loop.build_model = build_and_keep
    code = module_main('train')
    if code != 0:
        return code
    assert len(built) == 1, f'expected one model to be built, got {len(built)}'
    model = built[0]
    rank = int(os.environ.get('RANK', '0'))
    assert model.opt['rank'] == rank, (model.opt['rank'], rank)
    state = model.get_bare_model(model.net_g).state_dict()
    os.makedirs(dump_dir, exist_ok=True)
    weights = {name: tensor.detach().cpu().clone() for name, tensor in state.items()}
    torch.save(weights, osp.join(dump_dir, f'rank{rank}.pth'))
    if any(redraws.values()):
        torch.save(redraws, osp.join(dump_dir, f'rank{rank}_redraws.pth'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
