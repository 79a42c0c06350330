"""report.files: the output folder's checks, atomic writes that leave nothing when interrupted, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sae_steer_checks._validate import InputError
from sae_steer_checks.report.files import atomic_output_dir, validate_out_dir, write_json


def test_check_out_dir(tmp_path: Path) -> None:
    assert validate_out_dir(tmp_path / "new", force=False) == tmp_path / "new"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(InputError, match="not empty; pass --force"):
        validate_out_dir(tmp_path / "full", force=False)
    assert validate_out_dir(tmp_path / "full", force=True) == tmp_path / "full"
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        validate_out_dir(tmp_path / "file", force=True)
    with pytest.raises(InputError, match="parent folder"):
        validate_out_dir(tmp_path / "missing" / "out", force=False)


def test_atomic_output_dir_moves_into_place(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with atomic_output_dir(out, force=False) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_atomic_output_dir_leaves_nothing_when_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "report"

    def interrupted() -> None:
        with atomic_output_dir(out, force=False) as tmp:
            (tmp / "half.txt").write_text("half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_dir_replaces_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(InputError), atomic_output_dir(out, force=False):
        pass
    assert (out / "old.txt").read_text() == "old"
    with atomic_output_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_write_json_sorts_keys_and_nulls_non_finite(tmp_path: Path) -> None:
    path = write_json(tmp_path / "r.json", {"b": 1.5, "a": {"z": math.nan, "y": [math.inf, 2]}})
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"')
    assert text.index('"y"') < text.index('"z"')
    assert json.loads(text) == {"a": {"y": [None, 2], "z": None}, "b": 1.5}
