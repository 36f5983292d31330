"""The contrastive-feature protocol: blocks keep, from their last training forward, what their loss needs.

Networks stay plain ``forward(x) -> sr``. A block whose paper defines a contrastive term subclasses
:class:`RecordsContrastiveFeatures` and calls ``self._record(...)`` in ``forward``; a loss reads ``block.recorded``
of every block of its type, and the training model clears the records after each step. Nothing is recorded in eval
mode or while ``recording`` is False (the papers' warm-up).
"""
from typing import Iterator, Optional, Tuple

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


def recording_blocks(net: nn.Module) -> Iterator[RecordsContrastiveFeatures]:
    """Every recording block inside ``net`` (unwrap DDP / DataParallel before calling)."""
    return (module for module in net.modules() if isinstance(module, RecordsContrastiveFeatures))
