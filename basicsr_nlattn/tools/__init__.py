"""The commands of ``basicsr``, one module each, above the archs, losses and models they use.

``train`` and ``test`` (BasicSR's pipelines with the pre-flight check of ``option_check``; ``test`` ends with the
table of ``paper_results``), ``convert`` (official checkpoints to ours), ``bench`` (time and memory) and ``flops``
(multiply-accumulates).
"""
from basicsr_nlattn.tools import bench, convert, flops, option_check, paper_results, test, train

__all__ = ['bench', 'convert', 'flops', 'option_check', 'paper_results', 'test', 'train']
