"""The commands of ``basicsr``, one module each: ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``, with the heavy imports inside ``run``.

``lam`` (Local Attribution Maps and the Diffusion Index of one or several networks).
"""
from basicsr_nlattn.commands import lam

__all__ = ['lam']
