"""Reading and writing the residual stream through forward hooks on decoder blocks.

All hooks are registered inside context managers and removed in ``finally``, so an exception in
the forward (or in the caller's code) never leaves a hook behind. Layer ``L`` is the output of
decoder block ``L`` (``hidden_states[L + 1]``, ``blocks.L.hook_resid_post``); see
``sae_steer_checks.lm.models``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

import torch
from torch import Tensor, nn

from sae_steer_checks.lm.models import decoder_layers, model_d_model, validate_layer

__all__ = ["add_to_residual", "capture_residual", "replay_from_layer", "residual_activations", "run_to_layer"]


# whether each block returned a tuple the last time it ran, so a skipped block can answer in kind
_TUPLE_OUTPUT: WeakKeyDictionary[nn.Module, bool] = WeakKeyDictionary()


class _StopForward(Exception):  # noqa: N818 (control flow, not an error)
    """Raised from a hook to end a forward once the last needed block has run."""


def _hidden(output: Any) -> Tensor:
    # transformers 5.x decoder blocks return the hidden state; older releases return a tuple
    hidden = output[0] if isinstance(output, tuple) else output
    if not isinstance(hidden, Tensor):
        raise TypeError(f"decoder block returned {type(hidden).__name__}, expected a tensor")
    return hidden


def _layer_list(model: nn.Module, layers: int | Sequence[int]) -> list[int]:
    requested = [layers] if isinstance(layers, int) else list(layers)
    if not requested:
        raise ValueError("layers must name at least one decoder block, got an empty sequence")
    return sorted({validate_layer(model, layer) for layer in requested})


@contextmanager
def capture_residual(
    model: nn.Module, layers: int | Sequence[int], *, stop_after_last: bool = False
) -> Iterator[dict[int, list[Tensor]]]:
    """Record the output of decoder blocks ``layers`` on every forward run inside the block.

    Yields a dict ``layer -> list`` that receives one detached copy ``[batch, seq, d_model]`` (model
    dtype) per forward. With ``stop_after_last=True`` the forward is ended right after the last
    requested block (later blocks and the output head never run) and the context manager swallows
    that stop, so the forward call must be the last statement of the ``with`` block.
    """
    wanted = _layer_list(model, layers)
    blocks = decoder_layers(model)
    captured: dict[int, list[Tensor]] = {layer: [] for layer in wanted}
    last = wanted[-1]
    handles = []

    def make_hook(layer: int) -> Any:
        def hook(module: nn.Module, _args: Any, output: Any) -> None:
            _TUPLE_OUTPUT[module] = isinstance(output, tuple)
            captured[layer].append(_hidden(output).detach().clone())
            if stop_after_last and layer == last:
                raise _StopForward

        return hook

    try:
        for layer in wanted:
            handles.append(blocks[layer].register_forward_hook(make_hook(layer)))
        yield captured
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def residual_activations(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None, layer: int
) -> Tensor:
    """Residual stream after decoder block ``layer`` as float32, ``[batch, seq, d_model]``.

    Only blocks ``0..layer`` run (no later block, no final norm, no head); the values are
    bit-identical to those of a full forward in the model's dtype. ``input_ids`` is
    ``[batch, seq]`` (long); ``attention_mask`` is ``[batch, seq]`` or ``None``. Padded positions
    are returned as the model computed them: mask them yourself.
    """
    if not isinstance(input_ids, Tensor) or input_ids.ndim != 2:
        raise ValueError(f"input_ids must be a [batch, seq] tensor, got {_describe(input_ids)}")
    if input_ids.dtype not in (torch.long, torch.int32):
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if attention_mask is not None and (
        not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape
    ):
        raise ValueError(
            f"attention_mask must match input_ids {list(input_ids.shape)}, got {_describe(attention_mask)}"
        )
    layer = validate_layer(model, layer)
    device = next(model.parameters()).device
    inputs: dict[str, Any] = {"input_ids": input_ids.to(device), "use_cache": False}
    if attention_mask is not None:
        inputs["attention_mask"] = attention_mask.to(device)
    return run_to_layer(model, layer, **inputs).float()


def run_to_layer(model: nn.Module, layer: int, **inputs: Any) -> Tensor:
    """Run ``model(**inputs)`` through decoder block ``layer`` only and return that block's output.

    The one home of "capture one layer, then stop the forward": later blocks and the head never run.
    Returns ``[batch, seq, d_model]`` in the model's dtype (a detached copy).
    """
    with capture_residual(model, layer, stop_after_last=True) as captured:
        model(**inputs)
    if not captured[layer]:
        raise RuntimeError(f"decoder block {layer} of {type(model).__name__} did not run")
    return captured[layer][0]


@contextmanager
def add_to_residual(
    model: nn.Module, layer: int, vector: Tensor, *, start_position: int = 0
) -> Iterator[None]:
    """Add ``vector`` to the output of decoder block ``layer`` inside the block.

    ``vector`` is ``[d_model]`` (the same for every row) or ``[batch, d_model]`` (one per row of every
    forward run inside the block, so several steering vectors share one forward). Positions
    ``>= start_position`` are steered. Positions are the ``position_ids`` the block receives when the
    architecture passes them (Gemma, Llama, Qwen, Mistral; these keep counting across cached
    generation steps), else indices within each forward's sequence. The vector is cast to the
    activations' dtype and device; the hook is removed on exit, also after an exception.
    """
    layer = validate_layer(model, layer)
    d_model = model_d_model(model)
    if not isinstance(vector, Tensor) or vector.ndim not in (1, 2) or vector.shape[-1] != d_model:
        raise ValueError(
            f"vector must be a [{d_model}] or [batch, {d_model}] tensor, got {_describe(vector)}"
        )
    if isinstance(start_position, bool) or not isinstance(start_position, int) or start_position < 0:
        raise ValueError(f"start_position must be an int >= 0, got {start_position!r}")
    steer = vector.detach()

    def hook(_module: nn.Module, _args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = _hidden(output)
        delta = _row_deltas(steer, hidden)
        if start_position != 0:
            positions = kwargs.get("position_ids")
            if not isinstance(positions, Tensor) or positions.shape[-1] != hidden.shape[1]:
                positions = torch.arange(hidden.shape[1], device=hidden.device)
            mask = (positions >= start_position).to(hidden.dtype)
            delta = mask.reshape(-1, hidden.shape[1], 1) * delta
        return _like(output, hidden + delta)

    handle = decoder_layers(model)[layer].register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def replay_from_layer(
    model: nn.Module, layer: int, hidden: Tensor, delta: Tensor | None = None
) -> Iterator[None]:
    """Inside the block, forwards skip blocks ``0..layer`` and resume from ``hidden`` (+ ``delta``).

    Steering at block ``layer`` leaves blocks ``0..layer`` unchanged, so a sweep over many vectors
    computes them once (``run_to_layer``) and replays only the later blocks. Blocks ``0..layer``
    pass their input through (their own forward is not called), and block ``layer``'s output is
    replaced by ``hidden [batch, seq, d_model]`` plus ``delta`` (``[d_model]`` or ``[batch, d_model]``).
    The forward must be called with the inputs ``hidden`` was computed from (same padding, mask and
    positions), after a ``run_to_layer`` or ``capture_residual`` call on this model has shown the
    blocks' output type. Original ``forward`` attributes are restored on exit, also after an exception.
    """
    layer = validate_layer(model, layer)
    blocks = decoder_layers(model)
    if not isinstance(hidden, Tensor) or hidden.ndim != 3 or hidden.shape[-1] != model_d_model(model):
        raise ValueError(f"hidden must be [batch, seq, {model_d_model(model)}], got {_describe(hidden)}")
    replaced = hidden.detach() if delta is None else hidden.detach() + _row_deltas(delta.detach(), hidden)
    if blocks[layer] not in _TUPLE_OUTPUT:
        raise RuntimeError(f"run block {layer} once (run_to_layer) before replaying from it")
    tuple_output = _TUPLE_OUTPUT[blocks[layer]]

    def passthrough(hidden_states: Tensor, *_args: Any, **_kwargs: Any) -> Any:
        return (hidden_states,) if tuple_output else hidden_states

    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        if replaced.shape[:2] != _hidden(output).shape[:2]:
            raise ValueError(
                f"hidden {list(replaced.shape)} does not match this forward's {list(_hidden(output).shape)}"
            )
        return _like(output, replaced.to(_hidden(output).device))

    # an accelerate-dispatched block keeps its wrapper in the instance dict; put back exactly what was there
    saved = [blocks[i].__dict__.get("forward") for i in range(layer + 1)]
    handle = blocks[layer].register_forward_hook(hook)
    try:
        for i in range(layer + 1):
            blocks[i].forward = passthrough
        yield
    finally:
        handle.remove()
        for i, forward in enumerate(saved):
            if forward is None:
                del blocks[i].forward
            else:
                blocks[i].forward = forward


def _row_deltas(steer: Tensor, hidden: Tensor) -> Tensor:
    """``steer`` (``[d]`` or ``[batch, d]``) shaped to add to ``hidden [batch, seq, d]``."""
    delta = steer.to(device=hidden.device, dtype=hidden.dtype)
    if delta.ndim == 1:
        return delta
    if delta.shape[0] != hidden.shape[0]:
        raise ValueError(
            f"per-row vectors [{delta.shape[0]}, d] do not match a batch of {hidden.shape[0]} rows"
        )
    return delta[:, None, :]


def _like(output: Any, hidden: Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"shape {list(value.shape)} dtype {value.dtype}"
    return f"a {type(value).__name__}"
