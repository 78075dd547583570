"""Old vs new bounding cost on attention, product and LSTM graphs (issue 10).

Runs CROWN and alpha-CROWN (with intermediate parameters) on one spec per model,
each measurement in a fresh subprocess (peak RSS is per process), once with this
checkout and once with another checkout of the engine (``--old``, e.g. a git
worktree of the base commit), alternating so that machine load hits both alike:

    git worktree add /tmp/nlverify-old 62f8586
    python tests/benchmarks/bench_attention.py --old /tmp/nlverify-old [--dtype float32]

Prints one row per (model, method): bound seconds (the first ``compute_bounds`` call
of the process, lazy imports included), whole-process seconds, peak resident MB of the
process for old and new, bounding MB (the high-water resident memory during
``compute_bounds`` minus the resident memory just before it: torch, the model and the
spec, about 300 MB, are not the bound's cost; Linux ``/proc/self/clear_refs``), the
ratios, and the largest amount by which a new lower bound is below the old one (``<= 0``
means never looser). Run it with ``OMP_NUM_THREADS=1`` for single-thread numbers.

``--tightness`` instead compares CROWN lower bounds row by row (float64) on the
first 20 vit_2023 rows and all ml4acopf_2023 rows, every disjunct group.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks"
ZOO = REPO / "models" / "zoo_data"
CASES = [
    ("vit pgd_2_3_16", BENCH / "vit_2023/onnx/pgd_2_3_16.onnx",
     BENCH / "vit_2023/vnnlib/pgd_2_3_16_4021.vnnlib"),
    ("vit ibp_3_3_8", BENCH / "vit_2023/onnx/ibp_3_3_8.onnx",
     BENCH / "vit_2023/vnnlib/ibp_3_3_8_9119.vnnlib"),
    ("zoo vit", ZOO / "vit.onnx", ZOO / "vit.vnnlib"),
    ("zoo lstm", ZOO / "lstm.onnx", ZOO / "lstm.vnnlib"),
    ("ml4acopf 14_ieee", BENCH / "ml4acopf_2023/onnx/14_ieee_ml4acopf.onnx",
     BENCH / "ml4acopf_2023/vnnlib/14_ieee_prop1.vnnlib"),
]  # fmt: skip

CHILD = r"""
import json, resource, sys, time
t_start = time.perf_counter()
import numpy as np, torch
from bounds import AlphaConfig, BoundGraph, compute_bounds
from models import load_onnx
from vnnlib import load_vnnlib
onnx_path, spec_path, method, dtype, iterations = sys.argv[1:6]
dt = getattr(torch, dtype)
bg = BoundGraph(load_onnx(onnx_path))
lo, hi, props = load_vnnlib(spec_path).groups()[0]
shape = (1,) + bg.input_shape
l = torch.tensor(lo, dtype=dt).reshape(shape)
u = torch.tensor(hi, dtype=dt).reshape(shape)
C = torch.tensor(np.concatenate([c for c, _ in props]), dtype=dt)[None]
d = torch.tensor(np.concatenate([d for _, d in props]), dtype=dt)[None]
def status_mb(key):
    with open("/proc/self/status") as f:
        return int(f.read().split(key + ":")[1].split()[0]) / 1024
try:  # the baseline: resident memory just before bounding; then restart the high-water mark
    base, peak_before = status_mb("VmRSS"), status_mb("VmHWM")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    base = peak_before = None
t0 = time.perf_counter()
r = compute_bounds(bg, l, u, C, method=method, bound_upper=False, thresholds=d,
                   alpha=AlphaConfig(iterations=int(iterations), intermediate=True))
t_bound = time.perf_counter() - t0
if base is None:
    peak, above = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, float("nan")
else:
    hwm = status_mb("VmHWM")
    peak, above = max(peak_before, hwm), hwm - base
print(json.dumps({"time": t_bound, "process": time.perf_counter() - t_start, "peak_mb": peak,
                  "base_mb": base, "above_mb": above, "lower": r.lower[0].tolist()}))
