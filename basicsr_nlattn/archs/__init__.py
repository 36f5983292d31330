"""Registered archs of basicsr_nlattn; each module is imported by name so that it registers."""
from basicsr_nlattn.archs import attention
from basicsr_nlattn.archs.backbone import NonLocalEDSR
from basicsr_nlattn.archs.cclnn_arch import CCLNN
from basicsr_nlattn.archs.enlcn_arch import ENLCN
from basicsr_nlattn.archs.haar_discriminator_arch import HaarDiscriminator
from basicsr_nlattn.archs.nlsn_arch import NLSN
from basicsr_nlattn.archs.with_attention_arch import WithAttention

__all__ = ['CCLNN', 'ENLCN', 'HaarDiscriminator', 'NLSN', 'NonLocalEDSR', 'WithAttention', 'attention']
