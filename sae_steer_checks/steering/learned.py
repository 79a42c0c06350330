"""A steering vector learned directly in the SAE basis: signed, sparse coefficients over decoder rows.

The study asks whether such a vector avoids both of SAE(v)'s failures: it is not read through the
encoder (no encoder bias, no out-of-distribution input), and its coefficients may be negative.
:func:`fit_sparse_steering` is the generic core: it maximises any differentiable objective
``u -> scalar`` over ``u = c @ W_dec`` with ``||u||`` held at a norm budget (the objective cannot grow
by scale alone) and ``c`` kept sparse, by projected gradient ascent:

1. start from the gradient at ``u = 0`` read in the decoder basis (``init="gradient"``, the best
   first step of a linear objective) or from seeded random coefficients (``init="random"``);
2. each step moves the coefficients along the objective's gradient (a plain step, ``lr`` times the
   gradient over its scale at the start, ``optimizer="gradient"``, the default; or Adam), the step
   size decaying on a cosine schedule;
3. then soft-thresholds them (``l1``, a proximal step); the iterate is their ``k`` largest (``k``, a
   projection), rescaled so that ``||c @ W_dec||`` is the budget again.

The steps move all coefficients, the ones off the support too, so a feature enters once its steps
add up (iterative hard thresholding, which resets them, stalls on a random start). Adam's
per-coordinate step sizes move every coefficient with a steady gradient sign by about ``lr``, however
weak its gradient, which blurs which features the top-k keeps; plain steps keep the gradient's
magnitudes. The iterate with the highest objective is returned. :func:`learn_in_sae_basis` applies
the core to a model: the objective is
:class:`~sae_steer_checks.steering.objective.BehaviourObjective` on the training items only, and the
decoder rows are mapped from the SAE's input space into model space.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.sae.protocol import SAELike, validate_sae, vector_from_sae_space
from sae_steer_checks.steering.objective import BehaviourObjective
from sae_steer_checks.steering.scoring import SteerPositions
from sae_steer_checks.steering.tasks import BehaviourTask

__all__ = ["INITS", "OPTIMIZERS", "LearnedVector", "fit_sparse_steering", "learn_in_sae_basis"]

Init = Literal["gradient", "random"]
Optimizer = Literal["gradient", "adam"]
INITS: tuple[str, ...] = ("gradient", "random")
OPTIMIZERS: tuple[str, ...] = ("gradient", "adam")


@dataclass(frozen=True)
class LearnedVector:
    """A steering vector learned over decoder rows, with how it was learned."""

    vector: Tensor
    """The steering vector ``u [d]`` (float32, CPU), ``coefficients @ W_dec``, of norm ``norm``."""
    coefficients: Tensor
    """Signed coefficients ``c [d_sae]`` over the decoder rows given (float32, CPU; zero off the support)."""
    objective: tuple[float, ...]
    """Objective of each iterate: the start, then after each step."""
    best_step: int
    """The iterate returned (0: the start)."""
    norm: float
    """The norm budget ``||u||``."""
    k: int | None
    """Largest support (None: no top-k projection)."""
    l1: float
    """Soft-threshold strength per unit step (0: none)."""
    steps: int
    """Gradient steps taken."""
    lr: float
    """Initial step length (in units of the unit-norm coefficients)."""
    optimizer: str
    """``gradient`` (plain steps, in units of the gradient at the start) or ``adam``."""
    init: str
    """``gradient`` (the gradient at u = 0) or ``random`` (seeded)."""
    seed: int
    """Seed of the random start."""
    training: dict[str, Any] = field(default_factory=dict)
    """What the objective read (set by :func:`learn_in_sae_basis`: layer, items, multipliers, positions)."""

    @property
    def support(self) -> Tensor:
        """Features with a non-zero coefficient ``[n_support]`` (long, ascending)."""
        return self.coefficients.nonzero().flatten()

    @property
    def n_support(self) -> int:
        """Number of features used."""
        return int((self.coefficients != 0).sum())

    @property
    def n_negative(self) -> int:
        """Number of negative coefficients."""
        return int((self.coefficients < 0).sum())

    def to_dict(self) -> dict[str, Any]:
        """How the vector was learned, JSON-ready (settings, objective at the start and at the best step)."""
        return {
            "norm": self.norm,
            "k": self.k,
            "l1": self.l1,
            "steps": self.steps,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "init": self.init,
            "seed": self.seed,
            "objective_start": self.objective[0],
            "objective_best": self.objective[self.best_step],
            "best_step": self.best_step,
            **self.training,
        }


def fit_sparse_steering(
    objective: Callable[[Tensor], Tensor],
    W_dec: Tensor,
    *,
    norm: float,
    k: int | None = 32,
    l1: float = 0.0,
    steps: int = 50,
    lr: float = 1.0,
    optimizer: Optimizer = "gradient",
    init: Init = "gradient",
    seed: int = 0,
    progress: bool = False,
    label: str = "learning a sparse steering vector",
) -> LearnedVector:
    """Maximise ``objective(u)`` over ``u = c @ W_dec`` with ``||u|| = norm`` and ``c`` sparse.

    Args:
        objective: differentiable map from ``u [d]`` (float32, on ``W_dec``'s device) to a scalar tensor.
        W_dec: decoder rows ``[d_sae, d]`` in the space ``u`` lives in (rows of norm 0 are never used).
        norm: the norm budget ``||u||`` (> 0), e.g. the CAA vector's.
        k: keep at most ``k`` coefficients after each step (None: no top-k projection).
        l1: soft-threshold each coefficient by ``l1 * step`` after each step (0: none).
        steps: gradient steps (0 returns the start).
        lr: initial step size, in units of the gradient at the start (plain steps) or per coordinate
            (Adam); coefficients are kept at ``||c @ W_unit|| = 1`` over unit-norm rows.
        optimizer: ``gradient`` (plain steps) or ``adam``.
        init: ``gradient`` (the gradient at ``u = 0`` in the decoder basis) or ``random`` (from ``seed``).
        seed: seed of the random start.
        progress: show a progress bar (the objective in its postfix).
        label: the progress bar's description.

    Returns:
        A :class:`LearnedVector` holding the iterate with the highest objective.

    Raises:
        ValueError: on a bad argument (the message names it), an objective that is not a finite
            scalar, or an ``l1`` that thresholds every coefficient away.
    """
    W, scale = _unit_rows(W_dec)
    _check_settings(norm, k, l1, steps, lr, optimizer, init, seed, W.shape[0])
    value_of = _scalar_objective(objective, norm)
    # z: dense coefficients the steps move; a = its top k, read as the iterate. Coefficients off the
    # support keep what their gradient gave them, so a feature enters once its steps add up
    z, scale_grad = _start(value_of, W, init, seed, norm)
    best_a, best, values = z.clone(), 0, []
    opt = torch.optim.Adam([z], lr=lr) if optimizer == "adam" else None
    bar = tqdm(range(steps + 1), desc=label, unit="step", disable=not progress)
    for step in bar:
        with torch.no_grad():
            a, n = _top_k(z, W, k, l1)
            z /= n
        a.requires_grad_(step < steps)
        value = value_of(a @ W)
        values.append(float(value.detach()))
        if step == 0 or values[-1] > values[best]:
            best, best_a = step, a.detach().clone()
        bar.set_postfix(objective=f"{values[-1]:.4g}")
        if step == steps:
            continue  # the last iterate is only scored
        (grad,) = torch.autograd.grad(value, a)
        size = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        with torch.no_grad():
            if opt is None:
                # no first-order direction at u = 0 (a random start): the first gradient sets the scale
                scale_grad = scale_grad or float(grad.norm())
                z += size * grad / max(scale_grad, 1e-30)
            else:
                for group in opt.param_groups:
                    group["lr"] = size
                z.grad = -grad  # Adam minimises
                opt.step()
            if l1 > 0:  # the proximal step of the L1 penalty
                z.copy_(z.sign() * (z.abs() - l1 * size).clamp(min=0))
    bar.close()
    u = norm * (best_a @ W)
    return LearnedVector(
        vector=u.detach().float().cpu(),
        coefficients=(norm * best_a / scale).detach().float().cpu(),
        objective=tuple(values),
        best_step=best,
        norm=float(norm),
        k=k,
        l1=float(l1),
        steps=steps,
        lr=float(lr),
        optimizer=optimizer,
        init=init,
        seed=seed,
    )


def learn_in_sae_basis(
    model: nn.Module,
    task: BehaviourTask,
    layer: int,
    sae: SAELike,
    *,
    norm: float,
    activations: Tensor | None = None,
    multipliers: Sequence[float] = (-1.0, 1.0),
    positions: SteerPositions = "answer",
    k: int | None = 32,
    l1: float = 0.0,
    steps: int = 10,
    lr: float = 1.0,
    optimizer: Optimizer = "gradient",
    init: Init = "gradient",
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
) -> LearnedVector:
    """A steering vector over ``sae``'s decoder rows that raises the behaviour of ``task``'s items.

    The objective is the items' steerability slope (:class:`BehaviourObjective`) with ``m * u`` added
    after block ``layer`` for each of ``multipliers``; it reads ``task`` only, so pass the training
    items (the held-out ones judge the vector). ``u = c @ W_dec`` with the decoder rows mapped from the
    SAE's input space into model space (``activations [n, d_model]`` set that scale for an SAE that
    normalises its inputs). ``norm`` is the budget ``||u||``: the CAA vector's norm makes the learned
    vector's slope comparable with CAA's at the same multipliers. Sparsity, steps and optimiser as in
    :func:`fit_sparse_steering`; 10 steps by default (each runs the blocks after ``layer`` forward and
    back once per multiplier; on Gemma 3 270M's sentiment set the held-out slope gained nothing from
    more, while the training objective kept rising).

    Returns:
        A :class:`LearnedVector` in model space, with ``training`` naming what the objective read.
    """
    validate_sae(sae)
    objective = BehaviourObjective(
        model, task, layer, multipliers=multipliers, positions=positions, batch_size=batch_size
    )
    if int(sae.W_dec.shape[1]) != objective.d_model:
        raise ValueError(
            f"sae must have d_in equal to the model's residual width {objective.d_model}, "
            f"got d_in={int(sae.W_dec.shape[1])}"
        )
    rows = vector_from_sae_space(sae, sae.W_dec.detach(), activations).to(objective.device)
    learned = fit_sparse_steering(
        objective, rows, norm=norm, k=k, l1=l1, steps=steps, lr=lr, optimizer=optimizer, init=init,
        seed=seed, progress=progress, label=f"learning a steering vector on {task.n_items} training items",
    )  # fmt: skip
    training = {
        "layer": objective.layer,
        "n_train_items": task.n_items,
        "multipliers": list(objective.multipliers),
        "steer_positions": objective.positions,
        "objective": "steerability slope of the training items (least squares over the multipliers)",
    }
    return dataclasses.replace(learned, training=training)


def _unit_rows(W_dec: Tensor) -> tuple[Tensor, Tensor]:
    """Unit-norm rows ``[d_sae, d]`` (float32; rows of norm 0 stay 0) and each row's norm ``[d_sae]``."""
    if not isinstance(W_dec, Tensor) or W_dec.ndim != 2 or 0 in W_dec.shape:
        raise ValueError(f"W_dec must be a non-empty [d_sae, d] tensor, got {_shape(W_dec)}")
    W = W_dec.detach().float()
    if not bool(torch.isfinite(W).all()):
        raise ValueError("W_dec must be finite, found NaN or infinite entries")
    scale = W.norm(dim=1)
    if not bool((scale > 0).any()):
        raise ValueError("W_dec must have at least one non-zero row")
    # a zero row gets an infinite scale: its coefficient maps to 0 and it never carries weight
    scale = torch.where(scale > 0, scale, torch.full_like(scale, math.inf))
    return W / scale[:, None], scale


