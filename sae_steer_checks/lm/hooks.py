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

import torch
from torch import Tensor, nn

from sae_steer_checks.lm.models import decoder_layers, model_d_model, validate_layer

__all__ = ["add_to_residual", "capture_residual", "residual_activations"]


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
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
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
    with capture_residual(model, layer, stop_after_last=True) as captured:
        model(**inputs)
    if not captured[layer]:
        raise RuntimeError(f"decoder block {layer} of {type(model).__name__} did not run")
    return captured[layer][0].float()


@contextmanager
def add_to_residual(
    model: nn.Module, layer: int, vector: Tensor, *, start_position: int = 0
) -> Iterator[None]:
    """Add ``vector`` (``[d_model]``) to the output of decoder block ``layer`` inside the block.

    Positions ``>= start_position`` are steered. Positions are the ``position_ids`` the block
    receives when the architecture passes them (Gemma, Llama, Qwen, Mistral; these keep counting
    across cached generation steps), else indices within each forward's sequence. The vector is
    cast to the activations' dtype and device; the hook is removed on exit, also after an
    exception.
    """
    layer = validate_layer(model, layer)
    d_model = model_d_model(model)
    if not isinstance(vector, Tensor) or vector.shape != (d_model,):
        raise ValueError(f"vector must be a [{d_model}] tensor, got {_describe(vector)}")
    if isinstance(start_position, bool) or not isinstance(start_position, int) or start_position < 0:
        raise ValueError(f"start_position must be an int >= 0, got {start_position!r}")
    steer = vector.detach()

    def hook(_module: nn.Module, _args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = _hidden(output)
        delta = steer.to(device=hidden.device, dtype=hidden.dtype)
        if start_position == 0:
            steered = hidden + delta
        else:
            positions = kwargs.get("position_ids")
            if not isinstance(positions, Tensor) or positions.shape[-1] != hidden.shape[1]:
                positions = torch.arange(hidden.shape[1], device=hidden.device)
            mask = (positions >= start_position).to(hidden.dtype)
            mask = mask.reshape(-1, hidden.shape[1], 1)
            steered = hidden + mask * delta
        if isinstance(output, tuple):
            return (steered, *output[1:])
        return steered

    handle = decoder_layers(model)[layer].register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"shape {list(value.shape)} dtype {value.dtype}"
    return f"a {type(value).__name__}"
