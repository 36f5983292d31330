"""The PCL-SR embedding network: a VGG-style patch discriminator on the Haar high-frequency bands.

Paper: Practical Contrastive Learning for Single Image Super-Resolution (PCL-SR), Sec. III-C, Eq. 7.
Official code: https://github.com/Aitical/PCL-SISR.
"""
from typing import List

from basicsr.utils.registry import ARCH_REGISTRY
from torch import Tensor, nn

from basicsr_nlattn.archs.haar_wavelet import high_frequency_bands
from basicsr_nlattn.utils.errors import OptionError


def _stage(in_ch: int, out_ch: int, stride: int, norm: bool) -> nn.Sequential:
    kernel = 4 if stride == 2 else 3
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=not norm)]
    layers += [nn.BatchNorm2d(out_ch)] if norm else []
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


@ARCH_REGISTRY.register()
class HaarDiscriminator(nn.Module):
    """E_D of PCL-SR: image -> Haar LH, HL, HH (3 x num_in_ch channels, half resolution) -> conv + BatchNorm +
    LeakyReLU stages (stride 2 every other stage) -> a 3x3 conv to one logit per patch.

    ``features(x)`` returns every stage's output (the contrastive loss uses the first four by default);
    ``forward(x)`` returns the patch logits for ``ContrastiveDiscriminatorLoss`` (Eq. 7).

    Args:
        num_in_ch (int): image channels. Default: 3.
        num_feat (int): channels of the first stage; doubled at every stride-2 stage. Default: 64.
        num_stages (int): conv stages before the head, >= 1. Default: 6.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, num_stages: int = 6) -> None:
        super().__init__()
        for key, value in (('num_in_ch', num_in_ch), ('num_feat', num_feat), ('num_stages', num_stages)):
            if value < 1:
                raise OptionError(f'HaarDiscriminator.{key} must be >= 1, got {value}')
        stages, channels = [], 3 * num_in_ch
        for index in range(num_stages):
            stride = 2 if index % 2 == 1 else 1
            out_ch = num_feat * 2**(index // 2)
            stages.append(_stage(channels, out_ch, stride, norm=index > 0))
            channels = out_ch
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(channels, 1, 3, 1, 1)

    @property
    def num_features(self) -> int:
        return len(self.stages)

    def features(self, x: Tensor) -> List[Tensor]:
        """The output of every stage, first to last, for an image x (b, c, h, w) with even h, w."""
        out, features = high_frequency_bands(x), []
        for stage in self.stages:
            out = stage(out)
            features.append(out)
        return features

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits, (b, 1, h', w')."""
        return self.head(self.features(x)[-1])
