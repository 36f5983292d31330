"""Running the real ``basicsr`` command and ``torchrun`` from the tests, and checking that they succeeded."""
import os
import subprocess
import sys
from os import path as osp
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BIN_DIR = osp.dirname(sys.executable)


def subprocess_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', CUDA_VISIBLE_DEVICES='')
    return env


def basicsr_command() -> List[str]:
    """The installed console script (``pip install -e .`` puts it beside the interpreter)."""
    script = osp.join(BIN_DIR, 'basicsr')
    assert osp.isfile(script), f'the basicsr console script is not installed next to {sys.executable}'
    return [script]


def run_basicsr(args: List[str], cwd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        basicsr_command() + args, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def _torchrun(nproc: int) -> List[str]:
    # --standalone: the rendezvous store binds port 0 and the workers use that store, so no port is chosen
    # beforehand (a port read from a closed socket can be taken by another process before torchrun binds it).
    return [osp.join(BIN_DIR, 'torchrun'), '--standalone', f'--nproc_per_node={nproc}']


def torchrun_command(nproc: int, module: str, args: List[str]) -> List[str]:
    return _torchrun(nproc) + ['-m', module] + args


def torchrun_script_command(nproc: int, script: str, args: List[str]) -> List[str]:
    """torchrun running a helper script (which wraps the training entry point) instead of a module."""
    return _torchrun(nproc) + [script] + args


def dist_train_env() -> Dict[str, str]:
    """The environment of a one-node ``scripts/dist_train.sh`` run: no launch variables inherited, the venv's
    torchrun, and the script's rendezvous at ``127.0.0.1:0`` (torchrun's store binds a free port itself: no port
    chosen beforehand, which another process could take first)."""
    env = subprocess_env()
    for key in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'RDZV_ENDPOINT', 'RDZV_ID'):
        env.pop(key, None)
    env.update(TORCHRUN=osp.join(BIN_DIR, 'torchrun'), RDZV_ENDPOINT='127.0.0.1:0')
    return env


def check_ok(result: subprocess.CompletedProcess, what: Optional[str] = None) -> None:
    assert result.returncode == 0, f'{what or result.args} failed ({result.returncode}):\n{result.stdout[-4000:]}' \
        f'\n{result.stderr[-4000:]}'
