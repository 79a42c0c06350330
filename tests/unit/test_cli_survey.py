from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sae_steer_checks.cli.commands import main
from sae_steer_checks.data.schema import bundled_path
from sae_steer_checks.report.survey import render_survey_markdown
from tests.helpers.tiny_lm import tiny_model, word_tokenizer

# the settings of every survey here, as small as they go
CHEAP = ["--width", "48", "--k", "4", "--target-l0", "4", "--train-windows", "16", "--train-epochs", "1",
         "--max-pairs", "8", "--learn-steps", "0", "--n-null", "19", "--n-boot", "20", "--no-plots",
         "-q"]  # fmt: skip
# the fast tier's grid: one behaviour x two layers x one architecture trained on the fly
SMALL = ["--datasets", "builtin:corrigibility", "--layers", "1", "2", "--architectures", "topk", *CHEAP]
# two behaviours x two layers x two architectures (slow)
GRID = ["--datasets", "builtin:corrigibility", "builtin:survival_instinct", "--layers", "1", "2",
        "--architectures", "jumprelu", "topk", *CHEAP]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 3-block Llama with a word-level tokenizer saved to disk."""
    root = tmp_path_factory.mktemp("tiny-survey")
    texts = [i["question"] for name in ("corrigibility", "survival_instinct")
             for i in json.loads(bundled_path(name).read_text())[:8]]  # fmt: skip
    tok = word_tokenizer(texts)
    tiny_model("llama", len(tok), n_layers=3).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return {"root": root, "model": root / "model"}


def _survey(tiny: dict[str, Path], out: Path, *extra: str, grid: list[str] = GRID) -> int:
    return main(["survey", "--model", str(tiny["model"]), *grid, "--out", str(out), *extra])


def _rows(out: Path) -> list[dict[str, Any]]:
    return list(json.loads((out / "survey.json").read_text())["rows"])


@pytest.fixture(scope="module")
def surveyed(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The slow grid, surveyed once."""
    out = tmp_path_factory.mktemp("survey") / "out"
    assert _survey(tiny, out) == 0
    return out


