#!/usr/bin/env bash
# VNN-COMP: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Converts and caches the instance (imported graph, parsed spec; checks the tables).
# Never verifies. Exits non-zero when the instance cannot be loaded.
set -uo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 1; fi
if [ "$#" -ne 4 ]; then echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2; exit 1; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/_env.sh"
exec "$PY" -m verifier.vnncomp prepare "$2" "$3" "$4"
