"""``python -m basicsr_nlattn.train`` that counts DDP's gradient all-reduces per iteration, for
``tests/training/test_signals_and_changed_resumes.py``.

Launched by torchrun instead of ``-m basicsr_nlattn.train``, with the same flags. It trains through the real entry
point, registers a communication hook on the DDP-wrapped ``net_g`` that BasicSR's ``build_model`` returns (DDP
calls the hook for each gradient bucket it all-reduces, and not at all inside ``no_sync``), runs BasicSR's own
all-reduce in it, and writes ``allreduce_rank<RANK>.json`` to ``$RECORD_DIR``: ``{iteration: hook calls}`` for
every iteration the run trained.
"""
import json
import os
import sys
from os import path as osp
from typing import Any, Dict

import torch
import torch.distributed as dist

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main


def main() -> int:
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
    from torch.nn.parallel import DistributedDataParallel

    from basicsr_nlattn.training import loop
    calls: Dict[int, int] = {}
    current = [0]
    build_model = loop.build_model

    def build_and_count(opt: Dict[str, Any]) -> Any:
        model = build_model(opt)
        assert isinstance(model.net_g, DistributedDataParallel), type(model.net_g)
        optimize_parameters = model.optimize_parameters

        def optimize_and_note(current_iter: int) -> None:
            current[0] = current_iter
            calls.setdefault(current_iter, 0)
            optimize_parameters(current_iter)

        def counting_allreduce(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
            # DDP checks these annotations
            calls[current[0]] += 1
            return allreduce_hook(state, bucket)

        model.optimize_parameters = optimize_and_note
        model.net_g.register_comm_hook(None, counting_allreduce)
        return model

    loop.build_model = build_and_count
    code = module_main('train')
    with open(osp.join(os.environ['RECORD_DIR'], f"allreduce_rank{os.environ['RANK']}.json"), 'w') as file:
        json.dump(calls, file)
    return code


if __name__ == '__main__':
    sys.exit(main())
