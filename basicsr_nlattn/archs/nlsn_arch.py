"""NLSN: EDSR with five NLSA blocks.

Paper: Image Super-Resolution with Non-Local Sparse Attention (Mei, Fan and Zhou, CVPR 2021), Sec. 4.1.
Official code: https://github.com/HarukiYqM/Non-Local-Sparse-Attention.
"""
from typing import Sequence

from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.archs.backbone import NonLocalEDSR


@ARCH_REGISTRY.register()
class NLSN(NonLocalEDSR):
    """Non-Local Sparse Network: 32 residual blocks of 256 features, res_scale 0.1, one NLSA before the first
    residual block and one after every 8 (5 in all); 41.80 / 44.75 / 44.16 M parameters at x2 / x3 / x4, as the
    official networks.

    Args:
        num_in_ch (int): input channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        num_feat (int): trunk width. Default: 256.
        num_block (int): residual blocks. Default: 32.
        upscale (int): 2, 3 or 4. Default: 4.
        res_scale (float): residual scale of residual and NLSA blocks. Default: 0.1.
        img_range (float): image range; 1.0 as in the official code. Default: 1.0.
        rgb_mean (Sequence[float]): DIV2K mean. Default: (0.4488, 0.4371, 0.4040).
        attn_every (int): residual blocks between NLSA blocks. Default: 8.
        reduction (int): NLSA embedding reduction (256 -> 64). Default: 4.
        chunk_size (int): NLSA chunk (attention bucket) size k. Default: 144.
        n_hashes (int): NLSA hashing rounds r; may be changed for testing. Default: 4.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 256,
                 num_block: int = 32,
                 upscale: int = 4,
                 res_scale: float = 0.1,
                 img_range: float = 1.0,
                 rgb_mean: Sequence[float] = (0.4488, 0.4371, 0.4040),
                 attn_every: int = 8,
                 reduction: int = 4,
                 chunk_size: int = 144,
                 n_hashes: int = 4) -> None:

        def make_attention() -> NLSA:
            return NLSA(num_feat, reduction=reduction, chunk_size=chunk_size, n_hashes=n_hashes, res_scale=res_scale)

        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, img_range, rgb_mean,
                         attn_every, make_attention)
