"""A steering vector learned over an SAE's decoder rows on a tiny model: objective, budget, seed, inputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from sae_steer_checks.data.schema import ABItem, FreeformItem, load_ab_items
from sae_steer_checks.diagnostics.learned import learned_summary
from sae_steer_checks.stats import fit_slope, group_mean
from sae_steer_checks.steering.learned import LearnedVector, fit_sparse_steering, learn_in_sae_basis
from sae_steer_checks.steering.objective import BehaviourObjective
from sae_steer_checks.steering.scoring import item_scores, score_grid
from sae_steer_checks.steering.tasks import (
    BehaviourTask,
    ab_task,
    completion_task,
    freeform_task,
    training_task,
)
from sae_steer_checks.synthetic import WorldConfig
from tests.helpers.hand_saes import make_sae, random_unit_rows
from tests.helpers.tiny_lm import TINY_WIDTH, tiny_model, word_tokenizer

LAYER = 1
OPENINGS = [
    FreeformItem("The film was", " good", " bad"),
    FreeformItem("Lunch today was", " very good", " not good at all"),
    FreeformItem("It rained and the day was", " fine", " awful"),
]


@pytest.fixture(scope="module")
def items() -> list[ABItem]:
    return load_ab_items("corrigibility")[:8]


@pytest.fixture(scope="module")
def tok(items: list[ABItem]) -> PreTrainedTokenizerFast:
    words = [i.question for i in items] + [f"{o.prompt}{o.positive}{o.negative}" for o in OPENINGS]
    return word_tokenizer(words)


@pytest.fixture(scope="module")
def model(tok: PreTrainedTokenizerFast) -> Any:
    return tiny_model("gemma3", len(tok), seed=2)


@pytest.fixture(scope="module")
def train(tok: PreTrainedTokenizerFast, items: list[ABItem]) -> BehaviourTask:
    return ab_task(tok, items[:5], swap=True)


@pytest.fixture(scope="module")
def sae() -> Any:
    return make_sae(random_unit_rows(96, TINY_WIDTH, seed=1))


@pytest.mark.parametrize("positions", ["answer", "all"])
@pytest.mark.parametrize("task_kind", ["ab", "ab_groups", "freeform"])
def test_objective_is_the_sweeps_slope_and_differentiable(
    model: Any, tok: PreTrainedTokenizerFast, items: list[ABItem], positions: str, task_kind: str
) -> None:
    tasks = {
        "ab": lambda: ab_task(tok, items[:4], swap=True),
        "ab_groups": lambda: ab_task(tok, items, swap=False),  # letters weighted by group
        "freeform": lambda: freeform_task(tok, [o.prompt for o in OPENINGS], [" good", " fine"], [" bad"]),
    }
    task = tasks[task_kind]()
    ms = (-2.0, 0.0, 1.0, 3.0)
    objective = BehaviourObjective(model, task, LAYER, multipliers=ms, positions=positions, batch_size=3)
    u = torch.randn(TINY_WIDTH, generator=torch.Generator().manual_seed(0))
    # reference: the retention sweep's own scores, per-item slopes and group-balanced mean
    grid = score_grid(model, task, LAYER, torch.tensor(ms)[:, None] * u, positions=positions)
    reference = float(group_mean(fit_slope(ms, item_scores(task, grid).T), task.item_groups))
    u = u.requires_grad_()
    value = objective(u)
    assert value.ndim == 0
    assert float(value.detach()) == pytest.approx(reference, rel=1e-4, abs=1e-7)
    (grad,) = torch.autograd.grad(value, u)
    direction = torch.randn(TINY_WIDTH, generator=torch.Generator().manual_seed(1))
    eps = 1e-2
    with torch.no_grad():
        numeric = (objective(u + eps * direction) - objective(u - eps * direction)) / (2 * eps)
    assert float(grad @ direction) == pytest.approx(float(numeric), rel=0.05, abs=1e-6)
    assert all(p.grad is None for p in model.parameters())  # the model is not trained


def test_learning_raises_the_training_objective_within_its_budgets(
    model: Any, train: BehaviourTask, sae: Any
) -> None:
    learned = learn_in_sae_basis(model, train, LAYER, sae, norm=3.0, k=6, steps=15, init="random", seed=4)
    assert learned.objective[learned.best_step] > learned.objective[0]
    assert learned.best_step > 0
    assert 0 < learned.n_support <= 6
    assert learned.support.tolist() == learned.coefficients.nonzero().flatten().tolist()
    assert float(learned.vector.norm()) == pytest.approx(3.0, rel=1e-5)
    torch.testing.assert_close(learned.coefficients @ sae.W_dec, learned.vector, rtol=1e-5, atol=1e-5)
    # the returned iterate is the best one, and its objective is what the objective gives it
    objective = BehaviourObjective(model, train, LAYER)
    assert float(objective(learned.vector).detach()) == pytest.approx(max(learned.objective), rel=1e-4)
    info = learned.to_dict()
    assert info["n_train_items"] == train.n_items == 5
    assert info["objective_best"] == max(learned.objective)
    assert (info["k"], info["steps"], info["seed"], info["layer"]) == (6, 15, 4, LAYER)


def test_l1_alone_gives_a_sparse_code(model: Any, train: BehaviourTask, sae: Any) -> None:
    dense = learn_in_sae_basis(model, train, LAYER, sae, norm=3.0, k=None, steps=5)
    sparse = learn_in_sae_basis(model, train, LAYER, sae, norm=3.0, k=None, l1=0.05, steps=5)
    assert sparse.n_support < dense.n_support
    assert float(sparse.vector.norm()) == pytest.approx(3.0, rel=1e-5)


def test_same_seed_same_vector(model: Any, train: BehaviourTask, sae: Any) -> None:
    def learn(seed: int) -> LearnedVector:
        return learn_in_sae_basis(model, train, LAYER, sae, norm=2.0, k=4, steps=4, init="random", seed=seed)

    first, again, other = learn(7), learn(7), learn(8)
    assert torch.equal(first.vector, again.vector)
    assert torch.equal(first.coefficients, again.coefficients)
    assert first.objective == again.objective
    assert not torch.equal(first.vector, other.vector)


def test_only_the_training_items_are_read(
    model: Any, tok: PreTrainedTokenizerFast, items: list[ABItem], sae: Any
) -> None:
    train, held_out = items[:4], items[4:]
    seen: list[list[int]] = []

    def record(_module: Any, args: Any) -> None:
        seen.extend(args[0].tolist())

    handle = model.get_input_embeddings().register_forward_pre_hook(record)
    try:
        learn_in_sae_basis(model, training_task(tok, train), LAYER, sae, norm=2.0, k=4, steps=2)
    finally:
        handle.remove()

    def read(item: ABItem) -> bool:
        question = tok(item.question, add_special_tokens=False)["input_ids"]
        n = len(question)
        return any(row[j : j + n] == question for row in seen for j in range(len(row) - n + 1))

    assert all(read(i) for i in train)
    assert not any(read(i) for i in held_out)


def test_training_task_keeps_the_held_out_target_words_apart(tok: PreTrainedTokenizerFast) -> None:
    task = completion_task(tok, OPENINGS)
    assert (task.kind, task.n_items) == ("freeform", len(OPENINGS))
    for i, opening in enumerate(OPENINGS):
        full = tok(opening.prompt + opening.positive, add_special_tokens=True)["input_ids"]
        assert task.prefixes[i] + task.positive[i][0] == tuple(full)
    ab = training_task(tok, load_ab_items("corrigibility")[:3])
    assert (len(ab), ab.n_items) == (6, 3)  # each item with its choice-swapped copy
    with pytest.raises(ValueError, match="data"):
        completion_task(tok, [])


@pytest.mark.parametrize("init", ["gradient", "random"])
@pytest.mark.parametrize("optimizer", ["gradient", "adam"])
def test_core_needs_no_model(init: str, optimizer: str) -> None:
    W = torch.eye(6)
    target = torch.tensor([0.0, 3.0, 0.0, -4.0, 0.0, 0.0])
    learned = fit_sparse_steering(
        lambda u: target @ u, W, norm=5.0, k=2, steps=10, init=init, optimizer=optimizer, seed=1
    )
    torch.testing.assert_close(learned.vector, target, atol=1e-2, rtol=0)  # the best direction at norm 5
    assert learned.support.tolist() == [1, 3]
    assert learned.n_negative == 1


def _bad_calls() -> list[tuple[dict[str, Any], str]]:
    return [
        ({"norm": 0.0}, "norm"),
        ({"norm": float("nan")}, "norm"),
        ({"k": 0}, "k"),
        ({"k": 7}, "k"),
        ({"l1": -1.0}, "l1"),
        ({"steps": -1}, "steps"),
        ({"seed": -2}, "seed"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"init": "zeros"}, "init"),
        ({"W_dec": torch.ones(6)}, "W_dec"),
        ({"W_dec": torch.zeros(6, 6)}, "W_dec"),
        ({"W_dec": torch.full((6, 6), float("inf"))}, "W_dec"),
        ({"objective": lambda u: u}, "objective"),
        ({"objective": lambda u: u.sum() * float("nan")}, "objective"),
        ({"objective": lambda u: torch.zeros((), requires_grad=True) * u.sum()}, "init='random'"),
        ({"l1": 1e6, "k": None}, "l1"),
    ]


@pytest.mark.parametrize(("change", "named"), _bad_calls())
def test_bad_input_names_the_argument(change: dict[str, Any], named: str) -> None:
    target = torch.arange(6.0)
    args: dict[str, Any] = {"objective": lambda u: target @ u, "W_dec": torch.eye(6), "norm": 1.0, "k": 2}
    args.update(change)
    with pytest.raises(ValueError, match=named):
        fit_sparse_steering(args.pop("objective"), args.pop("W_dec"), **args)


def test_model_inputs_are_checked(model: Any, train: BehaviourTask) -> None:
    wide = make_sae(random_unit_rows(8, TINY_WIDTH + 1, seed=0))
    with pytest.raises(ValueError, match="sae"):
        learn_in_sae_basis(model, train, LAYER, wide, norm=1.0)
    with pytest.raises(ValueError, match="multipliers"):
        BehaviourObjective(model, train, LAYER, multipliers=(1.0, 1.0))
    with pytest.raises(TypeError, match="task"):
        BehaviourObjective(model, "not a task", LAYER)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="u must"):
        BehaviourObjective(model, train, LAYER)(torch.zeros(3))


def test_summary_counts_support_signs_cosine_and_norm_percentile() -> None:
    W = torch.eye(4)
    learned = fit_sparse_steering(
        lambda u: torch.tensor([1.0, -2.0, 0.0, 0.0]) @ u, W, norm=2.0, k=2, steps=3
    )
    v = torch.tensor([1.0, 0.0, 0.0, 0.0])
    norms = torch.tensor([1.0, 1.5, 3.0, 4.0])
    summary = learned_summary(
        learned,
        v,
        norms,
        sae_active=torch.tensor([True, False, False, True]),
        signed_support=torch.tensor([1, -1]),
    )
    assert (summary.n_support, summary.n_negative) == (2, 1)
    assert summary.cosine == pytest.approx(1 / 5**0.5, rel=1e-5)
    assert summary.norm == pytest.approx(2.0)
    assert summary.norm_percentile == 50.0
    assert summary.top_features[0] == (1, pytest.approx(-2.0 * 2 / 5**0.5, rel=1e-5))
    assert (summary.in_sae, summary.in_signed) == (1, 1)
    report = summary.to_dict()
    assert report["training"]["k"] == 2
    assert report["top_features"][0]["feature"] == 1
    with pytest.raises(ValueError, match=r"learned\.vector"):
        learned_summary(learned, torch.zeros(3), norms)


def test_run_checks_sweeps_the_learned_vector_and_reports_it() -> None:
    from sae_steer_checks.diagnostics.run import CheckConfig, run_checks
    from sae_steer_checks.report.markdown import render_markdown
    from sae_steer_checks.report.write import build_report
    from sae_steer_checks.synthetic import build_world

    world = build_world(WorldConfig(seed=0, d_model=64, d_sae=128))
    pos, neg = world.sample_contrastive(24, torch.Generator().manual_seed(1))
    v = (pos - neg).mean(0)
    readout = world.truth.readout
    learned = fit_sparse_steering(lambda u: readout @ u, world.W_dec, norm=float(v.norm()), k=8, steps=20)
    config = CheckConfig(n_null=19, n_boot=50, leaning_n_perm=500, k_max=8, multipliers=(-1.0, 0.0, 1.0))
    acts = world.sample_activations(256, torch.Generator().manual_seed(2))
    result = run_checks(
        world.sae, v, pos, neg, acts, score_fn=world.item_scores, learned=learned, config=config
    )
    assert result.retention is not None
    assert result.learned is not None
    slopes = result.retention.slopes
    # the readout's own direction steers at least as well as CAA's at the same norm
    assert slopes["learned"].slope >= slopes["original"].slope - 1e-9
    assert "learned" in result.retention.ratios
    assert result.learned.n_negative == len(world.truth.negative_features)
    assert result.learned.norm == pytest.approx(float(v.norm()), rel=1e-5)
    report = build_report(result)
    assert report["learned"] is not None
    assert report["retention"] is not None
    assert report["retention"]["ratio_learned"] == pytest.approx(result.retention.ratio("learned"))
    text = render_markdown(report)
    assert "## 8. A steering vector learned in the SAE basis" in text
    assert "Learned in the SAE basis" in text
    plain = build_report(run_checks(world.sae, v, pos, neg, acts, config=config))
    assert plain["learned"] is None
    assert "Not run: no behaviour was scored" in render_markdown(plain)
    scored = build_report(run_checks(world.sae, v, pos, neg, acts, score_fn=world.item_scores, config=config))
    assert "Not run: no vector was learned" in render_markdown(scored)
    with pytest.raises(ValueError, match=r"learned\.vector"):
        run_checks(world.sae, v, pos, neg, acts, learned=dataclasses.replace(learned, vector=torch.zeros(3)))


def test_a_multiplier_at_the_mean_is_not_run(model: Any, train: BehaviourTask) -> None:
    u = torch.randn(TINY_WIDTH, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sweep = BehaviourObjective(model, train, LAYER, multipliers=(-2.0, -1.0, 0.0, 1.0, 2.0))(u)
        plain = BehaviourObjective(model, train, LAYER, multipliers=(-2.0, -1.0, 1.0, 2.0))(u)
    assert float(sweep) == pytest.approx(float(plain), rel=1e-6)  # 0 has weight 0 in a symmetric slope


def test_multiplier_zero_is_scored_once_and_the_slope_is_unchanged(model: Any, train: BehaviourTask) -> None:
    objective = BehaviourObjective(model, train, LAYER, multipliers=(0.0, 1.0, 3.0))
    assert objective._steered.tolist() == [1.0, 3.0]  # 0 adds nothing: its scores were computed once
    u = torch.randn(TINY_WIDTH, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(u), u)
    ref_u = u.detach().clone().requires_grad_(True)
    ms = torch.tensor([0.0, 1.0, 3.0])
    means = objective.prompt_scores(ms[:, None] * ref_u[None, :]) @ objective._weights
    reference = ((ms - ms.mean()) @ means) / (ms - ms.mean()).square().sum()  # least-squares slope
    (ref_grad,) = torch.autograd.grad(reference, ref_u)
    assert float(objective(u).detach()) == pytest.approx(float(reference.detach()), rel=1e-4, abs=1e-8)
    assert torch.allclose(grad, ref_grad, rtol=1e-4, atol=1e-6)
