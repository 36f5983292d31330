"""ENLCA against exact attention, and the chunked contrastive loss against the full sort (same as basicsr bench).

Usage: python scripts/benchmark_attention.py [--sizes 48 100 150] [--device cpu|cuda] [--json results.json]
"""
import sys

from basicsr_nlattn.cli import main

if __name__ == '__main__':
    sys.exit(main(['bench'] + sys.argv[1:]))
