"""The checks on an SAE and a steering vector: norm, encoder bias, leaning, pairs, fits, retention."""

from sae_steer_checks.diagnostics.bias import BiasCheck, bias_check
from sae_steer_checks.diagnostics.decompose import SparseCode, gradient_pursuit, omp
from sae_steer_checks.diagnostics.leaning import LeaningCheck, leaning_check
from sae_steer_checks.diagnostics.norms import NormCheck, norm_check
from sae_steer_checks.diagnostics.pairs import AlignedPairs, SpuriousCheck, find_aligned_pairs, spurious_check
from sae_steer_checks.diagnostics.retention import Retention, ScoreFn, retention_check
from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks

__all__ = [
    "AlignedPairs",
    "BiasCheck",
    "CheckConfig",
    "CheckResult",
    "LeaningCheck",
    "NormCheck",
    "Retention",
    "ScoreFn",
    "SparseCode",
    "SpuriousCheck",
    "bias_check",
    "find_aligned_pairs",
    "gradient_pursuit",
    "leaning_check",
    "norm_check",
    "omp",
    "retention_check",
    "run_checks",
    "spurious_check",
]
