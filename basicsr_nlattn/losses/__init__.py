"""Registered losses of basicsr_nlattn (pure functions of tensors, with thin registered classes)."""
from basicsr_nlattn.losses.cca_loss import CCAContrastiveLoss, CCASparsityLoss, cca_contrastive_loss, cca_sparsity_loss
from basicsr_nlattn.losses.enlca_loss import ENLCAContrastiveLoss, enlca_contrastive_loss
from basicsr_nlattn.losses.pcl_loss import (ContrastiveDiscriminatorLoss, PCLContrastiveLoss,
                                            contrastive_discriminator_loss, pcl_contrastive_loss)

__all__ = [
    'CCAContrastiveLoss', 'CCASparsityLoss', 'ContrastiveDiscriminatorLoss', 'ENLCAContrastiveLoss',
    'PCLContrastiveLoss', 'cca_contrastive_loss', 'cca_sparsity_loss', 'contrastive_discriminator_loss',
    'enlca_contrastive_loss', 'pcl_contrastive_loss'
]
