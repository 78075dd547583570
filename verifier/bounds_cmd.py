"""``verify bounds MODEL SPEC``: print sound output bounds per disjunct row."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bounds import AlphaConfig, BoundGraph, compute_bounds
from verifier.config import VerifyConfig
from verifier.deadline import Deadline
from verifier.incomplete import GroupRows, stack_rows
from verifier.pipeline import load_problem


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``verify bounds`` (settings options are added by the CLI)."""
    parser.add_argument("model", type=Path, help="ONNX model")
    parser.add_argument("spec", type=Path, help="VNN-LIB property")
    parser.add_argument(
        "--method",
        choices=("ibp", "crown", "alpha-crown"),
        default=None,
        help="bound method (default: bounds.method)",
    )
    parser.add_argument(
        "--dtype", dest="bounds_dtype", choices=("float32", "float64"), default=None
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="alpha-CROWN iterations (bounds.alpha_*)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The command's flags as settings overrides (``bounds.dtype``, ``bounds.alpha_*``)."""
    out: dict[str, Any] = {}
    if args.bounds_dtype is not None:
        out["bounds__dtype"] = args.bounds_dtype
    if args.iterations is not None:
        out["bounds__alpha_iterations"] = args.iterations
    return out


def _local_rows(rows: GroupRows) -> np.ndarray:
    local = np.zeros(len(rows.d), dtype=int)
    for i in range(1, len(rows.d)):
        same = rows.case_of_row[i] == rows.case_of_row[i - 1]
        local[i] = local[i - 1] + 1 if same else 0
    return local


def bound_rows(args: argparse.Namespace, config: VerifyConfig) -> list[dict[str, Any]]:
    """One record per (box, case, row): lower, upper, d and whether the row is refuted."""
    cfg = config.bounds
    problem = load_problem(args.model, args.spec)
    bg = BoundGraph(problem.graph)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    shape = (1,) + bg.input_shape
    alpha = AlphaConfig(
        iterations=cfg.alpha_iterations, lr=cfg.alpha_lr, intermediate=cfg.alpha_intermediate
    )
    records = []
    for gi, group in enumerate(problem.groups):
        rows = stack_rows(group.constraints)
        lo = torch.tensor(group.lower, dtype=dtype).reshape(shape)
        hi = torch.tensor(group.upper, dtype=dtype).reshape(shape)
        C = torch.tensor(rows.C, dtype=dtype).unsqueeze(0)
        res = compute_bounds(
            bg, lo, hi, C, method=cfg.method, alpha=alpha, crown_max_elements=cfg.crown_max_elements
        )
        assert res.upper is not None
        low, up = res.lower[0].detach().numpy(), res.upper[0].detach().numpy()
        for r, local in enumerate(_local_rows(rows)):
            records.append(
                {
                    "box": gi,
                    "case": int(group.case_indices[rows.case_of_row[r]]),
                    "row": int(local),
                    "lower": float(low[r]),
                    "upper": float(up[r]),
                    "d": float(rows.d[r]),
                    "refuted": bool(low[r] > rows.d[r]),
                }
            )
    return records


def run(args: argparse.Namespace, deadline: Deadline, config: VerifyConfig) -> int:
    """Print, per input box and per case row, ``lower <= C·y <= upper`` and ``d``."""
    records = bound_rows(args, config)
    if args.json:
        print(json.dumps({"rows": records, "config": config.to_dict()}))
        return 0
    print(f"{'box':>4} {'case':>5} {'row':>4} {'lower':>14} {'upper':>14} {'d':>12}  refuted")
    for r in records:
        mark = "yes" if r["refuted"] else ""
        print(
            f"{r['box']:>4} {r['case']:>5} {r['row']:>4} {r['lower']:>14.6g} "
            f"{r['upper']:>14.6g} {r['d']:>12.6g}  {mark}"
        )
    return 0
