"""The schema of ``report.json``, explicit in code: one TypedDict per section, checked at runtime.

The TypedDicts are the one source of truth: :func:`validate_report` walks them with
``typing.get_type_hints`` (keys present, no unknown keys, value types), so a key renamed in a
diagnostic's ``to_dict()`` fails loudly instead of turning a verdict into "not run". Only
``provenance`` is open (callers may record anything there); every other section is closed.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, Union, get_args, get_origin, get_type_hints

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "AblationSection",
    "AlignedPairsSection",
    "BiasSection",
    "ConventionSection",
    "DecompositionNullsSection",
    "DecompositionSection",
    "FeatureValue",
    "FigureEntry",
    "FiguresSection",
    "IntervalEntry",
    "LeaningSection",
    "LearnedSection",
    "NormSection",
    "NullEntry",
    "PairEntry",
    "Provenance",
    "Report",
    "RetentionSection",
    "RuleEntry",
    "SignConflictEntry",
    "SpuriousEntry",
    "Status",
    "VerdictEntry",
    "validate_report",
]

#: Version of the layout below; 2 added ``verdicts`` (1 had none); 3 added each verdict's ``rule``,
#: the leaning count's interval and null, the spurious share's interval and null, the bias's
#: in-distribution reference and the signed-fit gap's interval; 4 the population norm, the bounds
#: echoed in their sections, the leaning test's family, the one-sided retention test and the
#: decomposition compared at SAE(v)'s own sparsity. Keys added within a version: every check's section
#: carries the status its check decided (``verdict``, or ``status`` for retention) and a ``reason``;
#: ``norm.verdict_interval`` and ``bias.mass_bound`` are the interval and the bound those verdicts read;
#: ``ablation`` (optional, so earlier reports still validate) is steering without the lost projections;
#: ``learned`` (optional) a steering vector learned in the SAE basis, swept in ``retention`` as
#: ``learned`` (``ratio_learned``).
SCHEMA_VERSION = 4

Status = Literal["problem", "fine", "inconclusive", "not run"]
STATUSES: tuple[str, ...] = get_args(Status)


class FeatureValue(TypedDict):
    """One feature of a code and its activation."""

    feature: int
    value: float


class NormSection(TypedDict):
    """``norm``: the steering vector's norm against activation norms."""

    steering_norm: float
    activation_norm_median: float
    quantiles: dict[str, float]
    ratio: float
    percentile: float
    n_activations: int
    interval: list[float] | None
    percentile_interval: list[float] | None
    population_norm: float | None
    interval_method: str
    bound_percentile: float
    bound: float
    verdict_interval: list[float] | None
    verdict: Status
    reason: str


class ConventionSection(TypedDict):
    """SAE(v) against SAE(0) under one decoder-bias convention."""

    decoder_bias_subtracted: bool
    top_features_vector: list[FeatureValue]
    top_features_zero: list[FeatureValue]
    overlap: float
    mass_in_zero: float
    same_support: bool
    l0_vector: int
    l0_zero: int
    top_increases: list[FeatureValue]
    top_decreases: list[FeatureValue]


class BiasSection(ConventionSection):
    """``bias``: the SAE's own convention at the top level, the other one nested."""

    top_k: int
    other_convention: ConventionSection
    delta_top_features: list[FeatureValue] | None
    delta_bottom_features: list[FeatureValue] | None
    mass_interval: list[float] | None
    mass_null: dict[str, float] | None
    mass_reference: dict[str, float] | None
    share_threshold: float
    interval_method: str
    mass_bound: float
    verdict: Status
    reason: str


class LeaningSection(TypedDict):
    """``negative_leaning``: features more active on negative prompts."""

    fraction: float
    n_active: int
    n_negative: int
    significant_fraction: float
    n_significant: int
    n_significant_negative: int
    alpha: float
    n_pairs: int
    dropped_by_encoder: list[int]
    test: str
    fdr_method: str
    n_items: int
    n_perm: int
    max_perm: int
    min_effect: float
    min_effect_definition: str
    n_min_effect: int
    n_min_effect_negative: int
    min_effect_fraction: float | None
    fraction_interval: dict[str, Any] | None
    fraction_null: dict[str, Any] | None
    flagged: list[int]
    flagged_interval: dict[str, Any]
    confirmed: list[int]
    flagged_null: dict[str, float] | None
    flagged_bound: float
    n_tested: int
    n_untested_candidates: int
    verdict: Status
    reason: str


