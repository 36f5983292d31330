"""``basicsr test``: BasicSR's test pipeline for an option file (:mod:`basicsr_nlattn.tools.test`), ending with a
markdown table beside the paper's numbers."""
import argparse

from basicsr_nlattn.commands.pipeline import add_pipeline_arguments, run_pipeline

HELP = ("test a trained network on the datasets of an option file (BasicSR's test pipeline), ending with a markdown "
        "table beside the paper's numbers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_pipeline_arguments(parser, train=False)


def run(args: argparse.Namespace) -> int:
    """0, or raises OptionError for a bad option (before anything is written)."""
    return run_pipeline('test', args)
