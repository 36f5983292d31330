#!/usr/bin/env bash
# Install basicsr_nlattn with its test extra into .venv and run the whole test suite on the CPU.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k resume -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC1091
. scripts/setup_env.sh
python -m pytest -q -rs "$@"
