"""``python -m basicsr_nlattn.test -opt FILE [flags]``: ``basicsr test`` for ``torchrun ... -m``."""
import sys

from basicsr_nlattn.cli import module_main

if __name__ == '__main__':
    sys.exit(module_main('test'))
