"""Reusable attention blocks: plain (b, c, h, w) -> (b, c, h, w) modules, also registered for YAML."""
from basicsr_nlattn.archs.attention.bucket_attention import combine_rounds, sparse_attention
from basicsr_nlattn.archs.attention.ccln import CCLNBlock, ChannelAttention, ChannelContrastiveAttention, PixelAttention
from basicsr_nlattn.archs.attention.enlca import ENLCA
from basicsr_nlattn.archs.attention.nlsa import NLSA, bucketed_attention, spherical_hash
from basicsr_nlattn.archs.attention.random_features import (folded_value_attention, orthogonal_gaussian_matrix,
                                                            query_key_features, random_feature_attention,
                                                            softmax_kernel_features)
from basicsr_nlattn.archs.attention.recording import RecordsContrastiveFeatures, recording_blocks

__all__ = [
    'CCLNBlock', 'ChannelAttention', 'ChannelContrastiveAttention', 'PixelAttention', 'ENLCA', 'NLSA',
    'RecordsContrastiveFeatures', 'bucketed_attention', 'combine_rounds', 'sparse_attention', 'spherical_hash',
    'folded_value_attention', 'orthogonal_gaussian_matrix', 'query_key_features', 'random_feature_attention',
    'recording_blocks', 'softmax_kernel_features'
]
