"""``basicsr train``: BasicSR's training pipeline for an option file, with the pre-flight check, atomic checkpoints,
exact resume and preemption handling of :mod:`basicsr_nlattn.tools.train`."""
import argparse

from basicsr_nlattn.commands.pipeline import add_pipeline_arguments, run_pipeline

HELP = "train a network from an option file (BasicSR's train_pipeline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser, train=True)


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError (bad option, before anything is written) or RunStopped (the run ended early: 2 a
    fault, 3 non-finite updates, 75 preempted; continue with ``--auto_resume``)."""
    return run_pipeline('train', args)
