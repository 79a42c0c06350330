"""Residual capture, early stopping and steering on tiny random-weight models (no downloads)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from sae_steer_checks.lm.hooks import (
    add_to_residual,
    capture_residual,
    replay_from_layer,
    residual_activations,
    run_to_layer,
)
from sae_steer_checks.lm.models import decoder_layers
from tests.helpers.tiny_lm import tiny_model

KINDS = ["gemma2", "gemma3", "llama", "qwen2", "gpt2", "neox"]


def _inputs(batch: int = 2, seq: int = 7, seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, :2] = 0  # left padding on the second row
    return ids, mask


def _our_hooks(model: nn.Module) -> int:
    hooks = [h for m in model.modules() for h in (*m._forward_hooks.values(),)]
    return sum(getattr(h, "__module__", "") == "sae_steer_checks.lm.hooks" for h in hooks)


@pytest.fixture(autouse=True)
def no_leaked_hooks(models: dict[str, nn.Module]) -> Iterator[None]:
    # transformers keeps hooks of its own (installed for output_hidden_states), so count only ours
    yield
    assert {kind: _our_hooks(model) for kind, model in models.items()} == dict.fromkeys(models, 0)


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {kind: tiny_model(kind, n_layers=3).eval() for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_capture_matches_hidden_states_convention(models: dict[str, nn.Module], kind: str) -> None:
    model = models[kind]
    ids, mask = _inputs()
    with torch.no_grad(), capture_residual(model, [0, 1, 2]) as captured:
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states
    # layer L = hidden_states[L + 1]; transformers 5 takes the last entry after the final norm,
    # so only blocks before the last are compared with it
    for layer in (0, 1):
        assert torch.equal(captured[layer][0], hidden[layer + 1]), (kind, layer)
    assert not torch.equal(captured[2][0], captured[1][0])
    assert _our_hooks(model) == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_early_stop_is_bit_identical(models: dict[str, nn.Module], kind: str, layer: int) -> None:
    model = models[kind]
    ids, mask = _inputs(seed=layer)
    with torch.no_grad(), capture_residual(model, layer) as full:
        model(input_ids=ids, attention_mask=mask)
    early = residual_activations(model, ids, mask, layer)
    assert early.dtype == torch.float32
    assert early.shape == (2, 7, 32)
    assert torch.equal(early, full[layer][0].float())
    assert _our_hooks(model) == 0


def test_early_stop_skips_later_blocks_and_head(models: dict[str, nn.Module]) -> None:
    model = models["llama"]
    ran: list[str] = []
    handles = [
        decoder_layers(model)[2].register_forward_pre_hook(lambda *_: ran.append("block2")),
        model.lm_head.register_forward_pre_hook(lambda *_: ran.append("head")),
        model.model.norm.register_forward_pre_hook(lambda *_: ran.append("norm")),
    ]
    try:
        ids, mask = _inputs()
        residual_activations(model, ids, mask, 1)
        assert ran == []
        residual_activations(model, ids, mask, 2)
        assert ran == ["block2"]
    finally:
        for handle in handles:
            handle.remove()


def test_bf16_early_stop_matches_bf16_full_forward() -> None:
    model = tiny_model("gemma3", n_layers=3).to(torch.bfloat16).eval()
    ids, mask = _inputs()
    with torch.no_grad(), capture_residual(model, 1) as full:
        model(input_ids=ids, attention_mask=mask)
    assert full[1][0].dtype == torch.bfloat16
    assert torch.equal(residual_activations(model, ids, mask, 1), full[1][0].float())


def test_hooks_removed_when_forward_raises(models: dict[str, nn.Module]) -> None:
    model = models["gemma2"]
    bad_ids = torch.full((1, 4), 10_000)  # out of the 64-token vocabulary: the embedding raises
    with pytest.raises(IndexError), capture_residual(model, [0, 2]):
        model(input_ids=bad_ids)
    assert _our_hooks(model) == 0
    with pytest.raises(IndexError):
        residual_activations(model, bad_ids, None, 1)
    assert _our_hooks(model) == 0
    with pytest.raises(IndexError), add_to_residual(model, 1, torch.ones(32)):
        model(input_ids=bad_ids)
    assert _our_hooks(model) == 0


def test_capture_copies_are_detached(models: dict[str, nn.Module]) -> None:
    model = models["llama"]
    ids, _ = _inputs()
    with capture_residual(model, 0) as captured:
        model(input_ids=ids)
        model(input_ids=ids[:1])
    assert [t.shape[0] for t in captured[0]] == [2, 1]
    assert not captured[0][0].requires_grad
    assert captured[0][0].grad_fn is None


@pytest.mark.parametrize("kind", KINDS)
def test_steering_adds_exactly_the_vector(models: dict[str, nn.Module], kind: str) -> None:
    model = models[kind]
    ids, mask = _inputs()
    vector = torch.randn(32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), capture_residual(model, 1) as plain:
        model(input_ids=ids, attention_mask=mask)
    # hooks run in registration order, so the capture registered after the steering sees its output
    with torch.no_grad(), add_to_residual(model, 1, vector), capture_residual(model, 1) as steered:
        model(input_ids=ids, attention_mask=mask)
    assert torch.equal(steered[1][0], plain[1][0] + vector)
    assert _our_hooks(model) == 0


def test_steering_from_a_position_leaves_earlier_positions(models: dict[str, nn.Module]) -> None:
    model = models["gemma3"]
    ids, _ = _inputs()
    vector = torch.randn(32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), capture_residual(model, 2) as plain:
        model(input_ids=ids)
    with (
        torch.no_grad(),
        add_to_residual(model, 0, vector, start_position=4),
        capture_residual(model, [0, 2]) as steered,
    ):
        model(input_ids=ids)
    # causal attention: positions before 4 are untouched downstream as well
    assert torch.equal(steered[2][0][:, :4], plain[2][0][:, :4])
    assert not torch.allclose(steered[2][0][:, 4:], plain[2][0][:, 4:])


def test_steering_changes_logits_and_is_undone(models: dict[str, nn.Module]) -> None:
    model = models["qwen2"]
    ids, _ = _inputs()
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with add_to_residual(model, 0, 5 * torch.ones(32)):
            during = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    assert not torch.allclose(before, during)
    assert torch.equal(before, after)


def _instance_forwards(model: nn.Module) -> list[object]:
    """What each block holds under ``forward`` in its own ``__dict__`` (some transformers releases set it)."""
    return [block.__dict__.get("forward") for block in decoder_layers(model)]


@pytest.mark.parametrize("kind", KINDS)
def test_per_row_steering_and_replay_match_a_full_forward(models: dict[str, nn.Module], kind: str) -> None:
    model = models[kind]
    ids, mask = _inputs()
    rows = torch.randn(2, 32, generator=torch.Generator().manual_seed(3))
    forwards = _instance_forwards(model)
    with torch.no_grad():
        with add_to_residual(model, 1, rows):
            per_row = model(input_ids=ids, attention_mask=mask).logits
        for r in range(2):
            with add_to_residual(model, 1, rows[r]):
                alone = model(input_ids=ids, attention_mask=mask).logits
            torch.testing.assert_close(per_row[r], alone[r], rtol=1e-5, atol=1e-5)
        hidden = run_to_layer(model, 1, input_ids=ids, attention_mask=mask)
        with replay_from_layer(model, 1, hidden, rows):
            replayed = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(replayed, per_row, rtol=1e-5, atol=1e-5)
    assert _instance_forwards(model) == forwards
    assert _our_hooks(model) == 0
    with (
        pytest.raises(ValueError, match="per-row vectors"),
        torch.no_grad(),
        add_to_residual(model, 1, torch.ones(3, 32)),
    ):
        model(input_ids=ids, attention_mask=mask)


def test_replay_restores_forwards_after_an_error(models: dict[str, nn.Module]) -> None:
    model = models["gemma2"]
    ids, mask = _inputs()
    forwards = _instance_forwards(model)
    with torch.no_grad():
        hidden = run_to_layer(model, 2, input_ids=ids, attention_mask=mask)
        with pytest.raises(ValueError, match="does not match"), replay_from_layer(model, 2, hidden[:, :3]):
            model(input_ids=ids, attention_mask=mask)
        plain = model(input_ids=ids, attention_mask=mask).logits
        with capture_residual(model, 2) as again:
            model(input_ids=ids, attention_mask=mask)
    assert torch.equal(again[2][0], hidden)
    assert torch.isfinite(plain).all()
    assert _instance_forwards(model) == forwards


def test_bad_arguments_are_named(models: dict[str, nn.Module]) -> None:
    model = models["llama"]
    ids, mask = _inputs()
    with (
        pytest.raises(ValueError, match="vector must be a \\[32\\] or \\[batch, 32\\]"),
        add_to_residual(model, 0, torch.ones(31)),
    ):
        pass
    with (
        pytest.raises(ValueError, match="start_position"),
        add_to_residual(model, 0, torch.ones(32), start_position=-1),
    ):
        pass
    with pytest.raises(ValueError, match="input_ids"):
        residual_activations(model, ids[0], None, 0)
    with pytest.raises(ValueError, match="attention_mask"):
        residual_activations(model, ids, mask[:, :3], 0)
    with pytest.raises(ValueError, match="layer must be in"):
        residual_activations(model, ids, mask, 3)
    with pytest.raises(ValueError, match="layers"), capture_residual(model, []):
        pass
    assert _our_hooks(model) == 0
