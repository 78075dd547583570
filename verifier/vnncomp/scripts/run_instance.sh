#!/usr/bin/env bash
# VNN-COMP: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS_FILE TIMEOUT
# Writes sat (+ counterexample), unsat, timeout or unknown to RESULTS_FILE; always exits 0.
set -uo pipefail
if [ "${1:-}" != "v1" ]; then echo "expected version string v1, got '${1:-}'" >&2; exit 0; fi
if [ "$#" -ne 6 ]; then echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS TIMEOUT" >&2; exit 0; fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/_env.sh"
RESULTS="$5"
rm -f "$RESULTS"
# The engine stops itself at TIMEOUT; the hard kill is only a safety net.
KILL_AFTER=$(python3 -c "import math,sys; print(math.ceil(float(sys.argv[1])) + 10)" "$6")
timeout -k 5 "$KILL_AFTER" "$PY" -m verifier.vnncomp run "$2" "$3" "$4" "$RESULTS" "$6" >/dev/null
STATUS=$?
if [ ! -s "$RESULTS" ]; then
    if [ "$STATUS" -eq 124 ] || [ "$STATUS" -eq 137 ]; then echo timeout > "$RESULTS"; else echo unknown > "$RESULTS"; fi
fi
exit 0
