"""``verify bounds MODEL SPEC``: print sound output bounds per disjunct row."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from verifier.deadline import Deadline
from verifier.incomplete import stack_rows
from verifier.pipeline import load_problem


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="ONNX model")
    parser.add_argument("spec", type=Path, help="VNN-LIB property")
    parser.add_argument("--method", choices=("ibp", "crown", "alpha-crown"), default="crown")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--iterations", type=int, default=30, help="alpha-CROWN iterations")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args: argparse.Namespace, deadline: Deadline) -> int:
    """Print, per input box and per case row, ``lower <= C·y <= upper`` and ``d``."""
    problem = load_problem(args.model, args.spec)
    bg = BoundGraph(problem.graph)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    shape = (1,) + bg.input_shape
    print(f"{'box':>4} {'case':>5} {'row':>4} {'lower':>14} {'upper':>14} {'d':>12}  refuted")
    for gi, group in enumerate(problem.groups):
        rows = stack_rows(group.constraints)
        lo = torch.tensor(group.lower, dtype=dtype).reshape(shape)
        hi = torch.tensor(group.upper, dtype=dtype).reshape(shape)
        C = torch.tensor(rows.C, dtype=dtype).unsqueeze(0)
        res = compute_bounds(
            bg, lo, hi, C, method=args.method, alpha=AlphaConfig(iterations=args.iterations)
        )
        assert res.upper is not None
        low, up = res.lower[0].numpy(), res.upper[0].numpy()
        local_row = np.zeros(len(rows.d), dtype=int)
        for i in range(1, len(rows.d)):
            same = rows.case_of_row[i] == rows.case_of_row[i - 1]
            local_row[i] = local_row[i - 1] + 1 if same else 0
        for r in range(len(rows.d)):
            case = group.case_indices[rows.case_of_row[r]]
            mark = "yes" if low[r] > rows.d[r] else ""
            print(
                f"{gi:>4} {case:>5} {local_row[r]:>4} {low[r]:>14.6g} {up[r]:>14.6g} "
                f"{rows.d[r]:>12.6g}  {mark}"
            )
    return 0
