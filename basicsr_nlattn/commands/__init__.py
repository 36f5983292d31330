"""The commands of ``basicsr``, one module each, above the tools and the training loop they call and below ``cli``.

Each module has ``HELP`` (one line for ``basicsr --help``), ``add_arguments(parser)`` (its flags, each with its
default in the help) and ``run(args) -> int`` (the exit status; heavy imports happen there, so ``--help`` stays
fast). ``cli.COMMANDS`` lists them by name and loads each on use; ``pipeline`` holds what ``train`` and ``test``
share.
"""
