"""The Python API: verify on paths / ModelProto / torch modules, certificates, radii."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import verifier
from verifier import CertStatus, InputError, Status

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "models" / "zoo_data"


def _classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 3),
    )


def _robust_spec(x: np.ndarray, eps: float, label: int, n_out: int) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(x.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, v in enumerate(x):
        lines += [
            f"(assert (>= X_{i} {float(v - eps)!r}))",
            f"(assert (<= X_{i} {float(v + eps)!r}))",
        ]
    others = " ".join(f"(>= Y_{j} Y_{label})" for j in range(n_out) if j != label)
    lines.append(f"(assert (or {others}))")
    return "\n".join(lines) + "\n"


def _no_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every way of writing a temporary or ONNX file fail."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a file was written")

    for name in ("TemporaryDirectory", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    monkeypatch.setattr(onnx, "save", refuse)
    monkeypatch.setattr(onnx, "save_model", refuse)


def test_verify_torch_module_in_memory_matches_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torch module is verified with no file on disk; the counterexample is real."""
    net = _classifier()
    x = torch.rand(6, dtype=torch.float32).numpy().astype(np.float64)
    label = int(net(torch.tensor(x, dtype=torch.float32)[None]).argmax())
    with torch.no_grad():  # precondition: another class exists within distance 1 (sat)
        assert (
            net(torch.rand(2000, 6) * 2 - 1 + torch.tensor(x, dtype=torch.float32)).argmax(1)
            != label
        ).any()
    with monkeypatch.context() as m:
        _no_files(m)
        small = verifier.verify(net, _robust_spec(x, 1e-3, label, 3), timeout=30, attack__steps=5)
        big = verifier.verify(
            net, _robust_spec(x, 1.0, label, 3), timeout=30, bounds__enabled=False
        )
    assert small.status is Status.UNSAT
    assert big.status is Status.SAT
    # the counterexample is a real one: onnxruntime on an exported copy agrees
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.zeros(1, 6),), str(path), dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cex = big.counterexample
    y = sess.run(None, {sess.get_inputs()[0].name: cex.x.astype(np.float32)[None]})[0][0]
    assert np.max(np.delete(y, label)) >= y[label]
    assert np.all(np.abs(cex.x - x) <= 1.0 + 1e-7)


def test_verify_accepts_modelproto_and_spec_object(tmp_path: Path) -> None:
    import vnnlib
    from tests.verifier.linear_model import spec_text, write_model

    path = write_model(tmp_path / "lin.onnx")
    proto = onnx.load(str(path))
    for hi, want in ((1.0, Status.SAT), (0.5, Status.UNSAT)):
        text = spec_text(hi=hi)
        spec = vnnlib.parse_vnnlib(text)
        assert verifier.verify(proto, spec, timeout=30, attack__steps=5).status is want
        assert verifier.verify(proto, text, timeout=30, attack__steps=5).status is want


def test_verify_rejects_bad_model_type_and_options() -> None:
    with pytest.raises(InputError, match="model must be"):
        verifier.verify(42, ZOO / "mlp_sigmoid.vnnlib")
    with pytest.raises(verifier.ConfigError, match="unknown setting"):
        verifier.verify(ZOO / "mlp_sigmoid.onnx", ZOO / "mlp_sigmoid.vnnlib", attack__nope=1)


def test_certify_robustness_batched_torch_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """A torch model certified with no file written; sound margins; real counterexamples."""
    net = _classifier()
    x = torch.rand(4, 6) * 6 - 3  # the net predicts all 3 classes in [-3, 3]^6
    labels = net(x).argmax(1)
    with monkeypatch.context() as m:
        _no_files(m)
        cert = verifier.certify_robustness(net, x, 1e-3, labels, domain=(-3.0, 3.0), timeout=60)
    assert cert.status == (CertStatus.CERTIFIED,) * 4
    # the margin bounds are sound: sampled margins in the ball are never below them
    pts = (x[:, None, :] + 1e-3 * (2 * torch.rand(4, 200, 6) - 1)).clamp(-3, 3)
    with torch.no_grad():
        y = net(pts)
    margins = y.gather(2, labels[:, None, None].expand(4, 200, 3)) - y
    low = torch.tensor(cert.margin_lower)
    for n in range(4):
        others = [j for j in range(3) if j != labels[n]]
        assert torch.all(margins[n][:, others] >= low[n, others] - 1e-6)
    wide = verifier.certify_robustness(
        net, x, 3.0, labels, domain=(-3.0, 3.0), timeout=60, attack__rounds=1
    )
    assert CertStatus.COUNTEREXAMPLE in wide.status
    for status, cex, x_n, lab in zip(wide.status, wide.counterexamples, x, labels):
        if status is CertStatus.COUNTEREXAMPLE:
            assert np.max(np.abs(cex.reshape(-1) - x_n.numpy())) <= 3.0 + 1e-6
            with torch.no_grad():
                out = net(torch.tensor(cex, dtype=torch.float32).reshape(1, 6))[0]
            assert out.argmax() != lab or out.max() == out[lab]
    data = json.loads(wide.to_json())
    assert len(data["status"]) == 4 and data["norm"] == "inf"


def test_certify_l2_ball_counterexample_is_inside_the_ball() -> None:
    net = _classifier()
    x = torch.rand(2, 6) * 6 - 3
    labels = net(x).argmax(1)
    cert = verifier.certify_robustness(net, x, 6.0, labels, norm=2, timeout=60)
    assert CertStatus.COUNTEREXAMPLE in cert.status
    for cex, x_n in zip(cert.counterexamples, x):
        if cex is not None:
            assert np.linalg.norm(cex.reshape(-1) - x_n.numpy()) <= 6.0


def _pgd_margin(graph_path: Path, x: np.ndarray, label: int, eps: float, steps: int = 200) -> float:
    """The smallest margin ``y_label - max_j y_j`` that PGD (64 restarts) finds in the ball."""
    import models

    graph = models.load_onnx(graph_path)
    x0 = torch.tensor(x, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    delta = (2 * torch.rand((64, x.size), generator=gen, dtype=torch.float64) - 1) * eps
    delta.requires_grad_(True)
    best = math.inf
    for _ in range(steps):
        y = models.evaluate(graph, (x0 + delta).reshape(64, 1, -1)).reshape(64, -1)
        others = y.clone()
        others[:, label] = -math.inf
        margin = y[:, label] - others.max(1).values
        best = min(best, float(margin.detach().min()))
        (g,) = torch.autograd.grad(margin.sum(), delta)
        with torch.no_grad():
            delta -= 0.05 * eps * g.sign()
            delta.clamp_(-eps, eps)
    return best


def test_certified_radius_brackets_within_one_percent_and_resists_pgd() -> None:
    path = ZOO / "mlp_relu.onnx"
    x = np.linspace(0.2, 0.8, 8)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    label = int(np.argmax(sess.run(None, {sess.get_inputs()[0].name: x[None].astype(np.float32)})))
    r = verifier.certified_radius(path, x, label, rel_tol=0.01, bounds__method="crown")
    assert 0 < r.certified < r.refuted
    assert r.refuted - r.certified <= 0.01 * r.refuted
    assert _pgd_margin(path, x, label, r.certified) > 0
    json.loads(r.to_json())
    # the top of the bracket is not certified, the bottom is
    top = verifier.certify_robustness(path, x, r.refuted, label, bounds__method="crown")
    bottom = verifier.certify_robustness(path, x, r.certified, label, bounds__method="crown")
    assert bottom.status == (CertStatus.CERTIFIED,)
    assert top.status != (CertStatus.CERTIFIED,)
