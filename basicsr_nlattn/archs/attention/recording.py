"""The contrastive-feature protocol: blocks keep, from their last training forward, what their loss needs.

Networks stay plain ``forward(x) -> sr``. A block whose paper defines a contrastive term subclasses
:class:`RecordsContrastiveFeatures` and calls ``self._record(...)`` in ``forward``; a loss reads ``block.recorded``
of every block of its type, and the training model clears the records after each step. Nothing is recorded in eval
mode or while ``recording`` is False (the papers' warm-up).

Records belong to the block that made them: a copy (``copy.deepcopy``, an EMA made by deepcopy such as timm's
``ModelEmaV2`` or ``torch.optim.swa_utils.AveragedModel``, a pickle) starts with none and records its own. They do
not come back from ``torch.nn.DataParallel`` replicas, which is why ``ContrastiveSRModel`` refuses that path.
"""
from typing import Any, Dict, Iterator, Optional, Tuple

from torch import Tensor, nn


class RecordsContrastiveFeatures(nn.Module):
    """Mixin of blocks that record tensors for a contrastive loss (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = True
        self.recorded: Optional[Tuple[Tensor, ...]] = None

    def _record(self, *tensors: Tensor) -> None:
        if self.training and self.recording:
            self.recorded = tensors

    def clear_recorded(self) -> None:
        self.recorded = None

    def __getstate__(self) -> Dict[str, Any]:
        """The module's state without the records, for ``copy.deepcopy`` and pickling: a copy must not share the
        original's tensors, and a non-leaf tensor of the last forward cannot be deep-copied at all."""
        state = super().__getstate__()
        state['recorded'] = None
        return state


def recording_blocks(net: nn.Module) -> Iterator[RecordsContrastiveFeatures]:
    """Every recording block inside ``net`` (unwrap DDP / DataParallel before calling)."""
    return (module for module in net.modules() if isinstance(module, RecordsContrastiveFeatures))
