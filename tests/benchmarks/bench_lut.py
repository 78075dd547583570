"""Branching-point tables: accuracy against scipy, build time, size, lookup throughput.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_lut.py               # packaged tables, 1000 intervals/op
    python tests/benchmarks/bench_lut.py --build       # also time a rebuild of every table
    python tests/benchmarks/bench_lut.py --ranges      # pre-activation ranges on ../shared

Per op it prints: mean area reduction of the table point against the midpoint,
the fraction of intervals whose area is within 1% of a fine direct optimisation
(dense scan + scipy L-BFGS-B refinement of the same objective), the fraction no
larger than the midpoint's area, the same for the reference's inner-grid rule, the
table file size and lookups per second (CPU, one thread).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lut  # noqa: E402
from lut.objective import split_objective_1d, split_objective_mul  # noqa: E402


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _centred(c_lo: float, c_hi: float, w_lo: float, w_hi: float):
    def sample(rng: np.random.Generator, n: int) -> list[np.ndarray]:
        c, w = rng.uniform(c_lo, c_hi, n), _log_uniform(rng, w_lo, w_hi, n)
        return [c - w / 2, c + w / 2]

    return sample


def _positive(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    l = _log_uniform(rng, 1e-3, 10.0, n)
    return [l, l * (1.0 + _log_uniform(rng, 1e-3, 1e3, n))]


def _mul(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return _centred(-3, 3, 0.01, 6)(rng, n) + _centred(-3, 3, 0.01, 6)(rng, n)


#: Random interval distributions per table: centres and log-uniform widths spanning
#: the benchmark pre-activation ranges (see --ranges) and beyond.
SAMPLERS = {
    "Sigmoid": _centred(-12, 12, 0.01, 20),
    "Tanh": _centred(-6, 6, 0.01, 10),
    "Gelu": _centred(-8, 8, 0.01, 16),
    "Sin": _centred(-10, 10, 0.01, 6),
    "Cos": _centred(-10, 10, 0.01, 6),
    "Exp": _centred(-15, 5, 0.01, 15),
    "Reciprocal": _positive,
    "Sqrt": _positive,
    "Pow2": _centred(-3, 3, 0.01, 6),
    "Pow3": _centred(-3, 3, 0.01, 6),
    "Mul": _mul,
}


def sample_intervals(name: str, n: int, seed: int = 0) -> list[torch.Tensor]:
    """``n`` random intervals for table ``name`` (float64 tensors, 2 or 4 ends)."""
    ends = SAMPLERS[name](np.random.default_rng(seed), n)
    return [torch.from_numpy(e) for e in ends]


def make_objective(name: str, relax, ends: list[torch.Tensor]):
    """``t -> total gap area`` for table ``name`` on intervals ``ends``."""
    if name == lut.MUL:
        return split_objective_mul(relax, *ends)
    return split_objective_1d(relax, ends[0], ends[1])


def reference_areas(
    objective, like: torch.Tensor, scan: int = 256, maxiter: int = 200
) -> torch.Tensor:
    """Fine direct optimum: dense scan, then scipy L-BFGS-B on the bracket of the best.

    The objective is separable over intervals, so one bounded L-BFGS-B run over all
    split fractions (with vectorised central-difference gradients) refines every
    interval at once. The result is the best of the scan and the refinement.
    """
    ts = torch.arange(1, scan, dtype=torch.float64) / scan
    vals = torch.stack([objective(torch.full_like(like, float(t))) for t in ts])
    vals = torch.nan_to_num(vals, nan=math.inf)
    k = vals.argmin(0)
    best = vals.gather(0, k[None]).squeeze(0)
    t0 = ts[k].numpy()
    lo, hi = np.clip(t0 - 1.0 / scan, 1e-9, 1), np.clip(t0 + 1.0 / scan, 0, 1 - 1e-9)
    scale = torch.where(best > 0, best, torch.ones_like(best)).numpy()

    def fun(t: np.ndarray) -> tuple[float, np.ndarray]:
        tt = torch.from_numpy(t)
        h = 1e-7
        f = objective(tt).numpy() / scale
        g = (objective(tt + h).numpy() - objective(tt - h).numpy()) / (2 * h * scale)
        return float(np.nansum(f)), np.nan_to_num(g)

    res = minimize(
        fun,
        t0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-12},
    )
    refined = torch.nan_to_num(objective(torch.from_numpy(res.x)), nan=math.inf)
    return torch.minimum(best, refined)


def _table_areas(
    name: str, store: lut.TableStore, ends: list[torch.Tensor], objective, **kw
) -> torch.Tensor:
    if name == lut.MUL:
        p = lut.branching_points_mul(*ends, store=store, **kw)
    else:
        p = lut.branching_points(name, ends[0], ends[1], store=store, **kw)
    t = (p - ends[0]) / (ends[1] - ends[0])
    return objective(t)


def accuracy(name: str, store: lut.TableStore, n: int, seed: int = 0) -> dict[str, float]:
    """Accuracy metrics of table ``name`` on ``n`` random intervals."""
    ends = sample_intervals(name, n, seed)
    objective = make_objective(name, store.relaxation(name), ends)
    ref = reference_areas(objective, ends[0])
    mid = objective(torch.full_like(ends[0], 0.5))
    out: dict[str, float] = {}
    for label, kw in (("", {}), ("polish_", {"polish": True}), ("inner_", {"mode": "inner"})):
        area = _table_areas(name, store, ends, objective, **kw)
        pos = mid > 0
        out[label + "reduction"] = float((1 - area[pos] / mid[pos]).mean())
        out[label + "within1"] = float((area <= ref * 1.01 + 1e-300).double().mean())
        out[label + "le_mid"] = float((area <= mid).double().mean())
        out[label + "le_mid_tol"] = float((area <= mid * (1 + 1e-6)).double().mean())
    out["ref_reduction"] = float((1 - ref[mid > 0] / mid[mid > 0]).mean())
    return out


def throughput(name: str, store: lut.TableStore, n: int = 100_000, **kw) -> float:
    """Points per second for ``n`` float32 in-distribution intervals (one call)."""
    ends = [e.float() for e in sample_intervals(name, n, seed=1)]
    fn = (
        (lambda: lut.branching_points_mul(*ends, store=store, **kw))
        if name == lut.MUL
        else (lambda: lut.branching_points(name, ends[0], ends[1], store=store, **kw))
    )
    fn()
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def _print_row(
    name: str,
    acc: dict[str, float],
    size: int,
    build: float | None,
    rate: float,
    rate_polish: float,
) -> None:
    b = f"{build:7.1f}" if build is not None else "      -"
    print(
        f"{name:<10} {100 * acc['reduction']:6.2f}% {100 * acc['ref_reduction']:6.2f}% "
        f"{100 * acc['within1']:6.1f}% {100 * acc['le_mid']:6.1f}% {100 * acc['le_mid_tol']:6.1f}% "
        f"{100 * acc['polish_within1']:6.1f}% {100 * acc['polish_le_mid']:6.1f}% "
        f"{100 * acc['inner_within1']:6.1f}% {100 * acc['inner_le_mid']:6.1f}% "
        f"{size:8d} {b} {rate:10.3g} {rate_polish:10.3g}",
        flush=True,
    )


def run(args: argparse.Namespace) -> None:
    import branching.branch_points as bp

    torch.set_num_threads(1)
    names = args.ops.split(",") if args.ops else bp.available_tables()
    directory = Path(args.tables) if args.tables else lut.PACKAGED_DIR
    builds: dict[str, float] = {}
    if args.build:
        directory = Path(tempfile.mkdtemp(prefix="lut-bench-"))
        for name, seconds, _ in bp.build_all_tables(directory, names):
            builds[name] = seconds
    store = lut.TableStore(directory)
    bp.register_engine_relaxations(store)
    start = time.perf_counter()
    store.load_all(names)
    print(
        f"tables from {directory}; loading {len(names)} tables: "
        f"{time.perf_counter() - start:.3f} s; {args.n} intervals per op"
    )
    print(
        f"{'op':<10} {'reduc':>7} {'ref':>7} {'<=1%':>7} {'<=mid':>7} {'~mid':>7} "
        f"{'P<=1%':>7} {'P<=mid':>7} {'I<=1%':>7} {'I<=mid':>7} {'bytes':>8} {'build':>7} "
        f"{'pts/s':>10} {'P pts/s':>10}"
    )
    total = 0
    for name in names:
        size = lut.store.table_path(directory, name).stat().st_size
        total += size
        acc = accuracy(name, store, args.n)
        rate = throughput(name, store, args.throughput_n)
        rate_p = throughput(name, store, args.throughput_n // 10, polish=True)
        _print_row(name, acc, size, builds.get(name), rate, rate_p)
    print(f"total table bytes: {total}")
    print(
        "columns: reduc = mean area reduction vs midpoint (table point); ref = same for the "
        "scipy optimum; <=1% = within 1% of scipy; <=mid = area <= midpoint's; ~mid = with "
        "1e-6 relative tolerance; P = polish=True; I = inner-grid rule (reference)"
    )


def _vnnlib_box(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    pattern = r"\(\s*(<=|>=)\s+X_(\d+)\s+([-+0-9.eE]+)\s*\)"
    for op, i, v in re.findall(pattern, path.read_text()):
        if op == "<=":
            hi[int(i)] = min(hi[int(i)], float(v))
        else:
            lo[int(i)] = max(lo[int(i)], float(v))
    return lo, hi


def ranges(shared: Path, samples: int = 128) -> None:
    """Sampled input ranges of the nonlinear ops of the shared benchmarks (onnxruntime)."""
    import onnx
    import onnxruntime as ort

    ops = {"Sigmoid", "Tanh", "Sin", "Cos", "Pow", "Softmax", "Exp", "Sqrt", "Reciprocal", "Mul"}
    for csv in sorted(shared.glob("*/instances.csv")):
        rows = [r.split(",") for r in csv.read_text().splitlines() if r.strip()]
        seen = set()
        for onnx_rel, vnn_rel, *_ in rows:
            if onnx_rel in seen:
                continue
            seen.add(onnx_rel)
            model = onnx.load(csv.parent / onnx_rel)
            consts = {i.name for i in model.graph.initializer}
            consts |= {o for nd in model.graph.node if nd.op_type == "Constant" for o in nd.output}
            watch = [
                (nd.op_type, x)
                for nd in model.graph.node
                if nd.op_type in ops
                and not (nd.op_type == "Mul" and any(x in consts for x in nd.input))
                for x in nd.input
                if x and x not in consts
            ]
            if not watch:
                continue
            outs = {o.name for o in model.graph.output}
            for _, x in watch:
                if x not in outs:
                    model.graph.output.append(onnx.ValueInfoProto(name=x))
                    outs.add(x)
            sess = ort.InferenceSession(model.SerializeToString())
            inp = sess.get_inputs()[0]
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            lo, hi = _vnnlib_box(csv.parent / vnn_rel, int(np.prod(shape)))
            names = [o.name for o in sess.get_outputs()]
            rng = np.random.default_rng(0)
            ext: dict[str, list[float]] = {}
            for _ in range(samples):
                x = (lo + (hi - lo) * rng.random(lo.size)).reshape(shape).astype(np.float32)
                vals = dict(zip(names, sess.run(None, {inp.name: x}), strict=True))
                for op, name in watch:
                    e = ext.setdefault(op, [math.inf, -math.inf])
                    e[0], e[1] = (
                        min(e[0], float(vals[name].min())),
                        max(e[1], float(vals[name].max())),
                    )
            for op, (a, b) in sorted(ext.items()):
                print(
                    f"{csv.parent.name:<18} {Path(onnx_rel).name:<32} {op:<8} [{a:9.3g}, {b:9.3g}]"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ops", default=None)
    parser.add_argument("--tables", default=None, help="table folder (default: packaged)")
    parser.add_argument("--build", action="store_true", help="rebuild into a temp folder, timed")
    parser.add_argument("--throughput-n", type=int, default=100_000)
    parser.add_argument("--ranges", action="store_true", help="measure benchmark input ranges")
    args = parser.parse_args()
    if args.ranges:
        ranges(ROOT.parent / "shared" / "benchmarks")
        return
    run(args)


if __name__ == "__main__":
    main()
