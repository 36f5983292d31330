"""ENLCA: Efficient Non-Local Contrastive Attention.

Paper: Efficient Non-Local Contrastive Attention for Image Super-Resolution (Xia et al., AAAI 2022),
https://arxiv.org/abs/2201.03794, Eq. 3-6 (attention) and Eq. 8-10 (its contrastive loss, in
``basicsr_nlattn.losses.enlca_loss``). Official code: https://github.com/Zj-BinXia/ENLCA.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.attention.pointwise import pointwise_rows
from basicsr_nlattn.archs.attention.random_features import folded_value_attention, orthogonal_gaussian_matrix
from basicsr_nlattn.archs.attention.recording import RecordsContrastiveFeatures
from basicsr_nlattn.utils.errors import OptionError

NORMALIZE_EPS = 5e-5  # the official code's eps of F.normalize for the query and key embeddings


@ARCH_REGISTRY.register()
class ENLCA(RecordsContrastiveFeatures):
    """Efficient Non-Local Contrastive Attention block, (b, c, h, w) -> (b, c, h, w).

    Q = sqrt(k) theta(X)/|theta(X)|, K = sqrt(k) delta(X)/|delta(X)|, V = psi(X) (Eq. 3; theta, delta, psi are 1x1
    convolutions), Y = X + res_scale * D^-1 phi(Q)^T (phi(K) V^T) (Eq. 5-6) with positive orthogonal random
    features phi (Eq. 4). Cost and memory are linear in h * w: no (hw x hw) tensor is formed.

    In training the block records the unit query and key embeddings, (b, hw, c / reduction) each, for
    ``ENLCAContrastiveLoss`` (the contrastive-feature protocol of ``recording.py``).

    The random matrix F is a persistent buffer ``random_features`` (saved in checkpoints, never redrawn in eval or on
    load). ``ContrastiveSRModel`` redraws it before the forward of iteration ``iter`` whenever
    (iter - 1) // redraw_interval changes, with :meth:`redraw_random_features` and a generator seeded by
    (manual_seed, (iter - 1) // redraw_interval, block number), so that every DDP rank, and a resumed run, uses the
    same features.

    As in the official code: the kernel is phi(x) = m^-1/2 (exp(F x - |x|^2 / 2) + eps) with eps = 1e-4 (computed
    with a scale that cancels exactly, see ``softmax_kernel_features``); theta(X) and delta(X) are normalised with
    ``F.normalize(..., eps=5e-5)``; the paper's amplification k is applied as sqrt(k) on each unit vector, so the
    exponent is k * cos(q, k). Given the same weights and F, the block computes the official block's output.

    Computed in a cheaper order than the official code, with the same result (exact algebra; tested against the
    official block in float64, value and gradients): the value convolution psi is folded into the context,
    phi(K)^T psi(X) = (phi(K)^T X) W_psi^T + (phi(K)^T 1_N) b_psi^T (``folded_value_attention``), so V = psi(X), an
    N x c x c product, is never formed (an m x c x c one replaces it; res_scale is folded into W_psi and b_psi, as
    the output is linear in V); theta and delta run as one convolution on their concatenated weights (the
    parameters, and so the checkpoint keys ``query_conv.*`` and ``key_conv.*``, stay two convolutions) and their
    features are computed together (``query_key_features``), from position-major rows (``pointwise_rows``). The
    kernel is the official one, unchanged.

    Differs from the official code: F is drawn with its QR signs fixed (Haar-distributed blocks; the code keeps
    ``torch.qr``'s signs) and redrawn from the seeded generator above, not from the global RNG. The paper redraws
    F every epoch (``redraw_interval: 1000``, an epoch of 1000 iterations at batch 16); the code redraws every
    641 forwards (``redraw_interval: 641``).

    Args:
        num_feat (int): channels c_in = c_out of the input and output.
        reduction (int): embedding width of Q and K is num_feat // reduction (Eq. 3). Default: 4 (256 -> 64).
        amplification (float): k of Eq. 3 (sparsity by amplification), > 0. Default: 6.
        num_random_features (int): m, rows of F (Eq. 4). Default: 128.
        res_scale (float): scale of the attention output before the identity path is added. Default: 1.
        redraw_interval (int): iterations between redraws of F by the training model; 0 never redraws.
            Default: 1000 (one epoch).
        eps (float): added to every random feature so that no normaliser vanishes (official code). Default: 1e-4.
    """

    def __init__(self,
                 num_feat: int,
                 *,
                 reduction: int = 4,
                 amplification: float = 6.0,
                 num_random_features: int = 128,
                 res_scale: float = 1.0,
                 redraw_interval: int = 1000,
                 eps: float = 1e-4) -> None:
        super().__init__()
        if num_feat < 1:
            raise OptionError(f'ENLCA.num_feat must be >= 1, got {num_feat}')
        if not 1 <= reduction <= num_feat:
            raise OptionError(f'ENLCA.reduction must be between 1 and num_feat ({num_feat}), got {reduction}')
        if not amplification > 0:
            raise OptionError(f'ENLCA.amplification must be > 0, got {amplification}')
        if num_random_features < 1:
            raise OptionError(f'ENLCA.num_random_features must be >= 1, got {num_random_features}')
        if redraw_interval < 0:
            raise OptionError(f'ENLCA.redraw_interval must be >= 0 (0: never), got {redraw_interval}')
        if eps < 0:
            raise OptionError(f'ENLCA.eps must be >= 0, got {eps}')
        embed_dim = num_feat // reduction
        self.amplification = float(amplification)
        self.res_scale = res_scale
        self.redraw_interval = redraw_interval
        self.eps = eps
        self.query_conv = nn.Conv2d(num_feat, embed_dim, 1)
        self.key_conv = nn.Conv2d(num_feat, embed_dim, 1)
        self.value_conv = nn.Conv2d(num_feat, num_feat, 1)
        self.register_buffer('random_features', orthogonal_gaussian_matrix(num_random_features, embed_dim))

    @torch.no_grad()
    def redraw_random_features(self, generator: torch.Generator) -> None:
        """Draw a new F in place (same shape, device and dtype) from ``generator``."""
        num_rows, num_cols = self.random_features.shape
        drawn = orthogonal_gaussian_matrix(num_rows, num_cols, generator=generator)
        self.random_features.copy_(drawn.to(self.random_features))

    def embed_queries_keys(self, x: Tensor) -> Tensor:
        """Unit queries and keys of Eq. 3, before amplification, stacked: (b, 2, hw, c'), [:, 0] the queries, [:, 1]
        the keys, from one 1x1 product with theta's and delta's weights concatenated (the same values as the two
        convolutions), normalised along contiguous rows."""
        weight = torch.cat([self.query_conv.weight, self.key_conv.weight])
        bias = torch.cat([self.query_conv.bias, self.key_conv.bias])
        embedded = pointwise_rows(x, weight, bias)  # (b, hw, 2 c'): query | key
        embedded = embedded.view(*embedded.shape[:2], 2, -1)  # (b, hw, 2, c')
        return F.normalize(embedded, dim=-1, eps=NORMALIZE_EPS).transpose(1, 2)

    def embed(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Unit queries and keys (b, hw, c'), before amplification, and values (b, hw, c) of Eq. 3 (for tools;
        ``forward`` never forms the values)."""
        query, key = self.embed_queries_keys(x).unbind(1)
        return query, key, self.value_conv(x).flatten(2).transpose(1, 2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query_key = self.embed_queries_keys(x)
        self._record(*query_key.unbind(1))
        # exp(F x) overflows float16: the attention core runs in float32 at least, also under autocast (the folded
        # value convolution with it).
        core_dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(device_type=x.device.type, enabled=False):
            attended = folded_value_attention(
                query_key.to(core_dtype) * math.sqrt(self.amplification),
                x.flatten(2).transpose(1, 2).to(core_dtype),
                self.value_conv.weight.flatten(1).to(core_dtype) * self.res_scale,
                self.value_conv.bias.to(core_dtype) * self.res_scale,
                self.random_features.to(core_dtype),
                eps=self.eps)
        # res_scale is folded into psi (Y is linear in V); the identity is added in place to the fresh output, which
        # no backward needs
        return attended.transpose(1, 2).reshape(b, c, h, w).to(x.dtype).add_(x)

    def extra_repr(self) -> str:
        num_rows, num_cols = self.random_features.shape
        return (f'amplification={self.amplification}, num_random_features={num_rows}, embed_dim={num_cols}, '
                f'res_scale={self.res_scale}, redraw_interval={self.redraw_interval}')
