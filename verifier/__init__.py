"""The product layer: ``verify(model, spec) -> Result``, settings, results and the CLI.

Typical use::

    from verifier import verify, VerifyConfig

    result = verify("net.onnx", "prop.vnnlib", VerifyConfig(timeout=60))
    print(result.status.word)          # 'sat', 'unsat', 'unknown' or 'timeout'
    if result.counterexample is not None:
        print(result.to_vnncomp())     # VNN-COMP results-file text

Robustness of a classifier (ONNX path, ``onnx.ModelProto`` or torch ``nn.Module``)::

    cert = certify_robustness(net, x, eps=0.01, label=y, norm="inf", domain=(0.0, 1.0))
    radius = certified_radius(net, x[0], int(y[0]), domain=(0.0, 1.0))

Bad input raises :class:`InputError` (a ``ValueError``) with a one-line message.
"""

from verifier.api import certified_radius, certify_robustness, verify
from verifier.config import (
    AttackConfig,
    BoundsConfig,
    ConfigError,
    InputError,
    RuntimeConfig,
    VerifyConfig,
    build_config,
)
from verifier.deadline import Deadline
from verifier.result import Counterexample, Result, Status
from verifier.robustness import Certificate, CertStatus, Radius

__all__ = [
    "AttackConfig",
    "BoundsConfig",
    "CertStatus",
    "Certificate",
    "ConfigError",
    "Counterexample",
    "Deadline",
    "InputError",
    "Radius",
    "Result",
    "RuntimeConfig",
    "Status",
    "VerifyConfig",
    "build_config",
    "certified_radius",
    "certify_robustness",
    "verify",
]
