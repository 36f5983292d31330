"""Every class of ours is registered under its own name, none shadows one of BasicSR's (duplicates raise at import,
so importing the package is half of the check), and every arch name is a YAML type."""
from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

import basicsr_nlattn  # noqa: F401

OURS = {
    ARCH_REGISTRY: [
        'ENLCA', 'ENLCN', 'NLSA', 'NLSN', 'CCLNN', 'CCLNBlock', 'PixelAttention', 'ChannelAttention',
        'ChannelContrastiveAttention', 'WithAttention', 'HaarDiscriminator'
    ],
    LOSS_REGISTRY: [
        'ENLCAContrastiveLoss', 'CCAContrastiveLoss', 'CCASparsityLoss', 'PCLContrastiveLoss',
        'ContrastiveDiscriminatorLoss'
    ],
    MODEL_REGISTRY: ['ContrastiveSRModel', 'PCLModel'],
}


def test_our_names_are_registered_to_our_classes():
    for registry, names in OURS.items():
        for name in names:
            registered = registry.get(name)
            assert registered.__name__ == name and registered.__module__.startswith('basicsr_nlattn.'), name


def test_basicsr_names_still_point_to_basicsr():
    for registry in OURS:
        ours = {name for name, cls in registry if cls.__module__.startswith('basicsr_nlattn.')}
        assert ours == set(OURS[registry])
        for name in ('EDSR', 'RCAN', 'SwinIR', 'L1Loss', 'SRModel'):
            if name in registry:
                assert registry.get(name).__module__.startswith('basicsr.')