"""

TIGHT = r"""
import csv, json, sys
import numpy as np, torch
from bounds import BoundGraph, compute_bounds
from models import load_onnx
from vnnlib import load_vnnlib
out = []
graphs = {}
for path in sys.argv[1:]:
    onnx_path, spec_path = path.split("|")
    if onnx_path not in graphs:
        graphs[onnx_path] = BoundGraph(load_onnx(onnx_path))
    bg = graphs[onnx_path]
    for lo, hi, props in load_vnnlib(spec_path).groups():
        shape = (1,) + bg.input_shape
        l = torch.tensor(lo, dtype=torch.float64).reshape(shape)
        u = torch.tensor(hi, dtype=torch.float64).reshape(shape)
        C = torch.tensor(np.concatenate([c for c, _ in props]), dtype=torch.float64)[None]
        r = compute_bounds(bg, l, u, C, method="crown", bound_upper=False)
        out.append(r.lower[0].tolist())
print(json.dumps(out))
"""


def _run(root: Path, code: str, args: list[str]) -> dict | list:
    env = dict(os.environ, PYTHONPATH=str(root))
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=root
    )
    if res.returncode != 0:
        raise RuntimeError(f"{root}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(old: Path, dtype: str, iterations: int, only: list[str] | None) -> None:
    head = f"{'model':18} {'method':12} {'bound s old/new':>17} {'x':>6} {'process s old/new':>18}"
    head += f" {'peak MB old/new':>16} {'x':>5} {'bounding MB old/new':>20} {'x':>5}"
    print(head + f" {'max(old-new)':>12}", flush=True)
    for label, onnx_path, spec_path in CASES:
        if only and not any(o in label for o in only):
            continue
        for method in ("crown", "alpha-crown"):
            args = [str(onnx_path), str(spec_path), method, dtype, str(iterations)]
            o = _run(old, CHILD, args)
            n = _run(REPO, CHILD, args)
            gap = max(a - b for a, b in zip(o["lower"], n["lower"]))
            print(
                f"{label:18} {method:12} {o['time']:8.2f}/{n['time']:<8.2f}"
                f" {o['time'] / n['time']:5.1f}x {o['process']:8.2f}/{n['process']:<9.2f}"
                f" {o['peak_mb']:7.0f}/{n['peak_mb']:<8.0f} {n['peak_mb'] / o['peak_mb']:5.2f}"
                f" {o['above_mb']:9.0f}/{n['above_mb']:<10.0f} {n['above_mb'] / o['above_mb']:5.2f}"
                f" {gap:12.2e}",
                flush=True,
            )


def tightness(old: Path) -> None:
    for bench, limit in (("vit_2023", 20), ("ml4acopf_2023", None)):
        rows = list(csv.reader(open(BENCH / bench / "instances.csv")))[:limit]
        args = [f"{BENCH / bench / r[0]}|{BENCH / bench / r[1]}" for r in rows if r]
        t0 = time.perf_counter()
        o = _run(old, TIGHT, args)
        t1 = time.perf_counter()
        n = _run(REPO, TIGHT, args)
        t2 = time.perf_counter()
        gaps = [a - b for go, gn in zip(o, n) for a, b in zip(go, gn)]
        print(
            f"{bench}: {len(args)} instances, {len(gaps)} rows (CROWN, float64):"
            f" max(old - new) = {max(gaps):.2e}, min = {min(gaps):.2e};"
            f" seconds old {t1 - t0:.1f}, new {t2 - t1:.1f}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="checkout of the old engine")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--iterations", type=int, default=20, help="alpha-CROWN iterations")
    ap.add_argument("--only", nargs="*", help="substrings of model labels to run")
    ap.add_argument("--tightness", action="store_true")
    args = ap.parse_args()
    if not BENCH.is_dir():
        sys.exit(f"{BENCH} not found")
    if args.tightness:
        tightness(args.old.resolve())
    else:
        table(args.old.resolve(), args.dtype, args.iterations, args.only)


if __name__ == "__main__":
    main()
