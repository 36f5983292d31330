"""basicsr_nlattn: non-local attention and contrastive learning for super-resolution, as a BasicSR plugin.

Importing the package first applies the basicsr 1.4.2 fixes of :mod:`basicsr_nlattn.compat` (``import basicsr``
fails on today's torchvision without them), then imports the archs, losses and models so that they register in
BasicSR's registries.
"""
from basicsr_nlattn import compat

compat.apply()

from basicsr_nlattn import archs, losses, models  # noqa: E402  (registration needs compat first)
from basicsr_nlattn.version import __version__  # noqa: E402

__all__ = ['archs', 'compat', 'losses', 'models', '__version__']
