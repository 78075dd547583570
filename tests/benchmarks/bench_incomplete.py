"""Incomplete verification on the shared VNN-COMP benchmarks: CROWN vs alpha-CROWN.

    python tests/benchmarks/bench_incomplete.py [--per-benchmark N] [--bench NAME ...]
        [--dtype float64] [--alpha-iterations 30] [--methods crown alpha] [--per-instance]

(Run it with ``PYTHONPATH`` set to another checkout to measure that engine.)

For every selected instance the spec's cases are bounded with CROWN, with
alpha-CROWN optimising the output bound's relaxations only ("alpha-out") and with
alpha-CROWN that also optimises the relaxations behind intermediate bounds ("alpha",
the default of ``verify``); no falsifier, no branching. An instance counts as
proved by a method when every case is refuted. Wrong answers (proved while
expected.csv says sat) are counted separately and must be zero. Prints a table
per benchmark: instances, expected unsat, proved per method, wrong, mean seconds
per instance for each method.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path

from bounds import BoundGraph
from models import load_onnx
from verifier.attack import group_cases
from verifier.config import BoundsConfig
from verifier.incomplete import bound_group, refuted_cases, rounding_margin, stack_rows
from vnnlib import load_vnnlib

BENCH = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


METHODS = (
    ("crown", "crown", True),
    ("alpha_out", "alpha-crown", False),
    ("alpha", "alpha-crown", True),
)


def prove(bg: BoundGraph, groups, method: str, cfg: BoundsConfig) -> bool:
    for g in groups:
        rows = stack_rows(g.constraints)
        lb = bound_group(bg, g.lower, g.upper, rows, method, cfg, "cpu", None)
        margin = rounding_margin(bg.source, g.lower, g.upper, rows)
        if not refuted_cases(lb, rows, len(g.constraints), margin).all():
            return False
    return True


def run_benchmark(
    name: str, limit: int, cfg: BoundsConfig, methods=METHODS, per_instance: bool = False
) -> dict:
    base = BENCH / name
    rows = list(csv.DictReader(open(base / "expected.csv")))[:limit]
    graphs: dict[str, BoundGraph] = {}
    out = {"n": 0, "unsat": 0, "wrong": 0}
    for key, _, _ in METHODS:
        out[key] = out["t_" + key] = 0
    for r in rows:
        if r["onnx"] not in graphs:
            graphs[r["onnx"]] = BoundGraph(load_onnx(base / r["onnx"]))
        bg = graphs[r["onnx"]]
        groups = group_cases(load_vnnlib(base / r["vnnlib"]).cases)
        out["n"] += 1
        out["unsat"] += r["expected"] == "unsat"
        for key, method, inter in methods:
            t0 = time.perf_counter()
            ok = prove(bg, groups, method, replace(cfg, alpha_intermediate=inter))
            out["t_" + key] += time.perf_counter() - t0
            out[key] += ok
            out["wrong"] += ok and r["expected"] == "sat"
            if per_instance:
                dt = time.perf_counter() - t0
                print(f"  {r['vnnlib']:40} {key:9} {'proved' if ok else '-':7} {dt:7.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-benchmark", type=int, default=10)
    ap.add_argument("--bench", nargs="*", default=None)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--alpha-iterations", type=int, default=30)
    ap.add_argument("--methods", nargs="*", default=[k for k, _, _ in METHODS])
    ap.add_argument("--per-instance", action="store_true", help="one line per instance")
    args = ap.parse_args()
    methods = [m for m in METHODS if m[0] in args.methods]
    cfg = BoundsConfig(dtype=args.dtype, alpha_iterations=args.alpha_iterations)
    names = args.bench or sorted(p.name for p in BENCH.iterdir() if p.is_dir())
    print(
        f"{'benchmark':16} {'inst':>4} {'unsat':>5} {'CROWN':>5} {'a-out':>5} {'alpha':>5} "
        f"{'wrong':>5} {'s CROWN':>8} {'s a-out':>8} {'s alpha':>8}",
        flush=True,
    )
    for name in names:
        r = run_benchmark(name, args.per_benchmark, cfg, methods, args.per_instance)
        n = max(1, r["n"])
        print(
            f"{name:16} {r['n']:>4} {r['unsat']:>5} {r['crown']:>5} {r['alpha_out']:>5} "
            f"{r['alpha']:>5} {r['wrong']:>5} {r['t_crown'] / n:>8.2f} "
            f"{r['t_alpha_out'] / n:>8.2f} {r['t_alpha'] / n:>8.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
