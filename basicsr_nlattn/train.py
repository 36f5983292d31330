"""``python -m basicsr_nlattn.train -opt FILE [flags]``: ``basicsr train`` for ``torchrun ... -m``."""
import sys

from basicsr_nlattn.cli import module_main

if __name__ == '__main__':
    sys.exit(module_main('train'))