class PairEntry(TypedDict):
    """One negatively aligned decoder pair."""

    feature: int
    partner: int
    cosine: float
    status: Literal["live", "dead", "mixed"]


class SpuriousEntry(TypedDict):
    """A positive SAE(v) coefficient explained by a partner's negative projection."""

    feature: int
    explained_by: int
    cosine: float
    value: float
    partner_projection: float
    share: float


class SignConflictEntry(TypedDict):
    """A feature positive in SAE(v) whose projection or signed coefficient is negative."""

    feature: int
    value: float
    projection: float
    signed_coefficient: float


class AlignedPairsSection(TypedDict):
    """``aligned_pairs``: the pair search and the spurious-coefficient check, merged."""

    threshold: float
    n_pairs: int
    n_live: int
    n_dead: int
    n_mixed: int
    pairs: list[PairEntry]
    truncated: bool
    null_expected_pairs: float | None
    spurious: list[SpuriousEntry]
    bias_explained: list[int]
    unexplained: list[int]
    sign_conflicts: list[SignConflictEntry]
    rare_rate: float
    below_share: list[Any]
    min_share: float
    max_share: float
    share_interval: list[float] | None
    share_null: dict[str, float] | None
    share_reference: dict[str, float] | None
    share_bound: float
    share_definition: str
    interval_method: str
    reason: str
    verdict: Status


class DecompositionSection(TypedDict):
    """One entry of ``decompositions`` (``sae``, ``signed``, ``omp``, ``gradient_pursuit``)."""

    cosine: float | None
    rel_error: float | None
    error_norm: float
    l0: int
    n_negative: int
    method: str
    k: NotRequired[int]
    """Support size; absent for ``sae``, whose support is the encoder's."""


class DecompositionNullsSection(TypedDict):
    """``decomposition_nulls``: each account's cosine with v beside null vectors; the cosine-vs-k curves."""

    norm: float
    families: list[str]
    n_null: dict[str, int]
    accounts: dict[str, Any]
    curve: dict[str, Any]
    k_default: int
    k_rule: str
    min_gap: float
    alpha: float
    verdict: Status
    reason: str
    verdict_beats_null: bool
    verdict_p_values: dict[str, float]
    verdict_gap: float
    verdict_gap_interval: list[float] | None
    verdict_spread: float
    verdict_needed_gap: float
    sae_l0: int | None
    n_flips: int
    n_boot: int
    verdict_k: int
    verdict_gate_family: str
    verdict_gate_p_value: float
    verdict_signal_p_value: float | None
    verdict_is_signal: bool
    verdict_interval_method: str
    verdict_level: float


class RetentionSection(TypedDict):
    """``retention``: steerability slopes of the vector and its reconstructions."""

    multipliers: list[float]
    slopes: dict[str, float]
    stderr: dict[str, float | None]
    scores: dict[str, list[float]]
    ratio_sae: float | None
    ratio_signed: float | None
    ratio_learned: NotRequired[float | None]
    """Only when a learned vector was swept beside v."""
    slope_estimates: dict[str, dict[str, Any] | None]
    null: dict[str, Any] | None
    steers: bool
    ratio_intervals: dict[str, Any]
    statuses: dict[str, Any]
    status: Status
    reason: str | None
    threshold: float
    n_items: int


class AblationSection(TypedDict):
    """``ablation``: steering without the lost projections and with them alone, against random removals."""

    features: list[int]
    n_features: int
    rank: int
    projection: str
    removed_norm_share: float | None
    energy_share: NotRequired[float | None]
    """``removed_norm_share ** 2``: the cost expected were the behaviour spread over v by energy."""
    multipliers: list[float]
    slopes: dict[str, float]
    cost: float | None
    cost_interval: list[float] | None
    share_kept: dict[str, Any] | None
    share_removed: dict[str, Any] | None
    null: dict[str, Any] | None
    p_value: float | None
    bound: float | None
    """What the cost's interval is judged against (``max_cost``; the random rows are not a gate)."""
    max_cost: float
    alpha: float
    steers: bool
    n_items: int
    n_pool: int
    status: Status
    reason: str


