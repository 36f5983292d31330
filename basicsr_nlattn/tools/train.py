"""``basicsr train``: BasicSR's own ``train_pipeline`` (options, data, model, training loop, logs, checkpoints),
with the pre-flight check of :mod:`basicsr_nlattn.tools.option_check` run on the parsed options before BasicSR
makes or renames any folder."""
from basicsr_nlattn import compat
from basicsr_nlattn.tools.option_check import preflight


def train_pipeline(root_path: str) -> None:
    """Train from the option file given on the command line (``-opt``); runs write under ``root_path``."""
    import basicsr.train
    with compat.after_parse_options(preflight):
        basicsr.train.train_pipeline(root_path)