def _check_settings(
    norm: float,
    k: int | None,
    l1: float,
    steps: int,
    lr: float,
    optimizer: str,
    init: str,
    seed: int,
    d_sae: int,
) -> None:
    if isinstance(norm, bool) or not isinstance(norm, int | float) or not math.isfinite(norm) or norm <= 0:
        raise ValueError(f"norm must be a finite number > 0, got {norm!r}")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= d_sae):
        raise ValueError(f"k must be None or an integer in 1..{d_sae} (the decoder's rows), got {k!r}")
    if isinstance(l1, bool) or not isinstance(l1, int | float) or not math.isfinite(l1) or l1 < 0:
        raise ValueError(f"l1 must be a finite number >= 0, got {l1!r}")
    for name, value in (("steps", steps), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")


def _scalar_objective(objective: Callable[[Tensor], Tensor], norm: float) -> Callable[[Tensor], Tensor]:
    """``w -> objective(norm * w / ||w||)`` checked to be a finite scalar tensor."""
    if not callable(objective):
        raise TypeError(f"objective must be callable, got a {type(objective).__name__}")

    def value_of(w: Tensor) -> Tensor:
        n = w.norm()
        out = objective(norm * w / n if bool(n > 0) else w)
        if not isinstance(out, Tensor) or out.numel() != 1:
            raise ValueError(f"objective must return a scalar tensor, got {_shape(out)}")
        if not bool(torch.isfinite(out)):
            raise ValueError(f"objective returned a non-finite value {float(out.detach())}")
        return out.reshape(())

    return value_of


def _start(
    value_of: Callable[[Tensor], Tensor], W: Tensor, init: str, seed: int, norm: float
) -> tuple[Tensor, float]:
    """Dense starting coefficients ``[d_sae]`` over the unit rows, and the gradient scale of the steps.

    The scale is ``norm * ||W @ grad f(0)||``: the gradient with respect to the coefficients that an
    iterate orthogonal to the objective's first-order direction sees. Steps are measured in it, so they
    shrink where the gradient vanishes (a normalised gradient would step as far at the optimum).
    """
    u = torch.zeros(W.shape[1], device=W.device, requires_grad=True)
    (grad,) = torch.autograd.grad(value_of(u), u)
    rows = W @ grad.detach()
    scale = norm * float(rows.norm())
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        a = torch.randn(W.shape[0], generator=gen).to(W.device)
        return a * (W.norm(dim=1) > 0), scale
    if scale == 0:
        raise ValueError("objective has zero gradient at u = 0 along every decoder row; use init='random'")
    return rows, scale


def _top_k(z: Tensor, W: Tensor, k: int | None, l1: float) -> tuple[Tensor, Tensor]:
    """The ``k`` largest of ``z`` (all without ``k``), scaled to ``||a @ W|| = 1``, and that scale."""
    a = z.clone()
    if k is not None and k < a.shape[0]:
        a = torch.zeros_like(z)
        keep = z.abs().topk(k).indices
        a[keep] = z[keep]
    n = (a @ W).norm()
    if not bool(n > 0):
        raise ValueError(f"l1 = {l1:g} thresholds every coefficient to zero: lower l1")
    return a / n, n


def _shape(value: object) -> str:
    return f"shape {list(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
