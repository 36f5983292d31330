"""A 1x1 convolution written as one batched product into the (b, hw, c_out) layout the attention blocks use."""
from typing import Optional

import torch
from torch import Tensor


def pointwise_rows(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """conv2d(x, weight, bias) with a 1x1 kernel, as (b, hw, c_out) rows: (b, c_in, h, w) -> (b, hw, c_out).

    One ``bmm`` of the transposed input (a view, which the product reads without a copy, also in channels-last
    storage) with the weight shared over the batch: the attention blocks need position-major rows, which
    ``conv2d(...).flatten(2).transpose(1, 2)`` would give only after a copy.
    """
    b = x.shape[0]
    rows = torch.bmm(x.flatten(2).transpose(1, 2), weight.flatten(1).t().expand(b, -1, -1))
    return rows if bias is None else rows.add_(bias)
