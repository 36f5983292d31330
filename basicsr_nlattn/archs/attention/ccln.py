"""CCLN: the Channel Contrastive Attention-based Local-Nonlocal Mutual block, and its two attention parts.

Paper: Channel Contrastive Attention-based Local-Nonlocal Mutual block for Super-Resolution (CCLNN, IEICE 2024),
Eq. 2 (the block), Fig. 2 (CCA); pixel attention after PAN (Zhao et al., "Efficient Image Super-Resolution Using
Pixel Attention", ECCV Workshops 2020). No official code exists: the paper is the reference.
"""
from basicsr.archs.arch_util import ResidualBlockNoBN
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.nlsa import NLSA
from basicsr_nlattn.archs.attention.recording import RecordsContrastiveFeatures
from basicsr_nlattn.utils.errors import OptionError

BRANCHES = ('both', 'local', 'nonlocal')
CHANNEL_ATTENTIONS = ('contrastive', 'plain')


@ARCH_REGISTRY.register()
class PixelAttention(nn.Module):
    """PA(X) = X * sigmoid(conv1x1(X)): a weight for every pixel of every channel (C x C parameters + bias).

    Args:
        num_feat (int): channels.
    """

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(num_feat, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv(x).sigmoid()


@ARCH_REGISTRY.register()
class ChannelAttention(nn.Module):
    """Channel attention (Fig. 2 without the contrastive step): average pool, FC C -> C/r, ReLU, FC C/r -> C,
    sigmoid; the C weights W^CA scale the channels.

    Args:
        num_feat (int): channels C.
        reduction (int): r. Default: 16.
    """

    def __init__(self, num_feat: int, *, reduction: int = 16) -> None:
        super().__init__()
        if not 1 <= reduction <= num_feat:
            raise OptionError(f'{type(self).__name__}.reduction must be between 1 and num_feat ({num_feat}), got '
                              f'{reduction}')
        self.fc1 = nn.Linear(num_feat, num_feat // reduction)
        self.fc2 = nn.Linear(num_feat // reduction, num_feat)

    def channel_weights(self, x: Tensor) -> Tensor:
        """W^CA, (b, c) in (0, 1)."""
        return self.fc2(self.fc1(x.mean(dim=(2, 3))).relu()).sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.channel_weights(x)[:, :, None, None]


@ARCH_REGISTRY.register()
class ChannelContrastiveAttention(ChannelAttention, RecordsContrastiveFeatures):
    """CCA (Fig. 2): channel attention whose weights W^CA, (b, C), are recorded in training for
    ``CCAContrastiveLoss`` (Eq. 3-4) or ``CCASparsityLoss`` (Eq. 7).

    Args:
        num_feat (int): channels C.
        reduction (int): r. Default: 16.
    """

    def forward(self, x: Tensor) -> Tensor:
        weights = self.channel_weights(x)
        self._record(weights)
        return x * weights[:, :, None, None]


@ARCH_REGISTRY.register()
class CCLNBlock(nn.Module):
    """Y = NLSA(PA(X)) + Res(CCA(X)) (Eq. 2), (b, c, h, w) -> (b, c, h, w).

    Our reading of Eq. 2: each branch is the block of its source, identity path included: NLSA adds its input
    (PA(X)) to its scaled attention output, and Res is EDSR's residual block, conv-ReLU-conv scaled by
    ``res_scale`` plus its input (CCA(X)). The branches share no weights; their outputs are summed.

    Ablations of the paper (Tables 1-2): ``branches: local`` keeps Res(CCA(X)) only (CCLNN-local),
    ``branches: nonlocal`` NLSA(PA(X)) only (CCLNN-Non-L), ``channel_attention: plain`` uses channel attention that
    records nothing, so no contrastive term applies (CCLNN-NSparse); the L1 alternative (CCLNN-TSparse) is the loss
    ``CCASparsityLoss``.

    Args:
        num_feat (int): channels.
        reduction (int): NLSA embedding reduction. Default: 4.
        chunk_size (int): NLSA chunk size. Default: 144.
        n_hashes (int): NLSA hashing rounds. Default: 4.
        cca_reduction (int): r of CCA. Default: 16.
        res_scale (float): residual scale of NLSA and Res. Default: 1.
        branches (str): 'both', 'local' or 'nonlocal'. Default: 'both'.
        channel_attention (str): 'contrastive' (CCA) or 'plain' (CA). Default: 'contrastive'.
    """

    def __init__(self,
                 num_feat: int,
                 *,
                 reduction: int = 4,
                 chunk_size: int = 144,
                 n_hashes: int = 4,
                 cca_reduction: int = 16,
                 res_scale: float = 1.0,
                 branches: str = 'both',
                 channel_attention: str = 'contrastive') -> None:
        super().__init__()
        if branches not in BRANCHES:
            raise OptionError(f"CCLNBlock.branches must be one of {list(BRANCHES)}, got '{branches}'")
        if channel_attention not in CHANNEL_ATTENTIONS:
            raise OptionError(f'CCLNBlock.channel_attention must be one of {list(CHANNEL_ATTENTIONS)}, got '
                              f"'{channel_attention}'")
        if not 1 <= cca_reduction <= num_feat:  # checked here: the CCA block calls it reduction, as NLSA does its own
            raise OptionError(f'CCLNBlock.cca_reduction must be between 1 and num_feat ({num_feat}), got '
                              f'{cca_reduction}')
        self.nonlocal_branch = None
        self.local_branch = None
        if branches in ('both', 'nonlocal'):
            self.nonlocal_branch = nn.Sequential(
                PixelAttention(num_feat),
                NLSA(num_feat, reduction=reduction, chunk_size=chunk_size, n_hashes=n_hashes, res_scale=res_scale))
        if branches in ('both', 'local'):
            attention_class = ChannelContrastiveAttention if channel_attention == 'contrastive' else ChannelAttention
            self.local_branch = nn.Sequential(
                attention_class(num_feat, reduction=cca_reduction),
                ResidualBlockNoBN(num_feat=num_feat, res_scale=res_scale))

    def forward(self, x: Tensor) -> Tensor:
        if self.local_branch is None:
            return self.nonlocal_branch(x)
        if self.nonlocal_branch is None:
            return self.local_branch(x)
        return self.nonlocal_branch(x) + self.local_branch(x)
