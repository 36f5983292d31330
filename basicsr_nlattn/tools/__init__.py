"""What the commands of :mod:`basicsr_nlattn.commands` run, above the archs, losses and models they use.

``train`` and ``test`` (BasicSR's pipelines with the pre-flight check of ``option_check``; ``test`` ends with the
table of ``paper_results``), ``network_loading`` (the one way to get a network with its weights), ``inference``
(``basicsr infer``; ``onnx_network`` runs an exported model), ``convert`` (official checkpoints to ours), ``bench``
(time and memory of the attention blocks; ``bench_network``: whole networks beside EDSR), ``flops``
(multiply-accumulates), ``attention_maps``, ``plot`` and ``export`` (ONNX, checked by onnxruntime).
"""
from basicsr_nlattn.tools import (attention_maps, bench, bench_network, convert, export, flops, inference,
                                  network_loading, onnx_network, option_check, paper_results, plot, test, train)

__all__ = [
    'attention_maps', 'bench', 'bench_network', 'convert', 'export', 'flops', 'inference', 'network_loading',
    'onnx_network', 'option_check', 'paper_results', 'plot', 'test', 'train'
]
