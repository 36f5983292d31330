"""CCLNN: EDSR with five CCLN blocks (Local-Nonlocal Mutual blocks with channel contrastive attention).

Paper: Channel Contrastive Attention-based Local-Nonlocal Mutual block for Super-Resolution (IEICE 2024),
Sec. 3.3, Fig. 3. No official code exists.
"""
from typing import Sequence

from basicsr.utils.registry import ARCH_REGISTRY

from basicsr_nlattn.archs.attention.ccln import CCLNBlock
from basicsr_nlattn.archs.backbone import NonLocalEDSR


@ARCH_REGISTRY.register()
class CCLNN(NonLocalEDSR):
    """CCLNN: 32 residual blocks of 256 features, res_scale 0.1, CCLN blocks placed as NLSN's attention (before the
    first residual block and after every 8: 5 in all); 48.07 / 51.02 / 50.43 M parameters at x2 / x3 / x4, the
    paper's counts. The light variant CCLNN-L is ``num_feat: 128, num_block: 16`` (3 CCLN blocks).

    Args:
        num_in_ch (int): input channels. Default: 3.
        num_out_ch (int): output channels. Default: 3.
        num_feat (int): trunk width. Default: 256.
        num_block (int): residual blocks. Default: 32.
        upscale (int): 2, 3 or 4. Default: 4.
        res_scale (float): residual scale of residual blocks and of both CCLN branches. Default: 0.1.
        img_range (float): image range. Default: 1.0.
        rgb_mean (Sequence[float]): DIV2K mean. Default: (0.4488, 0.4371, 0.4040).
        attn_every (int): residual blocks between CCLN blocks. Default: 8.
        reduction (int): NLSA embedding reduction. Default: 4.
        chunk_size (int): NLSA chunk size. Default: 144.
        n_hashes (int): NLSA hashing rounds. Default: 4.
        cca_reduction (int): r of CCA. Default: 16.
        branches (str): ablation 'both', 'local' or 'nonlocal' (paper Table 1). Default: 'both'.
        channel_attention (str): 'contrastive' or 'plain' (paper Table 2, NSparse). Default: 'contrastive'.
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
                 n_hashes: int = 4,
                 cca_reduction: int = 16,
                 branches: str = 'both',
                 channel_attention: str = 'contrastive') -> None:

        def make_attention() -> CCLNBlock:
            return CCLNBlock(
                num_feat,
                reduction=reduction,
                chunk_size=chunk_size,
                n_hashes=n_hashes,
                cca_reduction=cca_reduction,
                res_scale=res_scale,
                branches=branches,
                channel_attention=channel_attention)

        super().__init__(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, img_range, rgb_mean,
                         attn_every, make_attention)