class LearnedSection(TypedDict):
    """``learned``: a steering vector learned in the SAE basis (its slope and ratio are in ``retention``)."""

    n_support: int
    n_negative: int
    cosine: float
    norm: float
    vector_norm: float
    norm_percentile: float
    top_features: list[FeatureValue]
    in_sae: int | None
    in_signed: int | None
    training: dict[str, Any]


class Provenance(TypedDict):
    """``provenance``: what :func:`run_checks` records, plus what the caller adds (open section)."""

    versions: dict[str, str]
    sae: dict[str, Any]
    d_model: int
    d_sae: int
    n_pairs: int
    n_activations: int
    activation_source: str
    reconstruction: str
    seed: NotRequired[int | None]
    command: NotRequired[str]
    check: NotRequired[str]
    model: NotRequired[str]
    gguf_file: NotRequired[str | None]
    layer: NotRequired[int | None]
    sae_source: NotRequired[Any]
    dataset: NotRequired[str]
    dataset_path: NotRequired[str]
    dataset_sha256: NotRequired[str]
    dataset_kind: NotRequired[str]
    n_items: NotRequired[int]
    extraction: NotRequired[dict[str, Any]]
    behaviour: NotRequired[dict[str, Any]]
    inputs: NotRequired[dict[str, Any]]
    world_config: NotRequired[dict[str, Any]]
    device: NotRequired[str]
    dtype: NotRequired[str]


class FigureEntry(TypedDict):
    """The key figure a verdict is read from: a report path (or expression) and its value."""

    name: str
    value: float | None


class IntervalEntry(TypedDict):
    """A confidence interval around the key figure."""

    low: float
    high: float
    level: float
    method: str


class NullEntry(TypedDict):
    """The key figure's null distribution (e.g. random vectors of the same norm)."""

    name: str
    mean: float
    q95: float
    percentile: float
    n: int


class RuleEntry(TypedDict):
    """When a verdict says ``problem``: its interval lies wholly on ``side`` of ``bound``."""

    side: Literal["above", "below"]
    bound: float
    what: str


class VerdictEntry(TypedDict):
    """One mechanism's verdict as written to ``report.json``."""

    mechanism: str
    status: Status
    sentence: str
    figure: FigureEntry | None
    interval: IntervalEntry | None
    null: NullEntry | None
    rule: RuleEntry | None


class NormsFigure(TypedDict):
    """``figures.norms``: histogram of the positive activation norms, beside ``||v||``."""

    steering_norm: float
    edges: list[float]
    counts: list[int]
    median: float
    percent_shorter: float


class TopFeaturesFigure(TypedDict):
    """``figures.top_features``: SAE(v)'s and SAE(0)'s top features, both codes' values at them."""

    k: int
    top_vector: list[int]
    top_zero: list[int]
    features: list[int]
    vector: list[float]
    zero: list[float]


class LeaningFigure(TypedDict):
    """``figures.leaning``: mean activations of the plotted features; counts over all active ones."""

    features: list[int]
    mean_pos: list[float]
    mean_neg: list[float]
    significant: list[int]
    circled: list[int]
    n_dropped: int
    n_active: int
    n_negative: int
    interval: list[float | None] | None
    null: list[float | None] | None


class CosinePairFigure(TypedDict):
    """A flagged decoder pair of the cosine figure."""

    feature: int
    partner: int
    cosine: float


class CosinesFigure(TypedDict):
    """``figures.cosines``: histogram of decoder cosines among the relevant features, flagged pairs."""

    edges: list[float]
    counts: list[int]
    threshold: float
    n_features: int
    flagged: list[CosinePairFigure]
    n_flagged: int
    n_flagged_total: int | None


class DecompositionFigure(TypedDict):
    """``figures.decomposition``: the signed fit's cosine-vs-k curve, each null family's mean and q95."""

    curve: list[float | None]
    null_mean: dict[str, list[float | None]]
    null_q95: dict[str, list[float | None]]
    n_null: dict[str, int]
    sae_cosine: float | None
    k: int


class RetentionFigure(TypedDict):
    """``figures.retention``: behaviour score per multiplier, its standard errors, the random slopes."""

    multipliers: list[float]
    scores: dict[str, list[float | None]]
    score_se: dict[str, list[float | None]]
    null_slopes: list[float | None]


