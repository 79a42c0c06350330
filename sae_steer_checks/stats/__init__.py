"""Statistics for calibrated verdicts, one module per job.

- :mod:`~sae_steer_checks.stats.estimates`: slopes, item means, group-balanced moments, null summaries;
- :mod:`~sae_steer_checks.stats.resampling`: bootstraps over items and their intervals (percentile,
  basic), the unbiased squared norm of a mean;
- :mod:`~sae_steer_checks.stats.tests`: sign-flip tests, whole-matrix nulls, BH/BY and Holm;
- :mod:`~sae_steer_checks.stats.ratio`: ratios of paired mean slopes (bootstrap-t inversion, Fieller);
- :mod:`~sae_steer_checks.stats.draws`: generators, one stream per use, covariance-shaped draws, flips;
- :mod:`~sae_steer_checks.stats.gate`: the steering gate, random-direction nulls of a steering slope.
"""

from sae_steer_checks.stats.draws import (
    as_generator,
    covariance_draws,
    label_flips,
    stream_seed,
    streams,
    streams_from,
)
from sae_steer_checks.stats.estimates import (
    Interval,
    NullSummary,
    SlopeEstimate,
    cluster_mean,
    fit_slope,
    group_mean,
    item_slopes_summary,
    null_percentile,
    summarize_null,
    t_quantile,
)
from sae_steer_checks.stats.gate import (
    SteeringNull,
    beats_null,
    min_random_directions,
    random_directions,
    slope_estimate,
    steering_null,
    steering_p_value,
)
from sae_steer_checks.stats.ratio import (
    RATIO_METHODS,
    RatioInterval,
    RatioMethod,
    RatioTest,
    ratio_interval,
    ratio_test,
)
from sae_steer_checks.stats.resampling import (
    basic_interval,
    bootstrap_items,
    percentile_interval,
    resample_weights,
    squared_norm_u,
)
from sae_steer_checks.stats.tests import (
    NullDistribution,
    SignFlipResult,
    benjamini_hochberg,
    fraction_null,
    holm,
    sign_flip_test,
)

__all__ = [
    "RATIO_METHODS",
    "Interval",
    "NullDistribution",
    "NullSummary",
    "RatioInterval",
    "RatioMethod",
    "RatioTest",
    "SignFlipResult",
    "SlopeEstimate",
    "SteeringNull",
    "as_generator",
    "basic_interval",
    "beats_null",
    "benjamini_hochberg",
    "bootstrap_items",
    "cluster_mean",
    "covariance_draws",
    "fit_slope",
    "fraction_null",
    "group_mean",
    "holm",
    "item_slopes_summary",
    "label_flips",
    "min_random_directions",
    "null_percentile",
    "percentile_interval",
    "random_directions",
    "ratio_interval",
    "ratio_test",
    "resample_weights",
    "sign_flip_test",
    "slope_estimate",
    "squared_norm_u",
    "steering_null",
    "steering_p_value",
    "stream_seed",
    "streams",
    "streams_from",
    "summarize_null",
    "t_quantile",
]
