# Shared by the VNN-COMP scripts: the Python to use and single-threaded BLAS.
# $NLVERIFY_PYTHON wins; else the venv $NLVERIFY_VENV (default: .venv in the repository).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="${NLVERIFY_VENV:-$REPO/.venv}"
if [ -n "${NLVERIFY_PYTHON:-}" ]; then PY="$NLVERIFY_PYTHON"
elif [ -x "$VENV/bin/python" ]; then PY="$VENV/bin/python"
else PY="python3"; fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
