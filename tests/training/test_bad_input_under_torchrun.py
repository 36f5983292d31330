"""Bad input stops ``torchrun --nproc_per_node=2 -m basicsr_nlattn.train -opt FILE --launcher pytorch`` as it stops
``basicsr train``: each rank checks the options right after the process group's rendezvous, prints the one line and
exits 2 before anything is written; torchrun, seeing a rank fail, stops the others (SIGTERM) and exits 1 with its own
``ChildFailedError`` report, the only traceback, whose first failure is the 2. The ranks check at the same moment,
so both normally print the line; a rank still checking, or still exiting, when torchrun stops the group is
terminated (reported with -15), before it prints in the first case."""
import os
import re
import subprocess
from os import path as osp
from typing import Dict

from helpers.long_runs import long_run_option, write_long_run
from helpers.runs import subprocess_env, torchrun_command


def _snapshot(folder: str) -> Dict[str, bytes]:
    """Every file and folder under ``folder``, files with their bytes."""
    entries = {}
    for parent, folders, names in os.walk(folder):
        for name in folders:
            entries[osp.relpath(osp.join(parent, name), folder) + '/'] = b''
        for name in names:
            with open(osp.join(parent, name), 'rb') as file:
                entries[osp.relpath(osp.join(parent, name), folder)] = file.read()
    return entries


def test_each_rank_prints_the_line_and_the_experiment_folder_is_untouched(demo_data_root, tmp_path):
    """``val.tile.mode: quad`` in an experiment whose folder already holds a file: the line (one per rank that
    finished its check, the same) starts with the key; torchrun's status 1, its first failure an exit code 2; no frame
    of our code in any traceback; the working directory byte for byte as before (nothing archived, made or written).
    A check run after BasicSR's ``make_exp_dirs`` would archive the folder; one that raised would show our frames
    and exit 1."""
    work = tmp_path / 'work'
    root = work / 'experiments' / 'bad_dist'
    root.mkdir(parents=True)
    (root / 'notes.txt').write_text('an earlier run of this name')
    opt = long_run_option('NLSN', 'bad_dist', str(root), demo_data_root, total_iter=4, save_freq=2)
    opt['val']['tile'] = {'mode': 'quad'}
    option_file = write_long_run(opt, str(tmp_path), 'bad_dist.yml')
    before = _snapshot(str(work))

    command = torchrun_command(2, 'basicsr_nlattn.train', ['-opt', option_file, '--launcher', 'pytorch'])
    result = subprocess.run(command, cwd=str(work), env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-4000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('basicsr train: error:')]
    assert 1 <= len(errors) <= 2 and len(set(errors)) == 1, result.stderr[-4000:]
    assert errors[0].startswith('basicsr train: error: val.tile.mode') and "'quad'" in errors[0], errors[0]
    first_failure = result.stderr.split('Root Cause (first observed failure):')[-1]
    assert re.search(r'exitcode\s*:\s*2 \(pid', first_failure), result.stderr[-4000:]
    assert result.stderr.count('Traceback') == 1 and 'ChildFailedError' in result.stderr.split('Traceback')[1]
    assert not re.search(r'File ".*basicsr_nlattn', result.stderr), result.stderr[-4000:]
    assert _snapshot(str(work)) == before
