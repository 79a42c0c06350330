"""The ablation of the lost projections: projection algebra, one scoring call, the verdict and bad input."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.ablation import (
    NO_LOST,
    NO_SCORE,
    Ablation,
    _judge,
    ablation_check,
    lost_component,
    monte_carlo_p,
)
from sae_steer_checks.diagnostics.retention import NOT_STEERING
from sae_steer_checks.diagnostics.run import CheckConfig
from sae_steer_checks.diagnostics.space import SaeSpace, sae_space
from sae_steer_checks.report.verdicts import _ablation_verdict, clears
from tests.helpers.hand_saes import make_sae
from tests.helpers.readouts import mixed_readout

D, D_SAE, N_ITEMS = 16, 48, 24

pytestmark = pytest.mark.usefixtures("one_thread")


def _space(seed: int = 0, factor: float = 1.0) -> SaeSpace:
    gen = torch.Generator().manual_seed(seed)
    W = torch.nn.functional.normalize(torch.randn(D_SAE, D, generator=gen), dim=1)
    space = sae_space(make_sae(W, architecture="relu"))
    return dataclasses.replace(space, factor=factor)


def _vector(seed: int = 1) -> Tensor:
    return torch.randn(D, generator=torch.Generator().manual_seed(seed)) * 3.0


class Readout:
    """Item i scores ``(w + noise_i) . u``; counts its calls."""

    def __init__(self, w: Tensor, noise: float = 0.05, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.a = w.double()[None, :] + noise * w.double().norm() * torch.randn(
            N_ITEMS, D, generator=gen, dtype=torch.float64
        )
        self.calls = 0

    def score_batch(self, us: Tensor) -> Tensor:
        self.calls += 1
        return us.double() @ self.a.T

    def __call__(self, u: Tensor) -> Tensor:
        return self.score_batch(u[None])[0]


@pytest.mark.parametrize("factor", [1.0, 0.25, 7.0])
@pytest.mark.parametrize("features", [(3,), (0, 5, 9), tuple(range(0, 40, 3))])
def test_the_vector_splits_into_its_part_in_the_span_and_the_rest(
    factor: float, features: tuple[int, ...]
) -> None:
    space, v = _space(factor=factor), _vector()
    without, removed = lost_component(space, v, features)
    rows = space.W_dec[list(features)].double()
    torch.testing.assert_close(without + removed, v, rtol=0, atol=1e-5)
    # removed lies in the span of the rows: least squares reproduces it
    coef = torch.linalg.lstsq(rows.T, removed.double()[:, None]).solution
    torch.testing.assert_close((rows.T @ coef)[:, 0], removed.double(), rtol=0, atol=1e-5)
    # the rest is orthogonal to every row; the input space's scale does not move the split
    torch.testing.assert_close(
        rows @ without.double(), torch.zeros(len(features), dtype=torch.float64), rtol=0, atol=1e-4
    )
    base, _ = lost_component(_space(factor=1.0), v, features)
    torch.testing.assert_close(without, base, rtol=0, atol=1e-5)


def test_dependent_and_full_rank_rows_are_handled() -> None:
    space, v = _space(), _vector()
    rows = space.W_dec.clone()
    rows[1] = -2.0 * rows[0]  # row 1 adds no direction to row 0
    space = dataclasses.replace(space, W_dec=rows)
    one, _ = lost_component(space, v, (0,))
    both, _ = lost_component(space, v, (0, 1))
    torch.testing.assert_close(one, both, rtol=0, atol=1e-5)
    everything, removed = lost_component(space, v, tuple(range(D_SAE)))  # the rows span the whole space
    torch.testing.assert_close(removed, v, rtol=0, atol=1e-4)
    assert float(everything.norm()) < 1e-4
    kept, nothing = lost_component(space, v, ())
    torch.testing.assert_close(kept, v)
    assert float(nothing.norm()) == 0.0


def _check(
    w: Tensor, features: tuple[int, ...], space: SaeSpace | None = None, noise: float = 0.05, **kwargs: object
) -> tuple[Ablation, Readout]:
    score = Readout(w, noise=noise)
    space = _space() if space is None else space
    live = torch.ones(space.d_sae, dtype=torch.bool)
    opts: dict = {"steers": True, "n_null": 19, "n_boot": 50, "generator": 0, **kwargs}
    return ablation_check(score, space, _vector(), features, live, **opts), score


def test_behaviour_in_the_lost_span_is_a_problem_and_one_call_scores_everything() -> None:
    space, features = _space(), (2, 7)
    w = space.W_dec[list(features)].sum(0)  # the behaviour reads only the lost span
    ablation, score = _check(w, features)
    assert score.calls == 1
    assert ablation.status == "problem", ablation.reason
    assert ablation.cost is not None
    assert ablation.cost > 0.9
    assert ablation.null_costs is not None
    assert ablation.null_costs.shape == (19,)
    assert ablation.p_value == pytest.approx(1 / 20)
    d = ablation.to_dict()
    assert d["null"]["p_value"] == d["p_value"]
    assert d["null"]["gate"] is False  # a reported baseline
    assert d["bound"] == 0.2  # the verdict reads ablation_cost alone
    assert ablation.removed_norm_share is not None
    assert d["energy_share"] == pytest.approx(ablation.removed_norm_share**2)
    verdict = _ablation_verdict(d)
    assert verdict.status == "problem"
    assert verdict.rule is not None
    assert verdict.rule.bound == 0.2
    assert clears(verdict.interval, verdict.rule)
    assert verdict.sentence.endswith(
        "removing v's component along the flagged lost features' decoder rows costs more than 20.0% of "
        "v's slope."
    )


def test_behaviour_orthogonal_to_the_lost_span_is_fine() -> None:
    space, features = _space(), (2, 7)
    rows = space.W_dec[list(features)].double()
    w = torch.randn(D, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    w = w - rows.T @ torch.linalg.lstsq(rows.T, w[:, None]).solution[:, 0]  # orthogonal to the span
    ablation, _ = _check(w.float(), features)
    assert ablation.status == "fine", ablation.reason
    verdict = _ablation_verdict(ablation.to_dict())
    assert verdict.status == "fine"
    assert not clears(verdict.interval, verdict.rule)
    assert verdict.sentence.endswith("costs less than 20.0% of v's slope.")


def test_a_vector_that_does_not_steer_is_inconclusive() -> None:
    space, features = _space(), (2, 7)
    ablation, _ = _check(space.W_dec[list(features)].sum(0), features, steers=False)
    assert (ablation.status, ablation.reason) == ("inconclusive", NOT_STEERING)


def test_without_a_score_or_lost_features_it_is_not_run_and_says_which() -> None:
    space, live = _space(), torch.ones(D_SAE, dtype=torch.bool)
    none = ablation_check(None, space, _vector(), (1,), live, steers=True)
    assert (none.status, none.reason) == ("not run", NO_SCORE)
    score = Readout(_vector(3))
    empty = ablation_check(score, space, _vector(), (), live, steers=True)
    assert (empty.status, empty.reason) == ("not run", NO_LOST)
    assert score.calls == 0
    assert _ablation_verdict(empty.to_dict()).sentence == f"Not run: {NO_LOST}."
    assert _ablation_verdict(None).status == "not run"


@pytest.mark.parametrize(("n_live", "has_null"), [(3, False), (6, False), (7, True)])
def test_the_baseline_needs_n_null_plus_one_row_sets_and_is_not_a_gate(n_live: int, has_null: bool) -> None:
    space, features = _space(), (0, 1)
    live = torch.zeros(D_SAE, dtype=torch.bool)
    live[: n_live + 2] = True  # a pool of n_live rows besides the 2 lost ones
    w = space.W_dec[list(features)].sum(0)
    ablation = ablation_check(Readout(w), space, _vector(), features, live, steers=True, n_null=19, n_boot=50)
    assert ablation.n_pool == n_live
    assert (ablation.null_costs is not None) is has_null  # C(6, 2) = 15 < 20 <= C(7, 2) = 21
    assert ablation.status == "problem", ablation.reason  # the verdict does not need the baseline
    assert (ablation.to_dict()["null"] is not None) is has_null


def test_the_monte_carlo_p_and_critical_cost_are_exact() -> None:
    null = torch.arange(39, dtype=torch.float64) / 100  # largest 0.38, 2nd largest 0.37
    assert monte_carlo_p(0.37, null, 0.05) == (pytest.approx(3 / 40), 0.37)  # ties count against it
    assert monte_carlo_p(0.375, null, 0.05) == (pytest.approx(2 / 40), 0.37)  # just above: p <= alpha
    assert monte_carlo_p(0.39, null, 0.05)[0] == pytest.approx(1 / 40)
    tied = torch.full((39,), 0.5, dtype=torch.float64)
    assert monte_carlo_p(0.5, tied, 0.05)[0] == pytest.approx(1.0)
    with_nan = torch.cat([null, torch.tensor([math.nan, math.inf, -math.inf], dtype=torch.float64)])
    assert monte_carlo_p(0.375, with_nan, 0.05) == (pytest.approx(2 / 40), 0.37)  # non-finite dropped
    assert monte_carlo_p(0.5, torch.full((3,), math.nan, dtype=torch.float64), 0.05) == (None, None)
    assert monte_carlo_p(0.5, null[:5], 0.05) == (pytest.approx(1 / 6), None)  # too few for a critical


def _kept(cost_low: float, cost_high: float) -> object:
    space, features = _space(), (2, 7)
    ablation, _ = _check(space.W_dec[list(features)].sum(0), features)
    assert ablation.share_kept is not None
    return dataclasses.replace(ablation.share_kept, ci_low=1 - cost_high, ci_high=1 - cost_low)


@pytest.mark.parametrize(
    ("low", "high", "status"),
    [
        (0.21, 0.9, "problem"),
        (0.19, 0.9, "inconclusive"),  # "problem" reads the low end
        (0.15, 0.25, "inconclusive"),  # straddles ablation_cost
        (0.01, 0.19, "fine"),
        (0.01, 0.21, "inconclusive"),  # "fine" reads the high end
        (-0.5, 0.19, "fine"),
    ],
)
def test_problem_reads_the_low_end_and_fine_the_high_end(low: float, high: float, status: str) -> None:
    assert _judge(_kept(low, high), True, 0.2, 0.5)[0] == status  # type: ignore[arg-type]
    assert _judge(_kept(low, high), False, 0.2, 0.5) == ("inconclusive", NOT_STEERING)  # type: ignore[arg-type]


def test_a_true_cost_at_the_bound_with_noisy_items_is_inconclusive() -> None:
    space, features, v = _space(), (2, 7), _vector()
    without, removed = lost_component(space, v, features)
    ablation, _ = _check(mixed_readout(without, removed, 0.2).float(), features, noise=0.3)
    assert ablation.cost_interval is not None
    low, high = ablation.cost_interval
    assert low < 0.2 < high
    assert ablation.status == "inconclusive", ablation.reason
    assert _ablation_verdict(ablation.to_dict()).status == "inconclusive"


def test_random_rows_carrying_the_behaviour_cost_about_one() -> None:
    # every pool row lies in one plane that carries the whole behaviour: any 2 rows span it
    space, features = _space(), (0, 1)
    gen = torch.Generator().manual_seed(3)
    plane = torch.linalg.qr(torch.randn(D, 2, generator=gen)).Q.T  # [2, D] orthonormal
    rows = space.W_dec.clone()
    rows[2:] = torch.nn.functional.normalize(torch.randn(D_SAE - 2, 2, generator=gen) @ plane, dim=1)
    rows[:2] = torch.nn.functional.normalize(torch.randn(2, D, generator=gen), dim=1)
    space = dataclasses.replace(space, W_dec=rows)
    ablation, _ = _check(plane.sum(0), features, space=space, noise=0.01)
    assert ablation.null_costs is not None
    torch.testing.assert_close(ablation.null_costs, torch.ones(19, dtype=torch.float64), rtol=0, atol=0.05)


def test_null_costs_do_not_move_with_the_input_space_scale() -> None:
    base = _space()
    w = base.W_dec[[2, 7]].sum(0)
    costs = [_check(w, (2, 7), space=_space(factor=f))[0].null_costs for f in (1.0, 0.25, 7.0)]
    assert all(c is not None for c in costs)
    for c in costs[1:]:
        torch.testing.assert_close(c, costs[0], rtol=0, atol=1e-6)


def test_layer_norm_centres_the_decoder_rows() -> None:
    base = dataclasses.replace(_space(), normalization="layer_norm")
    centred = base.W_dec - base.W_dec.mean(1, keepdim=True)
    plain = dataclasses.replace(base, W_dec=centred)
    shifted = dataclasses.replace(base, W_dec=centred + 0.7)  # rows with a non-zero mean
    v, features = _vector(), (2, 7, 11)
    _w0, r0 = lost_component(plain, v, features)
    w1, r1 = lost_component(shifted, v, features)
    torch.testing.assert_close(r1, r0, rtol=0, atol=1e-5)  # the mean the SAE never sees is ignored
    assert abs(float(r1.mean())) < 1e-5  # v's mean component stays in "without"
    torch.testing.assert_close(float(w1.mean()), float(v.mean()), rtol=0, atol=1e-5)
    torch.testing.assert_close(centred[list(features)].double() @ w1.double(),
                               torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-4)  # fmt: skip
    w = centred[[2, 7]].sum(0)
    a0, _ = _check(w, (2, 7), space=plain)
    a1, _ = _check(w, (2, 7), space=shifted)
    assert a0.null_costs is not None
    assert a1.null_costs is not None
    torch.testing.assert_close(a1.null_costs, a0.null_costs, rtol=0, atol=1e-5)


def test_the_null_and_each_bootstrap_draw_from_their_own_streams() -> None:
    space, features = _space(), (2, 7)
    w = space.W_dec[list(features)].sum(0) + 0.5 * _vector(4)
    a, _ = _check(w, features, noise=0.3, n_null=19)
    b, _ = _check(w, features, noise=0.3, n_null=39)  # more random rows: the bootstraps do not move
    assert a.share_kept is not None
    assert b.share_kept is not None
    assert a.share_removed is not None
    assert b.share_removed is not None
    assert (a.share_kept.ci_low, a.share_kept.ci_high) == (b.share_kept.ci_low, b.share_kept.ci_high)
    assert a.share_removed.ci_low == b.share_removed.ci_low
    c, _ = _check(w, features, noise=0.3, n_boot=80)  # more bootstrap draws: the null does not move
    assert c.null_costs is not None
    assert a.null_costs is not None
    torch.testing.assert_close(c.null_costs, a.null_costs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"vector": torch.zeros(D + 1)}, "vector"),
        ({"features": (D_SAE,)}, "features"),
        ({"features": (1, 1)}, "features"),
        ({"live": torch.ones(D_SAE)}, "live"),
        ({"n_null": 5}, "n_null"),
        ({"max_cost": 1.5}, "max_cost"),
        ({"alpha": 0.0}, "alpha"),
        ({"multipliers": (1.0, 1.0)}, "multipliers"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict, name: str) -> None:
    args: dict = {
        "vector": _vector(),
        "features": (1,),
        "live": torch.ones(D_SAE, dtype=torch.bool),
        **kwargs,
    }
    with pytest.raises(ValueError, match=name):
        ablation_check(Readout(_vector(3)), _space(), steers=True, **args)


def test_the_config_bound_is_validated_and_reaches_the_provenance() -> None:
    with pytest.raises(ValueError, match="ablation_cost"):
        CheckConfig(ablation_cost=1.0)
    assert dataclasses.asdict(CheckConfig(ablation_cost=0.3))["ablation_cost"] == 0.3
    assert math.isclose(CheckConfig().ablation_cost, 0.2)
