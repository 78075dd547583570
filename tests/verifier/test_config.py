"""VerifyConfig overrides/validation, Deadline arithmetic and the runtime context."""

from __future__ import annotations

import json
import math

import pytest
import torch

from verifier.config import AttackConfig, ConfigError, InputError, RuntimeConfig, VerifyConfig
from verifier.deadline import Deadline
from verifier.runtime import resolve_device, runtime_context


def test_defaults_round_trip_through_dict() -> None:
    cfg = VerifyConfig()
    data = cfg.to_dict()
    json.dumps(data)  # plain, serialisable
    assert data["attack"]["restarts"] == cfg.attack.restarts
    assert VerifyConfig.from_dict(data) == cfg


def test_overrides_nested_and_dunder() -> None:
    cfg = VerifyConfig().with_overrides(timeout=5, attack={"steps": 7}, runtime__seed=3)
    assert cfg.timeout == 5
    assert cfg.attack.steps == 7
    assert cfg.runtime.seed == 3
    assert cfg.attack.restarts == AttackConfig().restarts
    # ints are accepted for float settings and stored as floats
    assert VerifyConfig().with_overrides(attack__step_fraction=1).attack.step_fraction == 1.0


def test_config_is_frozen() -> None:
    cfg = VerifyConfig()
    with pytest.raises(AttributeError):
        cfg.timeout = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"timeot": 1},
        {"attack__stepz": 1},
        {"attack": 3},
        {"attack__steps": "many"},
        {"attack__restarts": 0},
        {"attack__time_fraction": 0.0},
        {"runtime__device": "tpu"},
        {"runtime__dtype": "float16"},
        {"timeout": -1.0},
        {"timeout": math.nan},
        {"bounds__crown_max_elements": -1},
    ],
)
def test_invalid_overrides_raise_config_error(overrides: dict) -> None:
    with pytest.raises(ConfigError) as info:
        VerifyConfig().with_overrides(**overrides)
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_runtime_config_accepts_cuda_index() -> None:
    assert RuntimeConfig(device="cuda:1").device == "cuda:1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_remaining_expired_child() -> None:
    clock = FakeClock()
    d = Deadline.after(10.0, clock=clock)
    assert d.limited and not d.expired()
    assert d.remaining() == pytest.approx(10.0)
    clock.now += 4
    assert d.elapsed() == pytest.approx(4.0)
    child = d.child(0.5)
    assert child.remaining() == pytest.approx(3.0)
    clock.now += 3.5
    assert child.expired() and not d.expired()
    clock.now += 10
    assert d.expired() and d.remaining() == 0.0
    assert d.child(1.0).expired()


def test_deadline_unlimited_and_validation() -> None:
    d = Deadline.never()
    assert not d.limited and not d.expired() and d.remaining() == math.inf
    assert not d.child(0.1).limited
    with pytest.raises(ValueError):
        Deadline.after(-1)
    with pytest.raises(ValueError):
        d.child(0.0)
    assert Deadline.after(0).expired()


def test_runtime_context_applies_and_restores() -> None:
    before_dtype = torch.get_default_dtype()
    before_det = torch.are_deterministic_algorithms_enabled()
    before_prec = torch.get_float32_matmul_precision()
    torch.manual_seed(123)
    expected_after = torch.rand(3)
    torch.manual_seed(123)
    with runtime_context(RuntimeConfig(dtype="float64", seed=7)) as rt:
        assert rt.dtype == torch.float64 and rt.device == torch.device("cpu")
        assert torch.get_default_dtype() == torch.float64
        assert torch.get_float32_matmul_precision() == "highest"
        first = torch.rand(2)
    with runtime_context(RuntimeConfig(dtype="float64", seed=7)):
        assert torch.equal(torch.rand(2), first)  # seeded
    assert torch.get_default_dtype() == before_dtype
    assert torch.are_deterministic_algorithms_enabled() == before_det
    assert torch.get_float32_matmul_precision() == before_prec
    assert torch.equal(torch.rand(3), expected_after)  # outer RNG stream untouched


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable_is_input_error() -> None:
    with pytest.raises(InputError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(InputError):
        with runtime_context(RuntimeConfig(device="cuda")):
            pass  # pragma: no cover
