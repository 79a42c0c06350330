"""A differentiable behaviour objective: the steerability slope of a task's items under an added vector.

:class:`BehaviourObjective` is the training signal of a learned steering vector. Called with ``u
[d_model]`` it returns, as a scalar tensor with a gradient with respect to ``u``, the least-squares
slope over ``multipliers`` of the items' mean behaviour score (A/B: the logit difference of the
matching over the other letter; free-form: the log-odds of the positive continuations) with
``m * u`` added after block ``layer``: the same score, items and weighting as the retention sweep
(:mod:`~sae_steer_checks.steering.scoring`), so the vector is trained on the figure it is judged by.

What no vector changes is computed once, without a gradient, when the objective is built: the
unsteered prefix's keys and values and blocks ``0..layer`` on the steered positions. Each call runs
only the blocks after ``layer`` on those positions, with the gradient. The objective reads only the
task it is given: pass it the training items, never the held-out ones.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sae_steer_checks.lm.hooks import replay_from_layer
from sae_steer_checks.lm.models import model_d_model, validate_layer
from sae_steer_checks.steering.batching import (
    Rows,
    forward_logits,
    head_columns,
    plan_rows,
    prompt_scores,
    steer_rows,
)
from sae_steer_checks.steering.scoring import SteerPositions, validate_positions
from sae_steer_checks.steering.tasks import BehaviourTask

__all__ = ["BehaviourObjective"]


@dataclass(frozen=True)
class _Batch:
    """One batch of prompt rows, prepared once, and the log-prob entries read from it."""

    rows: Rows
    sel: Tensor
    """Indices of the entries read from these rows ``[e]``."""
    row: Tensor
    pos: Tensor
    tok: Tensor
    """Batch row, kept position and token (or head column) of each entry ``[e]``."""


class BehaviourObjective:
    """``u [d_model] -> `` the task's steerability slope (a scalar tensor, differentiable in ``u``).

    Args:
        model: a causal LM (its weights are not trained; gradients flow only into ``u``).
        task: the items the objective reads (the training items only).
        layer: decoder block whose output is steered.
        multipliers: at least two distinct multipliers; the slope is fitted over ``m * u``. The
            default (-1, 1) is the symmetric difference quotient. A multiplier at their mean has weight 0
            and is not run; multiplier 0 is scored once, when the objective is built.
        positions: steered positions (``steering.scoring.score_grid``; ``answer`` is CAA's convention).
        batch_size: prompt rows per batch.
    """

    def __init__(
        self,
        model: nn.Module,
        task: BehaviourTask,
        layer: int,
        *,
        multipliers: Sequence[float] = (-1.0, 1.0),
        positions: SteerPositions = "answer",
        batch_size: int = 16,
    ) -> None:
        if not isinstance(task, BehaviourTask):
            raise TypeError(f"task must be a BehaviourTask, got {type(task).__name__}")
        self.layer = validate_layer(model, layer)
        self.positions = validate_positions(positions)
        ms = tuple(float(m) for m in multipliers)
        if len(set(ms)) < 2 or not all(math.isfinite(m) for m in ms):
            raise ValueError(f"multipliers must hold at least two distinct finite values, got {list(ms)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model, self.task, self.multipliers = model, task, ms
        self.d_model = model_d_model(model)
        self.device = next(model.parameters()).device
        plan = plan_rows(task)
        self._plan = dataclasses.replace(
            plan, cont_entries=plan.cont_entries.to(self.device), sides=plan.sides.to(self.device)
        )
        self._n_entries = len(plan.entries)
        entries = torch.tensor(plan.entries, dtype=torch.long).reshape(-1, 3)
        keeps = torch.tensor(plan.keeps, dtype=torch.long)
        # one-token continuations are all read at the prompt's last position: the normaliser cancels
        single = all(k == 1 for k in plan.keeps) and all(j == 0 for _, j, _ in plan.entries)
        self._columns = torch.unique(entries[:, 2]) if single else None
        self._batches: list[_Batch] = []
        with torch.no_grad():
            for start in range(0, len(plan.rows), batch_size):
                stop = min(start + batch_size, len(plan.rows))
                rows = Rows(
                    model, self.layer, task, plan.rows[start:stop], plan.keeps[start:stop], positions, True
                )
                sel = ((entries[:, 0] >= start) & (entries[:, 0] < stop)).nonzero().flatten()
                tok = entries[sel, 2]
                if self._columns is not None:
                    tok = torch.searchsorted(self._columns, tok)
                pos = rows.n_keep - keeps[entries[sel, 0]] + entries[sel, 1]
                self._batches.append(_Batch(rows, sel.to(self.device), entries[sel, 0] - start, pos, tok))
        self._weights = _prompt_weights(task).to(self.device)
        centred = torch.tensor(ms, dtype=torch.float64) - sum(ms) / len(ms)
        weights = centred / centred.square().sum()
        # a multiplier at the mean (0 of a symmetric sweep) has weight 0 in the slope: it is not run;
        # multiplier 0 adds nothing, so its scores are a constant: computed once, here
        m = torch.tensor(ms, dtype=torch.float64)
        used = (weights != 0) & (m != 0)
        self._steered = m[used].to(device=self.device, dtype=torch.float32)
        self._slope_weights = weights[used].to(device=self.device, dtype=torch.float32)
        self._constant = torch.zeros((), device=self.device)
        w0 = float(weights[m == 0].sum())
        if w0 != 0:
            with torch.no_grad():
                base = self.prompt_scores(torch.zeros(1, self.d_model, device=self.device))[0]
            self._constant = w0 * (base @ self._weights)

    @property
    def n_items(self) -> int:
        """Items the objective reads."""
        return self.task.n_items

    def prompt_scores(self, us: Tensor) -> Tensor:
        """Per-prompt scores ``[k, n_prompts]`` (float32, on the model's device) with each of ``us [k, d]``.

        Differentiable in ``us``; the same values as ``score_grid`` (to float tolerance).
        """
        if not isinstance(us, Tensor) or us.ndim != 2 or us.shape[1] != self.d_model:
            raise ValueError(f"us must be a [k, {self.d_model}] tensor, got {_shape(us)}")
        us = us.to(self.device)
        values = us.new_zeros(us.shape[0], self._n_entries, dtype=torch.float32)
        for batch in self._batches:
            logits = _steered_logits(self.model, self.layer, batch.rows, us, self._columns)
            picked = logits[:, batch.row, batch.pos, batch.tok]
            if self._columns is None:
                picked = picked - logits.logsumexp(dim=-1)[:, batch.row, batch.pos]
            values = values.index_copy(1, batch.sel, picked)
        return prompt_scores(self._plan, values)

    def __call__(self, u: Tensor) -> Tensor:
        """The items' steerability slope with ``m * u`` added, a scalar tensor (float32)."""
        if not isinstance(u, Tensor) or u.shape != (self.d_model,):
            raise ValueError(f"u must be a [{self.d_model}] tensor, got {_shape(u)}")
        scores = self.prompt_scores(self._steered[:, None] * u.to(self.device, torch.float32)[None, :])
        return self._slope_weights @ (scores @ self._weights) + self._constant


def _steered_logits(model: nn.Module, layer: int, rows: Rows, us: Tensor, columns: Tensor | None) -> Tensor:
    """Logits ``[k, rows, n_keep, vocab or columns]`` with each of ``us [k, d]`` added, keeping the graph.

    ``Rows.logits`` without the detaching: the cached blocks ``0..layer`` are replayed as they are
    and the vectors are added by a hook that runs after the replay's, so the gradient reaches ``us``.
    """
    c, b = us.shape[0], rows.inputs["input_ids"].shape[0]
    deltas = us.repeat(b, 1)
    big = {k: t.repeat_interleave(c, dim=0) for k, t in rows.inputs.items()}
    mask = None if rows.mask is None else rows.mask.repeat_interleave(c, dim=0)
    with ExitStack() as stack:
        if rows.hidden is not None:
            if rows.cache is not None:
                big = rows._tail(big, rows._chunk_cache(c))
            stack.enter_context(replay_from_layer(model, layer, rows.hidden.repeat_interleave(c, dim=0)))
        stack.enter_context(steer_rows(model, layer, deltas, mask))
        if columns is not None:
            stack.enter_context(head_columns(model, columns))
        logits = forward_logits(model, rows.n_keep, **big)
    return logits.float().reshape(b, c, rows.n_keep, -1).transpose(0, 1)


def _prompt_weights(task: BehaviourTask) -> Tensor:
    """``[n_prompts]`` weights whose dot product with per-prompt scores is the retention sweep's mean.

    Copies of an item share its weight; items weigh alike, or each group alike when the task's items
    need group weighting (``BehaviourTask.item_groups``).
    """
    units = task.units
    copies: dict[int, int] = {}
    for unit in units:
        copies[unit] = copies.get(unit, 0) + 1
    items = sorted(copies)
    groups = task.item_groups
    if groups is None:
        item_weight = {i: 1.0 / len(items) for i in items}
    else:
        sizes = {g: groups.count(g) for g in set(groups)}
        item_weight = {i: 1.0 / (len(sizes) * sizes[g]) for i, g in zip(items, groups, strict=True)}
    return torch.tensor([item_weight[u] / copies[u] for u in units], dtype=torch.float32)


def _shape(value: object) -> str:
    return f"shape {list(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"
