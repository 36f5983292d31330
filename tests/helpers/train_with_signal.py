"""``basicsr train`` (the real entry point) that signals itself at one chosen moment, for
``tests/training/test_stop_phases.py``: the moment is a call the run makes, not a time.

Run as ``python train_with_signal.py -opt FILE [flags]`` (or by torchrun, with ``--launcher pytorch``).
``$SIGNAL_AT`` names the moment:

- ``build_dataset``, ``build_model``, ``load_training_state``: SIGTERM when the start-up calls that function (the
  first call), which then goes on;
- ``validation``: SIGTERM when BasicSR's ``SRModel.nondist_validation`` is first called (with a ``val_freq`` past
  ``total_iter``, that is the final validation), which then goes on;
- ``save:<file name>``: SIGKILL once the temporary file of that file's atomic save is written, before its rename.

SIGTERM goes to the process group (``os.killpg``, as a scheduler sends it; the process must lead its group: start it
with ``start_new_session=True``), or with ``$SIGNAL_TO=self`` to this process only; with ``$SIGNAL_RANK`` only on
that rank.
"""
import contextlib
import os
import signal
import sys
from os import path as osp

import basicsr_nlattn  # noqa: F401  (compat must be applied before basicsr is imported)
from basicsr_nlattn.cli import module_main
from basicsr_nlattn.training import loop
from basicsr_nlattn.utils import checkpoint_files


def _send_sigterm() -> None:
    if os.environ.get('SIGNAL_TO', 'group') == 'self':
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if os.getpgid(0) != os.getpid():
        raise RuntimeError('train_with_signal.py signals its process group: start it in a session of its own')
    os.killpg(os.getpgid(0), signal.SIGTERM)


def _signalling_first_call(function):
    calls = []

    def call(*args, **kwargs):
        if not calls:
            calls.append(True)
            _send_sigterm()
        return function(*args, **kwargs)

    return call


def _killed_in_save(file_name: str):
    atomic_write = checkpoint_files.atomic_write

    @contextlib.contextmanager
    def atomic_write_then_kill(path):
        with atomic_write(path) as temporary:
            yield temporary
            if osp.basename(path) == file_name and osp.getsize(temporary) > 0:
                os.kill(os.getpid(), signal.SIGKILL)

    return atomic_write_then_kill


def main() -> int:
    moment = os.environ['SIGNAL_AT']
    rank = os.environ.get('SIGNAL_RANK')
    if rank is None or rank == os.environ.get('RANK', '0'):
        if moment.startswith('save:'):
            checkpoint_files.atomic_write = _killed_in_save(moment[len('save:'):])
        elif moment == 'validation':
            from basicsr.models.sr_model import SRModel
            SRModel.nondist_validation = _signalling_first_call(SRModel.nondist_validation)
        elif moment in ('build_dataset', 'build_model', 'load_training_state'):
            setattr(loop, moment, _signalling_first_call(getattr(loop, moment)))
        else:
            raise ValueError(f'SIGNAL_AT: unknown moment {moment!r}')
    return module_main('train')


if __name__ == '__main__':
    sys.exit(main())
