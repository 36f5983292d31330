"""Registered losses of basicsr_nlattn; each module is imported by name so that it registers."""

__all__: list = []
