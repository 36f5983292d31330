"""The commands of ``basicsr``, one module each, above the archs, losses and models they use.

``train`` and ``test`` (BasicSR's pipelines with the pre-flight check of ``option_check``; ``test`` ends with the
table of ``paper_results``), ``convert`` (official checkpoints to ours), ``bench`` (time and memory of the
attention blocks; ``bench_network``: whole networks beside EDSR), ``flops`` (multiply-accumulates) and ``export``
(ONNX, checked by onnxruntime).
"""
from basicsr_nlattn.tools import bench, bench_network, convert, export, flops, option_check, paper_results, test, train

__all__ = ['bench', 'bench_network', 'convert', 'export', 'flops', 'option_check', 'paper_results', 'test', 'train']
