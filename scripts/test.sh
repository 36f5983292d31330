#!/usr/bin/env bash
# Install basicsr_nlattn with its test extra into .venv and run the whole test suite on the CPU, in two worker
# processes (pytest-xdist; a test file stays on one worker, so its module fixtures run once). Each worker gives torch
# one thread (tests/conftest.py); TEST_WORKERS sets the number of workers (0: one process, torch's own threads).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k resume -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
. scripts/setup_env.sh
python -m pytest -q -rs -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
