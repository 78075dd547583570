"""Compare our CROWN / alpha-CROWN lower bounds with auto_LiRPA's CROWN on the zoo MLPs.

The oracle lives outside the project (never a project dependency)::

    .venv/bin/python -m pip install --target /tmp/lirpa-site --no-deps \\
        auto_LiRPA==0.3 appdirs tqdm bound-propagation==0.4.7
    .venv/bin/python tests/benchmarks/compare_autolirpa.py [--lirpa-path /tmp/lirpa-site]
        [--nets mlp_tanh ...] [--centres 4]

For each network and box (the shipped spec's box, then seeded random boxes of four
widths) it prints the mean/min of ``ours - theirs`` over the rows of the spec's C matrix
and how many rows ours is tighter/equal/looser (t/e/l), for our CROWN against auto_LiRPA
and bound-propagation (``bp``, a second, optional oracle), and for our alpha-CROWN
against auto_LiRPA. Every bound is checked for soundness against 2000 samples.

Exit status 1 when any bound is unsound, or when our alpha-CROWN is looser than
auto_LiRPA's CROWN by more than ``1e-6 * max(1, |bound|)`` on any row (also CROWN
with ``--strict-crown``). CROWN-vs-CROWN differences are reported, not failed on by
default: two different sound relaxation choices (ours: the L1-optimal tangent for
S-shapes crossing 0; auto_LiRPA 0.3: the tangent through the far endpoint) cannot
dominate each other row by row, so a few looser rows among many tighter ones are
expected.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

import numpy as np
import onnxruntime as ort
import torch

from bounds import BoundGraph, compute_bounds
from models import load_onnx
from models.zoo import build, zoo_model_path, zoo_spec_path
from vnnlib import load_vnnlib

NETS = ["mlp_sigmoid", "mlp_tanh", "mlp_relu", "mlp_gelu", "mlp_sin"]
EPS = [0.01, 0.05, 0.2, 0.5]
N_CENTRES = 4
N_SAMPLES = 2000


def shim_and_import(path: str):
    """Patch numpy 2 / torch 2 incompatibilities of auto_LiRPA 0.3, then import it."""
    sys.path.insert(0, path)
    # 1. numpy 2 removed numpy.lib.arraysetops (auto_LiRPA only imports ``isin`` from it).
    sys.modules.setdefault("numpy.lib.arraysetops", np)
    # 2. torch moved the opset setter; parse_graph imports ``_set_opset_version``.
    import torch.onnx.symbolic_helper as helper
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS

    def set_opset(version: int) -> None:
        GLOBALS.export_onnx_opset_version = version

    helper._set_opset_version = set_opset
    # 3. torch._C.Node lost ``node[attr]``; dispatch on the attribute kind ("f", "i", "t", ...).
    torch._C.Node.__getitem__ = lambda node, k: getattr(node, node.kindOf(k))(k)
    with warnings.catch_warnings(record=True):  # torch.jit deprecations at import time
        import auto_LiRPA

    logging.getLogger("auto_LiRPA.utils").setLevel(logging.CRITICAL)  # unsupported-op reports
    try:
        import bound_propagation
    except ImportError:
        bound_propagation = None
    return auto_LiRPA, bound_propagation


def lirpa_lower(lirpa, model, lo, hi, C):
    """auto_LiRPA CROWN lower bounds ``[B, S]`` (None when it cannot handle the model)."""
    torch.set_default_dtype(torch.float64)  # its precomputed tangent tables follow it
    try:
        bm = lirpa.BoundedModule(model, torch.zeros_like(lo[:1]), verbose=False)
        ptb = lirpa.PerturbationLpNorm(norm=float("inf"), x_L=lo, x_U=hi)
        bt = lirpa.BoundedTensor((lo + hi) / 2, ptb)
        lb, _ = bm.compute_bounds(x=(bt,), C=C, method="CROWN", bound_upper=False)
    except NotImplementedError:
        return None
    finally:
        torch.set_default_dtype(torch.float32)
    return lb.detach()


def bp_lower(bp, model, lo, hi, C):
    """bound-propagation CROWN lower bounds; C (shared over the batch) is an extra layer."""
    if bp is None or not isinstance(model, torch.nn.Sequential):
        return None
    head = torch.nn.Linear(C.shape[2], C.shape[1], bias=False).double()
    with torch.no_grad():
        head.weight.copy_(C[0])
    layers = [bp.Sin() if type(m).__name__ == "Sin" else m for m in model]
    try:
        net = bp.BoundModelFactory().build(torch.nn.Sequential(*layers, head))
    except NotImplementedError:
        return None
    return net.crown(bp.HyperRectangle(lo, hi), bound_upper=False).concretize().lower.detach()


def boxes(spec_lo, spec_hi, n_in, n_centres=N_CENTRES):
    """``(label, lower [B, n_in], upper)``: the spec box, then seeded random boxes."""
    yield "spec", spec_lo[None], spec_hi[None]
    gen = torch.Generator().manual_seed(0)
    for eps in EPS:
        centre = 2 * torch.rand(n_centres, n_in, generator=gen, dtype=torch.float64) - 1
        yield f"eps={eps}", centre - eps, centre + eps


def check_ort(path, model, n_in):
    x = torch.linspace(-0.9, 0.8, n_in, dtype=torch.float64)[None]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.float().numpy()}
    ref = sess.run(None, feed)[0].reshape(-1)
    got = model(x).detach().numpy().reshape(-1)
    assert np.allclose(ref, got, atol=1e-5), f"{path}: torch {got} != ORT {ref}"


def sampled_min(model, lo, hi, C):
    """Min over uniform samples of ``C y`` per row, ``[B, S]``."""
    gen = torch.Generator().manual_seed(1)
    t = torch.rand(N_SAMPLES, *lo.shape, generator=gen, dtype=torch.float64)
    x = lo + t * (hi - lo)
    with torch.no_grad():
        y = model(x.reshape(-1, lo.shape[-1])).reshape(N_SAMPLES, lo.shape[0], -1)
    return torch.einsum("nbo,bso->nbs", y, C).amin(0)


def diff_stats(ours, theirs):
    tol = 1e-6 * torch.clamp(theirs.abs(), min=1.0)
    d = ours - theirs
    counts = int((d > tol).sum()), int((d.abs() <= tol).sum()), int((d < -tol).sum())
    return d, tol, counts


def main() -> int:  # noqa: C901
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lirpa-path", default="/tmp/lirpa-site")
    ap.add_argument("--nets", nargs="+", default=NETS, choices=NETS)
    ap.add_argument("--centres", type=int, default=N_CENTRES, help="random boxes per width")
    ap.add_argument("--strict-crown", action="store_true", help="also fail on CROWN rows")
    args = ap.parse_args()
    lirpa, bp = shim_and_import(args.lirpa_path)
    cols = f"{'mean(ours-{})':>16} {'min':>10} {'t/e/l':>8}"
    print(
        f"{'network':12} {'box':9} {'rows':>4}  {cols.format('lirpa')}  {cols.format('bp')}"
        f"  {cols.format('lirpa, alpha')}"
    )
    failures, looser, unsound = [], [], []
    for name in args.nets:
        path = zoo_model_path(name)
        model = build(name).double()
        graph = load_onnx(path)
        in_shape = BoundGraph(graph).input_shape
        n_in = int(np.prod(in_shape))
        check_ort(path, model, n_in)
        spec_lo, spec_hi, cases = load_vnnlib(zoo_spec_path(name)).groups()[0]
        Cs = torch.tensor(np.concatenate([c for c, _ in cases]))
        spec_lo, spec_hi = torch.tensor(spec_lo), torch.tensor(spec_hi)
        for label, lo, hi in boxes(spec_lo, spec_hi, n_in, args.centres):
            B = lo.shape[0]
            C = Cs.expand(B, *Cs.shape).clone()
            ours, ours_alpha = (
                compute_bounds(
                    graph,
                    lo.reshape(B, *in_shape),
                    hi.reshape(B, *in_shape),
                    C,
                    method=method,
                    bound_upper=False,
                ).lower
                for method in ("crown", "alpha-crown")
            )
            theirs = lirpa_lower(lirpa, model, lo, hi, C)
            other = bp_lower(bp, model, lo, hi, C)
            smin = sampled_min(model, lo, hi, C)
            line = f"{name:12} {label:9} {ours.numel():4}"
            for tag, mine, ref in (
                ("auto_LiRPA", ours, theirs),
                ("bp", ours, other),
                ("alpha/auto_LiRPA", ours_alpha, theirs),
            ):
                if ref is None:
                    line += f"  {'unsupported':>16} {'':10} {'':8}"
                    continue
                d, tol, (t, e, lo_) = diff_stats(mine, ref)
                line += f"  {d.mean():16.3e} {d.min():10.3e} {f'{t}/{e}/{lo_}':>8}"
                if tag != "alpha/auto_LiRPA" and (ref > smin + 1e-9).any():
                    unsound.append(f"{tag} {name} {label}: {ref} > sampled {smin}")
                if tag in ("auto_LiRPA", "alpha/auto_LiRPA"):
                    for b, s in zip(*torch.nonzero(d < -tol, as_tuple=True)):
                        msg = (
                            f"{'CROWN' if tag == 'auto_LiRPA' else 'alpha-CROWN'} {name} "
                            f"{label} domain {b} row {s}: ours {mine[b, s]:.9g} "
                            f"auto_LiRPA {ref[b, s]:.9g}"
                        )
                        (looser if tag == "auto_LiRPA" else failures).append(msg)
            for tag, mine in (("CROWN", ours), ("alpha-CROWN", ours_alpha)):
                if (mine > smin + 1e-9).any():
                    unsound.append(f"ours {tag} {name} {label}: {mine} > sampled {smin}")
            print(line, flush=True)
    for msg in looser + failures:
        print("LOOSER:", msg)
    for msg in unsound:
        print("UNSOUND:", msg)
    print(
        f"CROWN looser than auto_LiRPA on {len(looser)} rows, alpha-CROWN on {len(failures)}; "
        f"{len(unsound)} unsound bound sets"
    )
    if args.strict_crown:
        failures += looser
    return 1 if failures or unsound else 0


if __name__ == "__main__":
    sys.exit(main())