@pytest.fixture(scope="module")
def small(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast grid, surveyed once."""
    out = tmp_path_factory.mktemp("small") / "out"
    assert _survey(tiny, out, grid=SMALL) == 0
    return out


def _mtimes(out: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*/report.json")}


@pytest.mark.slow
def test_survey_runs_every_cell_and_writes_the_table(surveyed: Path) -> None:
    rows = _rows(surveyed)
    assert len(rows) == 8
    assert [r["index"] for r in rows] == list(range(8))
    assert {r["status"] for r in rows} == {"ok"}, [r["error"] for r in rows]
    assert {(r["behaviour"], r["layer"], r["sae"]) for r in rows} == {
        (b, layer, a) for b in ("builtin:corrigibility", "builtin:survival_instinct")
        for layer in (1, 2) for a in ("jumprelu", "topk")
    }  # fmt: skip
    for r in rows:
        assert r["width"] == 48
        assert r["architecture"] in ("jumprelu", "topk")
        assert r["quality_source"] == "the SAE's training metadata"
        assert r["l0"] > 0
        assert r["explained_variance"] is not None
        report = json.loads((surveyed / "cells" / r["cell"] / "report.json").read_text())
        assert [v["mechanism"] for v in report["verdicts"]] == [v["mechanism"] for v in r["verdicts"]]
        for v, entry in zip(report["verdicts"], r["verdicts"], strict=True):
            assert entry["status"] == v["status"]
            assert entry["value"] == (v["figure"] or {}).get("value")
            interval = v["interval"]
            assert entry["interval"] == (interval and [interval["low"], interval["high"]])
        assert report["provenance"]["layer"] == r["layer"]
        assert report["provenance"]["dataset"] == r["behaviour"]
    topk = next(r for r in rows if r["architecture"] == "topk")
    assert 3.5 < topk["l0"] <= 4.0  # k = 4 active, fewer where a token has fewer positive pre-activations
    markdown = (surveyed / "survey.md").read_text()
    assert markdown == render_survey_markdown(json.loads((surveyed / "survey.json").read_text()))
    for heading in ("three problems", "dropped projections", "learned in the SAE basis"):
        assert heading in markdown
    assert (surveyed / "survey.png").read_bytes()[:4] == b"\x89PNG"
    assert (surveyed / "cells" / rows[0]["cell"] / "report.md").is_file()
    assert sorted(p.name for p in (surveyed / "saes").iterdir()) == [
        "L1-jumprelu", "L1-topk", "L2-jumprelu", "L2-topk"
    ]  # fmt: skip


def test_small_survey_rerun_keeps_every_cell_and_force_recomputes(
    tiny: dict[str, Path], small: Path, tmp_path: Path
) -> None:
    rows = _rows(small)
    assert [(r["layer"], r["sae"], r["status"]) for r in rows] == [(1, "topk", "ok"), (2, "topk", "ok")]
    assert all(r["verdicts"] for r in rows)
    out = tmp_path / "again"
    shutil.copytree(small, out)
    before = _mtimes(out)
    assert len(before) == 2
    saes = {p.name: (p / "sae_weights.safetensors").stat().st_mtime_ns for p in (out / "saes").iterdir()}
    assert _survey(tiny, out, grid=SMALL) == 0
    assert _mtimes(out) == before
    assert {
        p.name: (p / "sae_weights.safetensors").stat().st_mtime_ns for p in (out / "saes").iterdir()
    } == saes
    assert _rows(out) == rows
    assert _survey(tiny, out, "--force", "--layers", "2", grid=SMALL) == 0
    after = _mtimes(out)
    assert {c for c in before if after[c] != before[c]} == {rows[1]["cell"]}
    assert [r["cell"] for r in _rows(out)] == [rows[1]["cell"]]


def test_a_survey_keeps_no_cell_or_sae_made_with_other_settings(
    tiny: dict[str, Path], small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "other"
    shutil.copytree(small, out)
    before = _mtimes(out)
    assert _survey(tiny, out, "--learn-steps", "2", grid=SMALL) == 2
    err = capsys.readouterr().err.strip()
    assert "2 cells in it were made with other settings" in err
    assert "--learn-steps 0 there, 2 now" in err
    assert "\n" not in err
    assert _mtimes(out) == before  # nothing recomputed, nothing lost
    cell = _rows(small)[0]["cell"]  # the layer-1 cell: its SAE stays in saes/
    shutil.rmtree(out / "cells" / cell)
    assert _survey(tiny, out, "--train-epochs", "2", "--layers", "1", grid=SMALL) == 2
    err = capsys.readouterr().err
    assert "1 trained SAEs in it were made with other settings" in err
    assert "--train-epochs 1.0 there, 2.0 now" in err
    weights = out / "saes" / "L1-topk" / "sae_weights.safetensors"
    trained = weights.stat().st_mtime_ns
    assert _survey(tiny, out, "--layers", "1", grid=SMALL) == 0
    assert weights.stat().st_mtime_ns == trained  # the same settings: the SAE is reused
    assert (out / "cells" / cell / "settings.json").is_file()


def test_a_failing_cell_is_an_error_row_and_the_others_finish(
    tiny: dict[str, Path], small: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad-sae"
    bad.mkdir()
    (bad / "cfg.json").write_text("{not json")
    (bad / "sae_weights.safetensors").write_bytes(b"nothing")
    out = tmp_path / "out"
    good = small / "saes" / "L1-topk"  # an SAE folder of the user's, its layer read from its metadata
    argv = ["--datasets", "builtin:corrigibility", "--layers", "1", "--saes", f"1:{bad}", str(good), *CHEAP]
    assert main(["survey", "--model", str(tiny["model"]), *argv, "--out", str(out)]) == 0
    rows = {r["sae"]: r for r in _rows(out)}
    assert rows["bad-sae"]["status"] == "error"
    assert "\n" not in rows["bad-sae"]["error"]
    assert rows["bad-sae"]["error"]
    assert rows["L1-topk"]["status"] == "ok"
    assert rows["L1-topk"]["quality_source"] == "the SAE's training metadata"
    assert not (out / "cells" / rows["bad-sae"]["cell"]).exists()
    assert "error" in (out / "survey.md").read_text()


@pytest.mark.slow
def test_shards_merge_to_the_whole_table(tiny: dict[str, Path], surveyed: Path, tmp_path: Path) -> None:
    for k in (1, 2):
        assert _survey(tiny, tmp_path / f"shard{k}", "--shard", f"{k}/2") == 0
    one, two = _rows(tmp_path / "shard1"), _rows(tmp_path / "shard2")
    assert [r["index"] for r in one] == [0, 2, 4, 6]
    assert [r["index"] for r in two] == [1, 3, 5, 7]
    merged = tmp_path / "merged"
    argv = [
        "survey",
        "--merge",
        str(tmp_path / "shard1"),
        str(tmp_path / "shard2"),
        "--out",
        str(merged),
        "-q",
    ]
    assert main(argv) == 0
    assert _rows(merged) == _rows(surveyed)
    whole = json.loads((surveyed / "survey.json").read_text())
    assert json.loads((merged / "survey.json").read_text()) == {**whole, "shard": None}
    assert sorted(p.name for p in (merged / "cells").iterdir()) == sorted(whole["grid"])


_ONE_TOPK = ["--datasets", "builtin:corrigibility", "--layers", "1", "--architectures", "topk"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--layers", "1", "--architectures", "topk"], "--datasets"),
        (
            ["--datasets", "builtin:nope", "--layers", "1", "--architectures", "topk"],
            "--dataset builtin:nope",
        ),
        (["--datasets", "builtin:corrigibility", "--layers", "9", "--architectures", "topk"], "--layer"),
        (["--datasets", "builtin:corrigibility", "--layers", "1"], "--saes"),
        (["--datasets", "builtin:corrigibility", "--layers", "1", "--saes", "nowhere"], "--saes nowhere"),
        ([*_ONE_TOPK, "--shard", "3/2"], "--shard 3/2"),
        (["--datasets", "builtin:corrigibility", "--layers", "1", "--architectures", "gated"], "gated"),
        ([*_ONE_TOPK, "--n-null", "3"], "--n-null: n_null=3"),
    ],
)
def test_bad_survey_inputs_are_one_line(
    tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(["survey", "--model", str(tiny["model"]), *argv, "--out", str(tmp_path / "o"), "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "Traceback" not in lines[0]
    assert needle in lines[0]


def test_survey_leaves_a_foreign_folder_alone(
    tiny: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mine.txt").write_text("keep")
    argv = ["--datasets", "builtin:corrigibility", "--layers", "1", "--architectures", "topk", "-q"]
    assert main(["survey", "--model", str(tiny["model"]), *argv, "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    assert main(["survey", "--merge", str(tmp_path / "none"), "--out", str(tmp_path / "m"), "-q"]) == 2
