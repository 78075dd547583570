"""Complete verification (falsifier, bounds, branch-and-bound) on the shared VNN-COMP rows.

Each instance runs ``verify MODEL SPEC --json`` in its own process with the instance's
timeout capped at ``--cap`` seconds, and is compared with ``expected`` and the reference's
competition answer (``abcrown_result``). Prints one line per instance and a table per
benchmark; exits 1 on any wrong answer.

    python tests/benchmarks/bench_complete.py --bench acasxu_2023 --cap 60 [--rows 0:20]
        [--set bab.heuristic=babsr] [--out results.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "benchmarks"


def _rows(bench: str, sl: str | None) -> list[dict[str, str]]:
    with open(SHARED / bench / "expected.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if sl:
        a, _, b = sl.partition(":")
        rows = rows[int(a or 0) : int(b) if b else None]
    return rows


def run_one(bench: str, row: dict[str, str], cap: float, sets: list[str]) -> dict:
    folder = SHARED / bench
    timeout = min(float(row["timeout"]), cap)
    cmd = [
        sys.executable,
        "-m",
        "verifier.cli",
        str(folder / row["onnx"]),
        str(folder / row["vnnlib"]),
        "--timeout",
        str(timeout),
        "--json",
    ]
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout + 30, cwd=ROOT, check=False
        )
        wall = time.perf_counter() - start
        data = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
        status = data.get("status", f"error({out.returncode})")
        stop = data.get("stop", "")
        stats = data.get("stats", {})
    except subprocess.TimeoutExpired:
        wall, status, stop, stats = time.perf_counter() - start, "killed", "killed", {}
    expected = row["expected"]
    wrong = (status == "sat" and expected == "unsat") or (status == "unsat" and expected == "sat")
    return {
        "bench": bench,
        "onnx": row["onnx"],
        "vnnlib": row["vnnlib"],
        "timeout": timeout,
        "status": status,
        "stop": stop,
        "time": round(wall, 2),
        "over": round(wall - timeout, 2),
        "expected": expected,
        "abcrown": row.get("abcrown_result", ""),
        "abcrown_time": row.get("abcrown_time", ""),
        "wrong": wrong,
        "domains": stats.get("bab_domains", 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", nargs="+", required=True)
    parser.add_argument("--cap", type=float, default=60.0)
    parser.add_argument("--rows", default=None, help="slice of rows, e.g. 0:20")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = []
    for bench in args.bench:
        for row in _rows(bench, args.rows):
            r = run_one(bench, row, args.cap, args.sets)
            results.append(r)
            flag = "  WRONG" if r["wrong"] else ""
            print(
                f"{bench} {Path(r['onnx']).name} {Path(r['vnnlib']).name}: {r['status']} "
                f"({r['stop']}) {r['time']} s, expected {r['expected']}, "
                f"abcrown {r['abcrown']} {r['abcrown_time']}, domains {r['domains']}{flag}",
                flush=True,
            )
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(results[0]))
            w.writeheader()
            w.writerows(results)
    print()
    print(
        "| benchmark | rows | sat | unsat | unknown | timeout | other | wrong | total s |"
        " abcrown sat | abcrown unsat | max overrun s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for bench in args.bench:
        rs = [r for r in results if r["bench"] == bench]
        c = Counter(r["status"] for r in rs)
        ab = Counter(r["abcrown"] for r in rs)
        other = len(rs) - sum(c[k] for k in ("sat", "unsat", "unknown", "timeout"))
        print(
            f"| {bench} | {len(rs)} | {c['sat']} | {c['unsat']} | {c['unknown']} | "
            f"{c['timeout']} | {other} | {sum(r['wrong'] for r in rs)} | "
            f"{sum(r['time'] for r in rs):.0f} | {ab['sat']} | {ab['unsat']} | "
            f"{max((r['over'] for r in rs), default=0):.2f} |"
        )
    return 1 if any(r["wrong"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
