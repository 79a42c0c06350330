"""cli.files: safetensors inputs (vector, activations, item ids) read, checked and named when bad."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sae_steer_checks._validate import InputError
from sae_steer_checks.cli.files import (
    load_activations,
    load_item_ids,
    load_tensor,
    load_vector,
    save_tensors,
)


def _write(path: Path, **tensors: torch.Tensor) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def test_vector_round_trip(tmp_path: Path) -> None:
    v = torch.randn(16, generator=torch.Generator().manual_seed(0))
    save_tensors(tmp_path / "v.safetensors", {"vector": v})
    loaded = load_vector(tmp_path / "v.safetensors", width=16)
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, v)


def test_low_precision_is_read_as_float32(tmp_path: Path) -> None:
    acts = torch.randn(3, 8).to(torch.bfloat16)
    path = _write(tmp_path / "a.safetensors", activations=acts)
    loaded = load_activations(path, name="--pos")
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded, acts.to(torch.float32))


@pytest.mark.parametrize(
    ("tensors", "kwargs", "expected"),
    [
        ({"x": torch.zeros(4)}, {}, "no tensor under key 'vector' (found keys: ['x'])"),
        ({"vector": torch.zeros(2, 4)}, {}, "must have shape [d], got [2, 4]"),
        ({"vector": torch.zeros(4, dtype=torch.int64)}, {}, "must be floating point"),
        ({"vector": torch.zeros(0)}, {}, "is empty"),
        ({"vector": torch.zeros(4)}, {"width": 8}, "has width 4 but the SAE expects d_in=8"),
        ({"vector": torch.tensor([1.0, math.nan])}, {}, "contains 1 NaN or infinite"),
        ({"vector": torch.tensor([math.inf, -math.inf])}, {}, "contains 2 NaN or infinite"),
    ],
)
def test_bad_vector_files_name_the_input(
    tmp_path: Path, tensors: dict[str, torch.Tensor], kwargs: dict[str, int], expected: str
) -> None:
    path = _write(tmp_path / "v.safetensors", **tensors)
    with pytest.raises(InputError) as info:
        load_vector(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"--vector {path}:")
    assert expected in message
    assert "\n" not in message


def test_missing_garbage_and_folder_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_tensor(tmp_path / "nope.safetensors", "vector", ndim=1, name="--vector")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file")
    with pytest.raises(InputError, match=r"--pos .*not a readable safetensors file"):
        load_activations(garbage, name="--pos")
    with pytest.raises(InputError, match="expected a file, got a folder"):
        load_activations(tmp_path, name="--neg")


def test_activations_need_two_dimensions(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.safetensors", activations=torch.zeros(2, 3, 4))
    with pytest.raises(InputError, match=r"must have shape \[n, d\], got \[2, 3, 4\]"):
        load_activations(path, name="--activations")


def test_item_ids_round_trip_as_int64(tmp_path: Path) -> None:
    ids = torch.tensor([0, 0, 1, 1, 2, 2], dtype=torch.int32)
    save_tensors(tmp_path / "ids.safetensors", {"item_ids": ids})
    loaded = load_item_ids(tmp_path / "ids.safetensors", rows=6)
    assert loaded.dtype == torch.int64
    assert loaded.tolist() == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("tensors", "expected"),
    [
        ({"ids": torch.arange(4)}, "no tensor under key 'item_ids' (found keys: ['ids'])"),
        ({"item_ids": torch.zeros(2, 2, dtype=torch.int64)}, "has shape [2, 2]"),
        ({"item_ids": torch.zeros(4)}, "is torch.float32"),
        ({"item_ids": torch.ones(4, dtype=torch.bool)}, "is torch.bool"),
        ({"item_ids": torch.arange(3)}, "has 3 ids but --pos has 4 rows"),
    ],
)
def test_bad_item_ids_name_the_input_and_what_was_expected(
    tmp_path: Path, tensors: dict[str, torch.Tensor], expected: str
) -> None:
    path = _write(tmp_path / "ids.safetensors", **tensors)
    with pytest.raises(InputError) as info:
        load_item_ids(path, rows=4)
    message = str(info.value)
    assert message.startswith(f"--item-ids {path}:")
    assert expected in message
    assert "expected one integer id per row of --pos (shape [4])" in message
    assert "\n" not in message
