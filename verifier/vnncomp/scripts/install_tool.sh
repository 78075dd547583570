#!/usr/bin/env bash
# VNN-COMP: install_tool.sh v1
# Installs nlverify (editable, with its runtime dependencies) into a virtual environment
# next to the repository (.venv), or into $NLVERIFY_VENV when set.
set -euo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 1; fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
VENV="${NLVERIFY_VENV:-$REPO/.venv}"
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -m pip install --quiet -e "$REPO"
"$VENV/bin/python" -c "import verifier, bounds, models, vnnlib, lut; print('nlverify installed')"
