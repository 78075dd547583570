"""Small deterministic test networks (torch modules) and the zoo registry.

Every network is built from a fixed seed inside ``torch.random.fork_rng`` so that
building is deterministic and leaves the caller's global RNG state untouched.
Weights come from PyTorch's default initialisation, optionally rescaled by a gain
so that the nonlinearities are exercised away from their linear region.

Shapes are the ONNX shapes with batch size 1 (``ZooEntry.input_shape``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

SpecKind = Literal["robustness", "residual"]


class UnknownNetworkError(KeyError):
    """A network name is not in the zoo."""


@dataclass(frozen=True, slots=True)
class ZooEntry:
    """One zoo network and the parameters of its shipped specification.

    Attributes:
        name: registry key, also the stem of the shipped files.
        builder: zero-argument callable returning the (eval-mode) module.
        input_shape: ONNX input shape, batch dimension 1 first.
        n_outputs: size of the flattened output (classes or residuals).
        description: one line describing the architecture.
        input_range: the input domain ``(lo, hi)`` the spec box is clipped to.
        eps: Linf radius of the shipped spec's input box.
        spec_kind: ``"robustness"`` (classification) or ``"residual"`` (acopf).
        seed: seed of the RNG that draws the spec's centre point.
    """

    name: str
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    n_outputs: int
    description: str
    input_range: tuple[float, float] = (-1.0, 1.0)
    eps: float = 0.02
    spec_kind: SpecKind = "robustness"
    seed: int = 0


# --------------------------------------------------------------------------- building blocks
class Sin(nn.Module):
    """Elementwise sine activation (exports as ONNX ``Sin``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``sin(x)``."""
        return torch.sin(x)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "sin": Sin,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
}


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """Run ``make`` under ``torch.manual_seed(seed)`` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = make()
    return module.eval()


def _scale_weights(module: nn.Module, gain: float) -> None:
    """Multiply the weights (not biases) of every Linear/Conv layer in place."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.weight.mul_(gain)


def center_logits(
    net: nn.Module,
    head: nn.Linear,
    input_shape: tuple[int, ...],
    input_range: tuple[float, float],
    *,
    seed: int,
    n_samples: int = 256,
) -> None:
    """Shift ``head.bias`` so every output has mean zero over seeded uniform inputs.

    A data-dependent initialisation: without it a random network tends to predict the
    same class everywhere. Inputs are drawn uniformly from ``input_range`` with a
    ``torch.Generator`` seeded by ``seed`` and evaluated as one batch of ``n_samples``
    (``input_shape`` has batch size 1 first).
    """
    gen = torch.Generator().manual_seed(seed)
    lo, hi = input_range
    batch = lo + (hi - lo) * torch.rand((n_samples, *input_shape[1:]), generator=gen)
    with torch.no_grad():
        head.bias.sub_(net(batch).reshape(n_samples, -1).mean(dim=0))


# --------------------------------------------------------------------------- MLPs
def build_mlp(
    activation: str,
    *,
    seed: int,
    sizes: tuple[int, ...] = (8, 24, 16, 4),
    gain: float = 2.5,
) -> nn.Module:
    """Fully connected network ``Linear -> act -> ... -> Linear``.

    Args:
        activation: a key of ``ACTIVATIONS``.
        seed: weight seed.
        sizes: layer widths, input first; the output layer has no activation.
        gain: factor applied to PyTorch's default weight initialisation.

    Returns:
        The module; input ``[1, sizes[0]]``, output ``[1, sizes[-1]]``.
    """
    act = ACTIVATIONS[activation]

    def make() -> nn.Module:
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(act())
        net = nn.Sequential(*layers)
        _scale_weights(net, gain)
        center_logits(net, layers[-1], (1, sizes[0]), (-1.0, 1.0), seed=seed)
        return net

    return _seeded(seed, make)


# --------------------------------------------------------------------------- CNN
def build_cnn_sigmoid(*, seed: int, gain: float = 2.0) -> nn.Module:
    """Two sigmoid convolutions and a linear head.

    Input ``[1, 1, 8, 8]``: Conv 3x3 (4 channels, pad 1) -> Sigmoid -> Conv 3x3 stride 2
    (4 channels, pad 1) -> Sigmoid -> Flatten (64) -> Linear -> ``[1, 3]``.
    """

    def make() -> nn.Module:
        net = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3, padding=1),
            nn.Sigmoid(),
            nn.Conv2d(4, 4, kernel_size=3, stride=2, padding=1),
            nn.Sigmoid(),
            nn.Flatten(),
            nn.Linear(64, 3),
        )
        _scale_weights(net, gain)
        center_logits(net, net[-1], (1, 1, 8, 8), (0.0, 1.0), seed=seed)
        return net

    return _seeded(seed, make)


# --------------------------------------------------------------------------- LSTM
class LstmClassifier(nn.Module):
    """One-layer LSTM over a sequence; the last hidden state feeds a linear head.

    Input ``[1, seq_len, input_size]`` (batch first), output ``[1, n_classes]``.
    """

    def __init__(self, input_size: int = 4, hidden_size: int = 8, n_classes: int = 3) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=input_size, hidden_size=hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify the sequence ``x`` of shape ``[1, T, input_size]``."""
        _, (h_n, _) = self.lstm(x)
        return self.head(h_n[-1])


def build_lstm(*, seed: int, gain: float = 2.0) -> nn.Module:
    """The seeded ``LstmClassifier`` with weights scaled by ``gain``."""

    def make() -> nn.Module:
        net = LstmClassifier()
        with torch.no_grad():
            for name, param in net.lstm.named_parameters():
                if name.startswith("weight"):
                    param.mul_(gain)
        _scale_weights(net.head, gain)
        center_logits(net, net.head, (1, 5, 4), (-1.0, 1.0), seed=seed)
        return net

    return _seeded(seed, make)


# --------------------------------------------------------------------------- ViT
class TinyViT(nn.Module):
    """A one-block, single-head vision transformer for ``[1, 1, 8, 8]`` images.

    Patch embedding (Conv 4x4 stride 4: four patches of dimension ``dim``), learned
    position embedding, pre-norm block (LayerNorm, softmax self-attention, residual,
    LayerNorm, GeLU MLP, residual), mean pooling over patches, linear head.
    """

    def __init__(self, dim: int = 8, mlp_dim: int = 16, n_classes: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.patch = nn.Conv2d(1, dim, kernel_size=4, stride=4)
        self.pos = nn.Parameter(0.1 * torch.randn(1, 4, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        self.head = nn.Linear(dim, n_classes)

    def attention(self, h: torch.Tensor) -> torch.Tensor:
        """Single-head ``softmax(Q K^T / sqrt(d)) V`` for ``h`` of shape ``[1, P, dim]``."""
        q, k, v = self.query(h), self.key(h), self.value(h)
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(self.dim)
        return self.proj(torch.matmul(torch.softmax(scores, dim=-1), v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images ``x`` of shape ``[B, 1, 8, 8]`` (``B = 1`` when exported)."""
        tokens = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        tokens = tokens + self.attention(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return self.head(tokens.mean(dim=1))


def build_vit(*, seed: int, gain: float = 1.5) -> nn.Module:
    """The seeded ``TinyViT`` with Linear/Conv weights scaled by ``gain``."""

    def make() -> nn.Module:
        net = TinyViT()
        _scale_weights(net, gain)
        center_logits(net, net.head, (1, 1, 8, 8), (0.0, 1.0), seed=seed)
        return net

    return _seeded(seed, make)


# --------------------------------------------------------------------------- ACOPF
def _bus_admittance(n_bus: int, rng: np.random.Generator) -> np.ndarray:
    """Complex bus admittance matrix of a ring network plus one chord (float64)."""
    lines = [(i, (i + 1) % n_bus) for i in range(n_bus)] + [(0, n_bus // 2)]
    y_bus = np.zeros((n_bus, n_bus), dtype=np.complex128)
    for i, j in lines:
        y = 1.0 / complex(rng.uniform(0.01, 0.05), rng.uniform(0.05, 0.2))
        y_bus[i, i] += y
        y_bus[j, j] += y
        y_bus[i, j] -= y
        y_bus[j, i] -= y
    y_bus += np.diag(1j * rng.uniform(0.0, 0.05, n_bus))  # line-charging shunts
    return y_bus


def power_injections(
    v: np.ndarray, theta: np.ndarray, g: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AC power-flow injections ``(P, Q)`` in float64 (reference for the torch module)."""
    diff = theta[:, None] - theta[None, :]
    vv = v[:, None] * v[None, :]
    p = (vv * (g * np.cos(diff) + b * np.sin(diff))).sum(axis=1)
    q = (vv * (g * np.sin(diff) - b * np.cos(diff))).sum(axis=1)
    return p, q


class PowerFlowResidual(nn.Module):
    """AC power-flow residuals of an ``n``-bus network.

    Input ``[1, 2n]`` = (V_1..V_n, theta_1..theta_n); output ``[1, 2n]`` =
    (P_1..P_n, Q_1..Q_n) with

        P_i = G_ii V_i^2 + V_i sum_{j != i} V_j (G_ij cos(t_i - t_j) + B_ij sin(t_i - t_j)) - Pd_i
        Q_i = -B_ii V_i^2 + V_i sum_{j != i} V_j (G_ij sin(t_i - t_j) - B_ij cos(t_i - t_j)) - Qd_i

    The diagonal (shunt) terms use ``torch.pow(V, 2)``; the off-diagonal terms multiply
    two perturbed values (``V_i V_j``) and the sin/cos of angle differences.
    """

    def __init__(self, g: np.ndarray, b: np.ndarray, p_d: np.ndarray, q_d: np.ndarray) -> None:
        super().__init__()
        n = g.shape[0]
        off = 1.0 - np.eye(n)
        self.n = n
        self.register_buffer("g_off", torch.tensor(g * off, dtype=torch.float32))
        self.register_buffer("b_off", torch.tensor(b * off, dtype=torch.float32))
        self.register_buffer("g_diag", torch.tensor(np.diag(g), dtype=torch.float32))
        self.register_buffer("b_diag", torch.tensor(np.diag(b), dtype=torch.float32))
        self.register_buffer("p_d", torch.tensor(p_d, dtype=torch.float32))
        self.register_buffer("q_d", torch.tensor(q_d, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residuals ``[B, 2n]`` for states ``x = [V, theta]`` of shape ``[B, 2n]``."""
        n = self.n
        v, theta = x[:, :n], x[:, n:]
        diff = theta.reshape(-1, n, 1) - theta.reshape(-1, 1, n)
        cos, sin = torch.cos(diff), torch.sin(diff)
        vv = v.reshape(-1, n, 1) * v.reshape(-1, 1, n)
        v_sq = torch.pow(v, 2)
        p = v_sq * self.g_diag + (vv * (self.g_off * cos + self.b_off * sin)).sum(dim=2) - self.p_d
        q = (vv * (self.g_off * sin - self.b_off * cos)).sum(dim=2) - v_sq * self.b_diag - self.q_d
        return torch.cat([p, q], dim=1)


def acopf_nominal_state(n_bus: int = 4, *, seed: int) -> np.ndarray:
    """The seeded nominal operating point ``[V, theta]`` (float64, shape ``[2n]``)."""
    rng = np.random.default_rng(seed + 1)
    v = rng.uniform(0.95, 1.05, n_bus)
    theta = np.concatenate([[0.0], rng.uniform(-0.1, 0.1, n_bus - 1)])
    return np.round(np.concatenate([v, theta]), 4)


def build_acopf(n_bus: int = 4, *, seed: int) -> nn.Module:
    """Power-flow residual network whose loads make the nominal state a zero of it."""
    y_bus = _bus_admittance(n_bus, np.random.default_rng(seed))
    g, b = y_bus.real, y_bus.imag
    state = acopf_nominal_state(n_bus, seed=seed)
    p_d, q_d = power_injections(state[:n_bus], state[n_bus:], g, b)
    return PowerFlowResidual(g, b, p_d, q_d).eval()


# --------------------------------------------------------------------------- registry
def _mlp_entry(activation: str, seed: int) -> ZooEntry:
    """The registry entry of the MLP with ``activation``."""
    return ZooEntry(
        name=f"mlp_{activation}",
        builder=lambda: build_mlp(activation, seed=seed),
        input_shape=(1, 8),
        n_outputs=4,
        description=f"MLP 8-24-16-4 with {activation} activations",
        eps=0.05,
        seed=seed,
    )


def _registry() -> dict[str, ZooEntry]:
    """All zoo entries by name, in a fixed order (MLPs, CNN, LSTM, ViT, ACOPF)."""
    entries = [_mlp_entry(act, seed) for seed, act in enumerate(ACTIVATIONS, start=1)]
    entries += [
        ZooEntry(
            name="cnn_sigmoid",
            builder=lambda: build_cnn_sigmoid(seed=11),
            input_shape=(1, 1, 8, 8),
            n_outputs=3,
            description="Conv3x3(4)+Sigmoid, Conv3x3/2(4)+Sigmoid, Flatten, Linear(3)",
            input_range=(0.0, 1.0),
            eps=0.03,
            seed=11,
        ),
        ZooEntry(
            name="lstm",
            builder=lambda: build_lstm(seed=12),
            input_shape=(1, 5, 4),
            n_outputs=3,
            description="LSTM(4->8) over 5 steps, last hidden state -> Linear(3)",
            eps=0.05,
            seed=12,
        ),
        ZooEntry(
            name="vit",
            builder=lambda: build_vit(seed=13),
            input_shape=(1, 1, 8, 8),
            n_outputs=3,
            description="tiny ViT: 4 patches of dim 8, 1 single-head block, GeLU MLP, Linear(3)",
            input_range=(0.0, 1.0),
            eps=0.03,
            seed=13,
        ),
        ZooEntry(
            name="acopf",
            builder=lambda: build_acopf(seed=14),
            input_shape=(1, 8),
            n_outputs=8,
            description="4-bus AC power-flow residuals (V, theta) -> (P, Q)",
            input_range=(-math.inf, math.inf),
            eps=0.01,
            spec_kind="residual",
            seed=14,
        ),
    ]
    return {e.name: e for e in entries}


ZOO: dict[str, ZooEntry] = _registry()
"""Network name -> entry, in a fixed order."""


def build(name: str) -> nn.Module:
    """Build the zoo network ``name`` (deterministic, eval mode, float32).

    Raises:
        UnknownNetworkError: ``name`` is not in ``ZOO``.
    """
    return get_entry(name).builder()


def get_entry(name: str) -> ZooEntry:
    """The ``ZooEntry`` called ``name``; the error lists the available names."""
    try:
        return ZOO[name]
    except KeyError:
        raise UnknownNetworkError(
            f"unknown zoo network {name!r}; available: {', '.join(ZOO)}"
        ) from None
