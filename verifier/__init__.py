"""The product layer: ``verify(model, spec) -> Result``, settings, results and the CLI.

Typical use::

    from verifier import verify, VerifyConfig

    result = verify("net.onnx", "prop.vnnlib", VerifyConfig(timeout=60))
    print(result.status.word)          # 'sat', 'unsat', 'unknown' or 'timeout'
    if result.counterexample is not None:
        print(result.to_vnncomp())     # VNN-COMP results-file text

Bad input raises :class:`InputError` (a ``ValueError``) with a one-line message.
"""

from verifier.config import AttackConfig, ConfigError, InputError, RuntimeConfig, VerifyConfig
from verifier.deadline import Deadline
from verifier.pipeline import verify
from verifier.result import Counterexample, Result, Status

__all__ = [
    "AttackConfig",
    "ConfigError",
    "Counterexample",
    "Deadline",
    "InputError",
    "Result",
    "RuntimeConfig",
    "Status",
    "VerifyConfig",
    "verify",
]
