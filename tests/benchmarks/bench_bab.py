"""Branch-and-bound throughput: domains bounded per second and peak RSS.

Each (target, setting) runs in a fresh process for ``--seconds`` of search on one case that
the root bound cannot refute, so the rate is measured on a search in full swing (the root
bound and the shortcuts are excluded from the rate, not from the RSS).

Targets: eran ffnnSIGMOID 6x200 (mnist_spec_idx_6553, case 0, CROWN root intervals), and
the zoo MLPs with two inputs free over a wide box (activation splitting forced).

    python tests/benchmarks/bench_bab.py [--seconds 20] [--targets eran mlp_sigmoid]
        [--set "heuristic='babsr'"] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ERAN = ROOT.parent / "shared" / "benchmarks" / "eran_2021"

CHILD = r"""
import json, math, resource, sys, time
import torch
sys.path.insert(0, {root!r})
from bounds import BoundGraph
from bounds.deadline import Deadline
from branching import BabConfig, BabProblem, run_bab
from models import load_onnx, evaluate
from vnnlib import load_vnnlib

target, seconds, extra, dtype = {target!r}, {seconds!r}, {extra!r}, getattr(torch, {dtype!r})
torch.set_num_threads({threads!r})
if target == "eran":
    g = load_onnx({eran_net!r})
    spec = load_vnnlib({eran_spec!r}, n_inputs=784, n_outputs=10)
    case = spec.cases[0]
    shape = (1,) + tuple(g.inputs[0].shape)
    lo = torch.tensor(case.lower, dtype=dtype).reshape(shape)
    hi = torch.tensor(case.upper, dtype=dtype).reshape(shape)
    C, d = torch.tensor(case.C, dtype=dtype), torch.tensor(case.d, dtype=dtype)
else:
    from models.zoo import zoo_model_path
    g = load_onnx(zoo_model_path(target))
    centre = torch.linspace(-0.3, 0.4, 8, dtype=dtype)
    lo, hi = centre.clone(), centre.clone()
    for i in (2, 5):
        lo[i], hi[i] = centre[i] - 2.0, centre[i] + 2.0
    lo, hi = lo.reshape(1, 1, 8), hi.reshape(1, 1, 8)
    C = torch.tensor([[1.0, -1.0, 0.0, 0.0]], dtype=dtype)
    pts = lo + (hi - lo) * torch.rand(4096, 1, 8, dtype=dtype)
    with torch.no_grad():
        m = (evaluate(g, pts).reshape(4096, -1) @ C.T).min()
    d = (m - 1e-3).reshape(1)  # below every sampled value: the search has to work
bg = BoundGraph(g)
cfg = BabConfig(**dict(split="activation", **eval("dict(" + extra + ")")))
marks = []
def progress(s):
    marks.append((time.monotonic(), s.domains_bounded))
start = time.monotonic()
out = run_bab(bg, BabProblem(lo, hi, C, d, d), cfg, Deadline.after(seconds), progress=progress)
first = marks[0] if marks else (start, 0)
last = marks[-1] if marks else (start, 0)
rate = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
print(json.dumps(dict(target=target, setting=extra or "default", reason=out.reason.value,
    domains=out.stats.domains_bounded, rounds=out.stats.rounds, rate=round(rate, 1),
    worst=float("%.3g" % out.stats.worst_margin),
    rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--targets", nargs="+", default=["eran", "mlp_sigmoid", "mlp_tanh", "mlp_relu", "mlp_gelu"]
    )
    parser.add_argument("--set", dest="sets", action="append", default=None)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = args.sets or [""]
    print(
        "| target | setting | stop | domains | rounds | domains/s (search) | worst margin "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for target in args.targets:
        for extra in settings:
            code = CHILD.format(
                root=str(ROOT),
                target=target,
                seconds=args.seconds,
                extra=extra,
                dtype=args.dtype,
                threads=args.threads,
                eran_net=str(ERAN / "nets" / "ffnnSIGMOID__Point_6x200.onnx"),
                eran_spec=str(ERAN / "specs/mnist/mnist_spec_idx_6553_eps_0.01200.vnnlib"),
            )
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=False
            )
            try:
                r = json.loads(out.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                print(f"| {target} | {extra} | error: {out.stderr.strip()[-200:]} | | | | | |")
                continue
            print(
                f"| {r['target']} | {r['setting']} | {r['reason']} | {r['domains']} | "
                f"{r['rounds']} | {r['rate']} | {r['worst']} | {r['rss_mb']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
