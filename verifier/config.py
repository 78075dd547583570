"""Verification settings: frozen, typed, nested dataclasses built once at the edge.

``VerifyConfig`` is built by the CLI or by :func:`verifier.verify` (defaults, then explicit
overrides), validated on construction, and passed down *narrowly*: the falsifier receives an
``AttackConfig``, the runtime context a ``RuntimeConfig``. No module reads configuration from a
global or from the environment.

Overrides use either nested mappings or double-underscore paths::

    cfg = VerifyConfig().with_overrides(timeout=30, attack={"steps": 50}, runtime__seed=1)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bounds import CROWN_MAX_ELEMENTS
from branching import BabConfig

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "AttackConfig",
    "BabConfig",
    "BoundsConfig",
    "ConfigError",
    "InputError",
    "RuntimeConfig",
    "VerifyConfig",
    "build_config",
    "load_profile",
    "load_settings_file",
    "profile_names",
]

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


class InputError(ValueError):
    """The user's input (model, spec, settings) cannot be used; the message is one clear line."""


class ConfigError(InputError):
    """A configuration value or override is invalid."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True)
class AttackConfig:
    """Falsifier (random sampling + PGD) settings.

    Attributes:
        enabled: run the falsifier at all.
        random_points: uniform samples per spec box (the box centre is always added).
        restarts: PGD starting points per box, batched into one forward pass per step.
        steps: PGD descent steps per restart round.
        osi_steps: output-diversified initialisation steps before the descent, for starts
            that do not come from the sampled points (0 disables OSI).
        step_fraction: initial sign-gradient step as a fraction of each input's box width;
            the step decays linearly to ``step_fraction / 10`` over the steps.
        rounds: PGD rounds per box (each round re-draws the starting points).
        seed: seed of the falsifier's own random generator.
        time_fraction: share of the remaining time budget the falsifier may use, in (0, 1].
    """

    enabled: bool = True
    random_points: int = 256
    restarts: int = 16
    steps: int = 50
    osi_steps: int = 10
    step_fraction: float = 0.1
    rounds: int = 4
    seed: int = 0
    time_fraction: float = 0.2

    def __post_init__(self) -> None:
        _require(self.random_points >= 0, "attack.random_points must be >= 0")
        _require(self.restarts >= 1, "attack.restarts must be >= 1")
        _require(self.steps >= 0, "attack.steps must be >= 0")
        _require(self.osi_steps >= 0, "attack.osi_steps must be >= 0")
        _require(self.rounds >= 0, "attack.rounds must be >= 0")
        _require(
            math.isfinite(self.step_fraction) and self.step_fraction > 0,
            "attack.step_fraction must be a positive number",
        )
        _require(0 < self.time_fraction <= 1, "attack.time_fraction must be in (0, 1]")


METHODS = ("ibp", "crown", "alpha-crown")


@dataclass(frozen=True, slots=True)
class BoundsConfig:
    """Incomplete verification (bound propagation) settings.

    Attributes:
        enabled: run the bounds stage at all.
        method: the strongest method to use: CROWN runs first, alpha-CROWN then
            refines the cases CROWN could not refute.
        dtype: dtype of bound computations (float64 by default: a proof should not
            hinge on float32 rounding of long sums).
        alpha_iterations, alpha_lr: alpha-CROWN optimiser settings.
        alpha_intermediate: alpha-CROWN also optimises the relaxations behind every
            intermediate bound (tighter, several times slower than output-only).
        bab: run branch-and-bound after the incomplete bounds (``--no-bab`` turns it off;
            its settings are the ``bab`` section of :class:`VerifyConfig`).
        crown_max_elements: intermediate nodes with more elements keep IBP bounds
            (``bounds.compute_bounds(crown_max_elements=...)``).
    """

    enabled: bool = True
    method: str = "alpha-crown"
    dtype: str = "float64"
    alpha_iterations: int = 30
    alpha_lr: float = 0.1
    alpha_intermediate: bool = True
    bab: bool = True
    crown_max_elements: int = CROWN_MAX_ELEMENTS

    def __post_init__(self) -> None:
        _require(
            self.method in METHODS,
            f"bounds.method must be one of {', '.join(METHODS)} (got {self.method!r})",
        )
        _require(
            self.dtype in DTYPES,
            f"bounds.dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})",
        )
        _require(self.alpha_iterations >= 0, "bounds.alpha_iterations must be >= 0")
        _require(self.alpha_lr > 0, "bounds.alpha_lr must be > 0")
        _require(self.crown_max_elements >= 0, "bounds.crown_max_elements must be >= 0")


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Process-level torch settings applied by :func:`verifier.runtime.runtime_context`.

    Attributes:
        device: ``"cpu"`` or ``"cuda"`` (optionally ``"cuda:N"``).
        dtype: ``"float32"`` or ``"float64"``: the dtype of tensors in the engine.
        seed: seed for torch's global generators inside the context.
        deterministic: disable TF32 matmuls and, on CUDA, request deterministic algorithms
            (warn-only) with cuDNN benchmarking off.
    """

    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        kind, _, index = self.device.partition(":")
        _require(
            kind in DEVICES and (not index or (kind == "cuda" and index.isdigit())),
            f"runtime.device must be one of {', '.join(DEVICES)} (got {self.device!r})",
        )
        _require(
            self.dtype in DTYPES,
            f"runtime.dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})",
        )


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """All settings of one verification run.

    Attributes:
        timeout: wall-clock budget in seconds for the whole run (``None``: no limit).
        attack: falsifier settings.
        bounds: incomplete verification settings.
        bab: branch-and-bound settings (:class:`branching.BabConfig`).
        runtime: device, dtype, seeds and determinism.
    """

    timeout: float | None = None
    attack: AttackConfig = field(default_factory=AttackConfig)
    bounds: BoundsConfig = field(default_factory=BoundsConfig)
    bab: BabConfig = field(default_factory=BabConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        _require(
            self.timeout is None or (not math.isnan(self.timeout) and self.timeout >= 0),
            f"timeout must be a non-negative number of seconds (got {self.timeout!r})",
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (JSON-serialisable) of every setting."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerifyConfig:
        """Build from a (possibly partial) nested mapping; unknown keys raise ConfigError."""
        return cls().with_overrides(**data)

    def with_overrides(self, **overrides: Any) -> VerifyConfig:
        """A validated copy with some settings replaced.

        Keys are top-level field names (``timeout=5``), section names with a mapping
        (``attack={"steps": 10}``) or double-underscore paths (``attack__steps=10``).

        Raises:
            ConfigError: unknown key or invalid value.
        """
        return _apply(self, _nest(overrides), prefix="")


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``a__b=v`` keys into nested dicts, merging with mapping-valued keys."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = key.split("__")
        target = nested
        for part in parts[:-1]:
            sub = target.setdefault(part, {})
            if not isinstance(sub, dict):
                raise ConfigError(f"conflicting overrides for {part!r}")
            target = sub
        leaf = parts[-1]
        if isinstance(value, Mapping):
            existing = target.setdefault(leaf, {})
            if not isinstance(existing, dict):
                raise ConfigError(f"conflicting overrides for {leaf!r}")
            existing.update(_nest(value))
        else:
            target[leaf] = value
    return nested


def _apply(obj: Any, changes: Mapping[str, Any], prefix: str) -> Any:
    """Recursively replace fields of a config dataclass, validating names."""
    names = {f.name: f for f in dataclasses.fields(obj)}
    updates: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"unknown setting {prefix + key!r} (known: {known})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"setting {prefix + key!r} needs a mapping of sub-settings")
            updates[key] = _apply(current, value, prefix=f"{prefix}{key}.")
        else:
            updates[key] = _coerce(current, value, prefix + key)
    try:
        return dataclasses.replace(obj, **updates)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid settings under {prefix or 'config'}: {exc}") from exc


def _coerce(current: Any, value: Any, name: str) -> Any:
    """Check a leaf value's type against the default's type (ints accepted for floats)."""
    if value is None or current is None:
        return value
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise ConfigError(
            f"setting {name!r} expects {type(current).__name__}, got {type(value).__name__}"
        )
    return value


# ----------------------------------------------------------------------------- files, profiles

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
"""Shipped settings profiles: ``<name>.toml``, one per benchmark family (data, not code)."""

PROFILE_KEYS = ("attack.", "bounds.", "bab.", "runtime.device")
"""Settings a profile may set: only ones that trade speed, never the answer's meaning.

A profile may not set the time budget (the caller owns it), seeds or the dtype of the run.
"""


def load_settings_file(path: str | Path) -> dict[str, Any]:
    """Read a settings file (TOML, or YAML when PyYAML is installed) into a nested dict.

    Raises:
        ConfigError: the file is missing, unreadable, malformed or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings file: {exc.strerror or exc}") from exc
    if path.suffix in (".yaml", ".yml"):
        data = _parse_yaml(text, path)
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a settings file must hold a mapping of settings")
    return data


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        import yaml  # optional: only for .yaml settings files
    except ImportError as exc:
        raise ConfigError(f"{path}: YAML settings need PyYAML (pip install pyyaml)") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise ConfigError(f"{path}: invalid YAML: {first}") from exc


def _flat_keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            keys.extend(_flat_keys(value, f"{prefix}{key}."))
        else:
            keys.append(prefix + key)
    return keys


def profile_names() -> tuple[str, ...]:
    """Names of the shipped profiles (``default`` included)."""
    return tuple(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))


def load_profile(name_or_path: str | Path) -> dict[str, Any]:
    """A profile's settings: a shipped profile name (``"acasxu"``) or a file path.

    Raises:
        ConfigError: unknown profile, bad file, or a key that is not a speed setting.
    """
    path = Path(name_or_path)
    if path.suffix not in (".toml", ".yaml", ".yml"):
        path = PROFILES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(profile_names())
            raise ConfigError(f"unknown profile {str(name_or_path)!r} (known: {known})")
    data = load_settings_file(path)
    for key in _flat_keys(data):
        if not key.startswith(PROFILE_KEYS):
            allowed = ", ".join(k + ("*" if k.endswith(".") else "") for k in PROFILE_KEYS)
            raise ConfigError(f"{path}: a profile may only tune speed ({allowed}), not {key!r}")
    return data


def build_config(
    *,
    profile: str | Path | None = None,
    files: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | None = None,
) -> VerifyConfig:
    """The one way to build a run's settings: defaults -> profile -> files -> overrides.

    Args:
        profile: a shipped profile name or a profile file (speed settings only).
        files: settings files (``--config``), applied in order; any setting allowed.
        overrides: explicit settings (``--set``, flags, ``verify(**options)``), nested or
            with ``a__b`` paths.

    Raises:
        ConfigError: anything invalid (the message names the file or the key).
    """
    config = VerifyConfig()
    if profile is not None:
        config = config.with_overrides(**load_profile(profile))
    for path in files:
        try:
            config = config.with_overrides(**load_settings_file(path))
        except ConfigError as exc:
            if str(path) in str(exc):
                raise
            raise ConfigError(f"{path}: {exc}") from exc
    if overrides:
        config = config.with_overrides(**overrides)
    return config
