"""Wall time and peak memory of CROWN and alpha-CROWN on real VNN-COMP models.

Each measurement runs in a fresh subprocess (peak RSS is per process), on the
first disjunct group of one spec per model:

    python tests/benchmarks/bench_bounds.py [--device cpu|cuda] [--repeats N]

Methods: CROWN, alpha-CROWN on the output bound's relaxations only ("alpha-out") and
alpha-CROWN that also optimises the intermediate bounds (the default). Prints one
table row per (model, method): load time, bound time (best of N),
peak resident memory, and the mean lower bound minus threshold (higher is
tighter).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO.parent / "shared" / "benchmarks"
CASES = [
    (
        "eran sigmoid 6x200",
        "eran_2021/nets/ffnnSIGMOID__Point_6x200.onnx",
        "eran_2021/specs/mnist/mnist_spec_idx_7259_eps_0.01200.vnnlib",
    ),
    ("vit pgd_2_3_16", "vit_2023/onnx/pgd_2_3_16.onnx", "vit_2023/vnnlib/pgd_2_3_16_4021.vnnlib"),
]

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from bounds import AlphaConfig, BoundGraph, compute_bounds
from models import load_onnx
from vnnlib import load_vnnlib
onnx_path, spec_path, method, device, repeats = sys.argv[1:6]
intermediate = method != "alpha-out"
method = "alpha-crown" if method == "alpha-out" else method
t0 = time.perf_counter(); graph = load_onnx(onnx_path); bg = BoundGraph(graph)
t_load = time.perf_counter() - t0
lo, hi, props = load_vnnlib(spec_path).groups()[0]
shape = (1,) + bg.input_shape
l = torch.tensor(lo, dtype=torch.float32, device=device).reshape(shape)
u = torch.tensor(hi, dtype=torch.float32, device=device).reshape(shape)
C = torch.tensor(np.concatenate([c for c, _ in props]), dtype=torch.float32, device=device)[None]
d = torch.tensor(np.concatenate([d for _, d in props]), dtype=torch.float32, device=device)[None]
best = float("inf")
for _ in range(int(repeats)):
    t0 = time.perf_counter()
    r = compute_bounds(bg, l, u, C, method=method, bound_upper=False, thresholds=d,
                       alpha=AlphaConfig(iterations=20, intermediate=intermediate))
    if device == "cuda":
        torch.cuda.synchronize()
    best = min(best, time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device == "cuda":
    peak = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps({"load": t_load, "time": best, "peak_mb": peak,
                  "margin": float((r.lower - d).mean()), "proved": bool((r.lower > d).any())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if not BENCH.is_dir():
        sys.exit(f"{BENCH} not found")
    print(f"{'model':22} {'method':12} {'load s':>7} {'bound s':>8} {'peak MB':>8} {'margin':>10}")
    for label, onnx_rel, spec_rel in CASES:
        for method in ("crown", "alpha-out", "alpha-crown"):
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(BENCH / onnx_rel),
                    str(BENCH / spec_rel),
                    method,
                    args.device,
                    str(args.repeats),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{label:22} {method:12} {r['load']:7.2f} {r['time']:8.2f} "
                f"{r['peak_mb']:8.0f} {r['margin']:10.4f}"
            )


if __name__ == "__main__":
    main()
