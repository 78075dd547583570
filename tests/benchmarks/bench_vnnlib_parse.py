"""Throughput of the VNN-LIB parser (a script, not a pytest test).

Usage::

    python tests/benchmarks/bench_vnnlib_parse.py [--repeat N] [--synthetic-mb MB]

Prints parse (scan + AST) and normalise (DNF + arrays) times for every shared spec under
``../shared/benchmarks`` (or ``$NLVERIFY_SHARED/benchmarks``), the largest one on its own,
a generated spec of about ``--synthetic-mb`` megabytes with thousands of disjuncts written
like real specs, and a smaller one (``--linear-mb``) made of linear terms, the slow path.
Times are process CPU time (robust on a busy machine), best of ``--repeat`` runs; the
in-memory cache is not involved.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
try:
    import vnnlib  # noqa: F401
except ModuleNotFoundError:  # running from a checkout without an install
    sys.path.insert(0, str(REPO))

from vnnlib.files import read_text  # noqa: E402
from vnnlib.loader import cyclic_gc_paused, parse_vnnlib  # noqa: E402
from vnnlib.normalize import normalize  # noqa: E402
from vnnlib.parser import parse  # noqa: E402
from vnnlib.tokenizer import TOKEN_RE  # noqa: E402

SHARED = Path(os.environ.get("NLVERIFY_SHARED", REPO.parent / "shared"))


def best_times(text: str, repeat: int) -> tuple[float, float, float, float, int]:
    """Best seconds of (scan only, parse, normalise, ``parse_vnnlib``) and the case count.

    ``parse_vnnlib`` is the public entry point (parse + normalise with the cyclic garbage
    collector paused); the split parse/normalise times are measured the same way.
    """
    best = [float("inf")] * 4
    cases = 0
    for _ in range(repeat):
        t0 = time.process_time()
        for _m in TOKEN_RE.finditer(text):
            pass
        t1 = time.process_time()
        with cyclic_gc_paused():
            parsed = parse(text)
            t2 = time.process_time()
            normalize(parsed)
            t3 = time.process_time()
        del parsed
        t4 = time.process_time()
        cases = len(parse_vnnlib(text).cases)
        t5 = time.process_time()
        best = [min(b, t) for b, t in zip(best, (t1 - t0, t2 - t1, t3 - t2, t5 - t4), strict=True)]
    return best[0], best[1], best[2], best[3], cases


def report(name: str, text: str, repeat: int) -> float:
    """Print one line of timings; returns the ``parse_vnnlib`` seconds."""
    scan, parse_s, norm_s, total, cases = best_times(text, repeat)
    mb = len(text.encode()) / 1e6
    print(
        f"{name:60s} {mb:7.3f} MB {cases:6d} cases | scan {scan * 1e3:7.1f} ms  "
        f"parse {parse_s * 1e3:7.1f} ms  normalise {norm_s * 1e3:7.1f} ms | "
        f"parse_vnnlib {total * 1e3:7.1f} ms = {mb / total:5.1f} MB/s"
    )
    return total


def shared_specs() -> list[Path]:
    root = SHARED / "benchmarks"
    return sorted(p for p in root.glob("*/**/*") if p.name.endswith((".vnnlib", ".vnnlib.gz")))


def _disjunct(rng: random.Random, n_out: int, linear: bool) -> str:
    """One ``(and ...)`` of 12 output constraints; one in eight also narrows input X_0."""
    atoms = []
    for _ in range(12):
        a, b = rng.sample(range(n_out), 2)
        c = rng.uniform(-5, 5)
        if linear:
            atoms.append(f"(<= (+ Y_{a} (* -1 Y_{b})) {c!r})")
        elif rng.random() < 0.5:
            atoms.append(f"(>= Y_{a} Y_{b})")
        else:
            atoms.append(f"({rng.choice(['<=', '>='])} Y_{a} {c!r})")
    if rng.random() < 0.125:  # one of four slices of X_0's range (which is [0, 0.01])
        k = rng.randrange(4)
        atoms.append(f"(>= X_0 {k * 0.0025!r}) (<= X_0 {(k + 1) * 0.0025!r})")
    return "  (and " + " ".join(atoms) + ")"


def synthetic_spec(target_mb: float, linear: bool = False, seed: int = 0) -> str:
    """A spec of about ``target_mb`` MB: a 3072-input box and one ``or`` of many ``and``s.

    Each disjunct holds 12 output constraints over 10 outputs: with ``linear`` they are
    linear terms ``(<= (+ Y_1 (* -1 Y_7)) 0.5)``, otherwise (like real specs) comparisons
    ``(>= Y_1 Y_7)`` and bounds ``(<= Y_3 0.25)``. One disjunct in eight also narrows
    X_0 to one of four slices of its range, so the spec has five distinct input boxes.
    """
    rng = random.Random(seed)
    n_in, n_out = 3072, 10
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lo = rng.uniform(-1, 1) if i else 0.0
        lines.append(f"(assert (>= X_{i} {lo!r}))\n(assert (<= X_{i} {lo + 0.01!r}))")
    lines.append("(assert (or")
    size = sum(len(line) + 1 for line in lines)
    while size < target_mb * 1e6:
        lines.append(_disjunct(rng, n_out, linear))
        size += len(lines[-1]) + 1
    lines.append("))")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--synthetic-mb", type=float, default=20.0)
    ap.add_argument("--linear-mb", type=float, default=2.0)
    args = ap.parse_args(argv)
    files = shared_specs()
    if files:
        total_bytes = total_s = 0.0
        for path in files:
            text = read_text(path)
            total_s += report(str(path.relative_to(SHARED / "benchmarks")), text, args.repeat)
            total_bytes += len(text.encode())
        print(
            f"\nall {len(files)} shared specs: {total_bytes / 1e6:.2f} MB in {total_s:.3f} s "
            f"= {total_bytes / 1e6 / total_s:.1f} MB/s"
        )
        largest = max(files, key=lambda p: p.stat().st_size)
        print("largest shared spec:")
        report(str(largest.relative_to(SHARED / "benchmarks")), read_text(largest), args.repeat)
    else:
        print(f"no shared specs under {SHARED / 'benchmarks'}; skipping them")
    print("synthetic specs:")
    for mb, linear in ((args.synthetic_mb, False), (args.linear_mb, True)):
        text = synthetic_spec(mb, linear=linear)
        kind = "linear terms" if linear else "comparisons"
        report(f"synthetic, {kind} ({text.count('(and ')} disjuncts)", text, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