class FiguresSection(TypedDict):
    """``figures``: every number the plots draw, so a report can be redrawn from report.json alone."""

    norms: NormsFigure
    top_features: TopFeaturesFigure
    leaning: LeaningFigure
    cosines: CosinesFigure | None
    decomposition: DecompositionFigure | None
    retention: RetentionFigure | None


class Report(TypedDict):
    """The whole ``report.json``."""

    schema_version: int
    provenance: Provenance
    norm: NormSection
    bias: BiasSection
    negative_leaning: LeaningSection
    aligned_pairs: AlignedPairsSection
    decompositions: dict[str, DecompositionSection]
    decomposition_nulls: DecompositionNullsSection | None
    retention: RetentionSection | None
    ablation: NotRequired[AblationSection | None]
    """Absent from reports written before the section existed; None when no score was given."""
    learned: NotRequired[LearnedSection | None]
    """Absent from reports written before the section existed; None when no vector was learned."""
    verdicts: list[VerdictEntry]
    figures: NotRequired[FiguresSection | None]
    """The plotted numbers; absent from reports written before the section existed."""


# Sections whose unknown keys are accepted (callers record what they like in the provenance).
_OPEN: tuple[type, ...] = (Provenance,)


def validate_report(report: Mapping[str, Any]) -> None:
    """Check ``report`` against :class:`Report`: keys present, no unknown keys, value types.

    NaN and infinities count as floats. ``report.json`` stores them as ``null``, so a report with a
    non-finite float outside a ``float | None`` field validates before writing but not after reading.

    Raises:
        ValueError: naming the path of the first bad key, e.g. ``report['norm']['ratio']: missing``.
    """
    _check(report, Report, "report")


def _check(value: Any, tp: Any, path: str) -> None:
    if tp is Any:
        return
    if _is_typeddict(tp):
        _check_typeddict(value, tp, path)
        return
    origin = get_origin(tp)
    if origin is Union or origin is types.UnionType:
        _check_union(value, get_args(tp), path)
    elif origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{path}: expected one of {list(get_args(tp))}, got {value!r}")
    elif origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = get_args(tp)
        for i, v in enumerate(value):
            _check(v, item, f"{path}[{i}]")
    elif origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a dict, got {type(value).__name__}")
        _, item = get_args(tp)
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: key {k!r} is not a string")
            _check(v, item, f"{path}[{k!r}]")
    elif not _scalar_ok(value, tp):
        raise ValueError(f"{path}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__}")


def _check_typeddict(value: Any, tp: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a dict ({tp.__name__}), got {type(value).__name__}")
    hints, required = _fields(tp)
    for key in required:
        if key not in value:
            raise ValueError(f"{path}[{key!r}]: missing")
    if tp not in _OPEN:
        unknown = sorted(str(k) for k in value if k not in hints)
        if unknown:
            raise ValueError(f"{path}[{unknown[0]!r}]: unknown key (not in {tp.__name__})")
    for key, sub in hints.items():
        if key in value:
            _check(value[key], sub, f"{path}[{key!r}]")


def _fields(tp: Any) -> tuple[dict[str, Any], list[str]]:
    # Read NotRequired from the hints: with postponed annotations (PEP 563) Python 3.11's
    # ``__required_keys__`` counts every key as required.
    hints, required = {}, []
    for key, hint in get_type_hints(tp, include_extras=True).items():
        if get_origin(hint) is NotRequired:
            hints[key] = get_args(hint)[0]
        else:
            hints[key] = hint
            required.append(key)
    return hints, required


def _check_union(value: Any, options: tuple[Any, ...], path: str) -> None:
    if value is None and type(None) in options:
        return
    candidates = [o for o in options if o is not type(None)]
    if len(candidates) == 1:  # X | None with a value: X's own error names the deepest path
        _check(value, candidates[0], path)
        return
    errors = []
    for option in candidates:
        try:
            _check(value, option, path)
            return
        except ValueError as error:
            errors.append(str(error))
    raise ValueError(errors[0])


def _scalar_ok(value: Any, tp: Any) -> bool:
    if tp is None or tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        # an int is a valid JSON number for a float field (NaN and infinities are floats too)
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    raise TypeError(f"schema type {tp!r} is not supported by validate_report")


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")
