"""Registered archs of basicsr_nlattn; each module is imported by name so that it registers."""
from basicsr_nlattn.archs import attention
from basicsr_nlattn.archs.backbone import NonLocalEDSR
from basicsr_nlattn.archs.enlcn_arch import ENLCN

__all__ = ['ENLCN', 'NonLocalEDSR', 'attention']
