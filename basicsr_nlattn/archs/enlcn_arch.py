"""ENLCN: EDSR with five ENLCA blocks.

Paper: Efficient Non-Local Contrastive Attention for Image Super-Resolution (Xia et al., AAAI 2022), Sec. 3.3,
Fig. 3. Official code: https://github.com/Zj-BinXia/ENLCA.
"""
from typing import Sequence

from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.backbone import NonLocalEDSR


@ARCH_REGISTRY.register()
class ENLCN(NonLocalEDSR):
    """Efficient Non-Local Contrastive Network: 32 residual blocks of 256 features, res_scale 0.1, one ENLCA before
    the first residual block and one after every 8 (5 in all); 41.22 / 44.17 / 43.58 M parameters at x2 / x3 / x4,
    as the official networks.

    Args:
        num_in_ch (int): input channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        num_feat (int): trunk width. Default: 256.
        num_block (int): residual blocks. Default: 32.
        upscale (int): 2, 3 or 4. Default: 4.
        res_scale (float): residual scale of residual and ENLCA blocks. Default: 0.1.
        img_range (float): image range; 1.0 as in the official code (EDSR-PyTorch's rgb_range). Default: 1.0.
        rgb_mean (Sequence[float]): DIV2K mean. Default: (0.4488, 0.4371, 0.4040).
        attn_every (int): residual blocks between ENLCA blocks. Default: 8.
        reduction (int): ENLCA embedding reduction (256 -> 64). Default: 4.
        amplification (float): ENLCA k (Eq. 3). Default: 6.
        num_random_features (int): ENLCA m (Eq. 4). Default: 128.
        redraw_interval (int): iterations between redraws of the random features. Default: 1000 (one epoch).
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
                 amplification: float = 6.0,
                 num_random_features: int = 128,
                 redraw_interval: int = 1000) -> None:

        def make_attention() -> ENLCA:
            return ENLCA(
                num_feat,
                reduction=reduction,
                amplification=amplification,
                num_random_features=num_random_features,
                res_scale=res_scale,
                redraw_interval=redraw_interval)

        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, img_range, rgb_mean,
                         attn_every, make_attention)
