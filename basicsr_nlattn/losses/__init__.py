"""Registered losses of basicsr_nlattn (pure functions of tensors, with thin registered classes)."""
from basicsr_nlattn.losses.enlca_loss import ENLCAContrastiveLoss, enlca_contrastive_loss

__all__ = ['ENLCAContrastiveLoss', 'enlca_contrastive_loss']
