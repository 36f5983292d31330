"""``python -m basicsr_nlattn.train`` that records net_g's gradients after each iteration, for
``tests/training/test_signals_and_changed_resumes.py``.

Launched by torchrun instead of ``-m basicsr_nlattn.train``, with the same flags. It trains through the real entry
point, keeps the model that BasicSR's ``build_model`` returns, and writes ``gradients_rank<RANK>.pth`` to
``$RECORD_DIR``: ``{iteration: net_g's gradients, flattened}`` as they are when ``optimize_parameters`` of that
iteration returns. Gradients that DDP all-reduced are the same on every rank; local ones differ with the data.
"""
import os
import sys
from os import path as osp
from typing import Any, Dict

import torch

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main


def main() -> int:
    from basicsr_nlattn.training import loop
    gradients: Dict[int, torch.Tensor] = {}
    build_model = loop.build_model

    def build_and_record(opt: Dict[str, Any]) -> Any:
        model = build_model(opt)
        optimize_parameters = model.optimize_parameters

        def optimize_and_record(current_iter: int) -> None:
            optimize_parameters(current_iter)
            gradients[current_iter] = torch.cat(
                [p.grad.detach().flatten().clone() for p in model.net_g.parameters() if p.grad is not None])

        model.optimize_parameters = optimize_and_record
        return model

    loop.build_model = build_and_record
    code = module_main('train')
    torch.save(gradients, osp.join(os.environ['RECORD_DIR'], f"gradients_rank{os.environ['RANK']}.pth"))
    return code


if __name__ == '__main__':
    sys.exit(main())
