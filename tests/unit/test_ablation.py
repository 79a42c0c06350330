"""The ablation of the lost projections: projection algebra, one scoring call, the verdict and bad input."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor

from sae_steer_checks.diagnostics.ablation import NO_LOST, NO_SCORE, Ablation, ablation_check, lost_component
from sae_steer_checks.diagnostics.retention import NOT_STEERING
from sae_steer_checks.diagnostics.run import CheckConfig
from sae_steer_checks.diagnostics.space import SaeSpace, sae_space
from sae_steer_checks.report.verdicts import _ablation_verdict, clears
from tests.helpers.hand_saes import make_sae

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


def _check(w: Tensor, features: tuple[int, ...], **kwargs: object) -> tuple[Ablation, Readout]:
    score = Readout(w)
    space = _space()
    live = torch.ones(D_SAE, dtype=torch.bool)
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
    assert d["bound"] == max(0.2, d["null"]["critical"])
    verdict = _ablation_verdict(d)
    assert verdict.status == "problem"
    assert clears(verdict.interval, verdict.rule)
    assert verdict.sentence.endswith("the lost projections carry the behaviour.")


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


def test_too_few_live_features_for_the_null_is_inconclusive() -> None:
    live = torch.zeros(D_SAE, dtype=torch.bool)
    live[:3] = True
    ablation = ablation_check(Readout(_vector(3)), _space(), _vector(), (0, 1), live, steers=True, n_boot=50)
    assert ablation.status == "inconclusive"
    assert "too few" in ablation.reason
    assert ablation.null_costs is None


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
