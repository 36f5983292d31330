"""Registered models of basicsr_nlattn; each module is imported by name so that it registers."""
from basicsr_nlattn.models.contrastive_sr_model import ContrastiveSRModel
from basicsr_nlattn.models.pcl_model import PCLModel
from basicsr_nlattn.models.tiled_inference import TiledInferenceMixin, chop_forward, tiled_forward

__all__ = ['ContrastiveSRModel', 'PCLModel', 'TiledInferenceMixin', 'chop_forward', 'tiled_forward']
