"""The EDSR trunk shared by ENLCN, NLSN and CCLNN: head, residual blocks with an attention block inserted before
the first residual block and after every ``attn_every`` of them, a conv, the upsampler and the tail.

Paper: Enhanced Deep Residual Networks for Single Image Super-Resolution (Lim et al., CVPRW 2017); the insertion
pattern is the one of NLSN (CVPR 2021) and ENLCN (AAAI 2022): 32 residual blocks, 5 attention blocks.

Attribute names (``conv_first``, ``body``, ``conv_after_body``, ``upsample``, ``conv_last``; BasicSR's EDSR names)
are this project's checkpoint format; ``basicsr_nlattn.tools.convert`` maps the official layout onto them.
"""
from typing import Callable, Sequence

import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from torch import Tensor, nn

from basicsr_nlattn.utils.errors import OptionError


def attention_positions(num_block: int, attn_every: int) -> list:
    """Indices in ``body`` of the attention blocks: before residual blocks 0, attn_every, 2 attn_every, ... and
    after the last one (32 blocks, every 8: [0, 9, 18, 27, 36])."""
    positions, index = [], 0
    for block in range(num_block):
        if block % attn_every == 0:
            positions.append(index)
            index += 1
        index += 1
    return positions + [index]


class NonLocalEDSR(nn.Module):
    """EDSR with attention blocks in its body; (b, num_in_ch, h, w) -> (b, num_out_ch, upscale h, upscale w).

    Args:
        num_in_ch (int): input channels.
        num_out_ch (int): output channels.
        num_feat (int): trunk width.
        num_block (int): residual blocks.
        upscale (int): 2, 3 or 2^n.
        res_scale (float): residual scale of the residual blocks.
        img_range (float): images are scaled by this after the mean is removed.
        rgb_mean (Sequence[float]): mean removed from the input and added back to the output.
        attn_every (int): residual blocks between two attention blocks, >= 1.
        make_attention (Callable[[], nn.Module]): builds one attention block (b, num_feat, h, w) -> same.

    Bad options raise OptionError, the block's own checks included (its ValueError is re-raised as one).
    """

    def __init__(self, num_in_ch: int, num_out_ch: int, num_feat: int, num_block: int, upscale: int, res_scale: float,
                 img_range: float, rgb_mean: Sequence[float], attn_every: int,
                 make_attention: Callable[[], nn.Module]) -> None:
        super().__init__()
        name = type(self).__name__
        for key, value in (('num_in_ch', num_in_ch), ('num_feat', num_feat)):
            if value < 1:
                raise OptionError(f'{name}.{key} must be >= 1, got {value}')
        if not img_range > 0:
            raise OptionError(f'{name}.img_range must be > 0, got {img_range}')
        if num_block < 1:
            raise OptionError(f'{name}.num_block must be >= 1, got {num_block}')
        if attn_every < 1:
            raise OptionError(f'{name}.attn_every must be >= 1, got {attn_every}')
        if upscale != 3 and (upscale < 2 or upscale & (upscale - 1)):
            raise OptionError(f'{name}.upscale must be 2, 3 or a power of 2, got {upscale}')
        if len(rgb_mean) != num_in_ch or num_in_ch != num_out_ch:
            raise OptionError(f'{name}.rgb_mean needs one value per channel and num_in_ch == num_out_ch, got '
                              f'rgb_mean={list(rgb_mean)}, num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        self.img_range = img_range
        self.register_buffer('mean', torch.tensor(rgb_mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        positions = set(attention_positions(num_block, attn_every))
        body, residual_blocks = [], 0
        while residual_blocks < num_block or len(body) in positions:
            if len(body) in positions:
                body.append(make_attention())
            else:
                body.append(ResidualBlockNoBN(num_feat=num_feat, res_scale=res_scale))
                residual_blocks += 1
        self.body = nn.Sequential(*body)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        x = self.conv_after_body(self.body(x)) + x
        x = self.conv_last(self.upsample(x))
        return x / self.img_range + mean
