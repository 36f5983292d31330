# Sourced by demo.sh and test.sh: make (once) and activate a virtual environment, install basicsr_nlattn into it.
# BASICSR_NLATTN_VENV chooses the folder (default: .venv in the repository). pip takes torch and torchvision from
# the registry as a matching pair (a CUDA build, which also runs on the CPU), then basicsr 1.4.2 from its sdist.
venv="${BASICSR_NLATTN_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
    echo "Creating the virtual environment $venv"
    python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
echo "Installing basicsr_nlattn and its dependencies into $venv (the first time takes a few minutes)"
python -m pip install --quiet --progress-bar off --upgrade pip
python -m pip install --quiet --progress-bar off -e ".[test,export]"
