"""Dress rehearsal of the Gemma 2 2B tier: all of its plumbing, run on stand-ins offline, on the CPU.

The stand-ins (``tests/helpers/gemma2_standins.py``: a tiny random ``google/gemma-2-2b``, a real-shaped
Gemma Scope ``params.npz`` with the study's structure planted, the CAA files) sit in a temporary hub cache.
``tests/gpu/replication.py`` runs on them exactly as on the real weights (load by hub id and sae-lens
release, raw CAA at layer 14, ordinary-text activations, every diagnostic with per-item A/B scores, the
report, the replication table), with 24 + 8 items, 1k text tokens and small null counts. The planted
figures and the report keys the tier reads are pinned in ``tests/gpu/standin_expectations.json``, so a
broken loader, a wrong hook point or a renamed report key fails here, in CI, before anyone runs the GPU tier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sae_steer_checks.data.prompts import ab_pairs, tokenize
from sae_steer_checks.diagnostics.run import CheckConfig
from tests.gpu.figures import load_expectations, replication_table, tier_figures, write_replication_table
from tests.gpu.replication import (
    LAYER,
    SAE_ENV,
    SAE_SPEC,
    TierConfig,
    TierRun,
    is_standin,
    load_items,
    load_tier_sae,
    sae_params_path,
)
from tests.helpers.gemma2_standins import Standins

pytestmark = pytest.mark.realmodel

GPU_DIR = Path(__file__).resolve().parents[1] / "gpu"
EXPECTED = GPU_DIR / "standin_expectations.json"
#: Small enough for two CPU cores; every code path of the real run still runs.
REHEARSAL: dict[str, Any] = {
    "device": "cpu",
    "dtype": torch.float32,
    "max_generate": 24,
    "max_test": 8,
    "token_budget": 1024,
    "extract_batch_size": 16,
    "text_batch_size": 8,
    "score_batch_size": 16,
    "check": CheckConfig(n_null=19, n_boot=50, leaning_n_perm=200, k_max=8, signed_k=8),
    "learn_steps": 2,
}


@pytest.fixture(scope="module")
def standins(gemma2_standins: Standins) -> Iterator[Standins]:
    """The session's stand-ins (``conftest.py``) made current (environment and hub constants) here."""
    with gemma2_standins.activate():
        yield gemma2_standins


@pytest.fixture(scope="module")
def rehearsal(standins: Standins, tmp_path_factory: pytest.TempPathFactory) -> tuple[TierRun, Path]:
    """One run of the tier's plumbing on the stand-ins, its report folder and replication table."""
    from tests.gpu.replication import run_tier

    out = tmp_path_factory.mktemp("rehearsal-report")
    config = TierConfig.from_env(**REHEARSAL)
    assert config.sae == SAE_SPEC, "the rehearsal must load the SAE through sae-lens' release path"
    run = run_tier(config, out)
    return run, out


def _at(report: dict[str, Any], dotted: str) -> Any:
    node: Any = report
    for key in dotted.split("."):
        assert isinstance(node, dict), f"report.json: {dotted!r} runs into a {type(node).__name__} at {key!r}"
        assert key in node, f"report.json lacks {dotted!r} (stopped at {key!r})"
        node = node[key]
    return node


def test_reads_layer_14_as_hidden_states_15(rehearsal: tuple[TierRun, Path], standins: Standins) -> None:
    """CAA reads the output of block 14, which a full forward returns as ``hidden_states[15]``."""
    run, _ = rehearsal
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run.config.model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(run.config.model)
    generate, _test = load_items(run.config.caa, max_generate=2, max_test=0)
    pair = ab_pairs(generate[:1], tok, prompt_format="plain")[0]
    with torch.no_grad():
        states = model(torch.tensor([tokenize(tok, pair.positive)]), output_hidden_states=True).hidden_states
    read = run.caa.positive[0]
    torch.testing.assert_close(read, states[LAYER + 1][0, -1].float(), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(read, states[LAYER][0, -1].float(), rtol=1e-2, atol=1e-2)
    assert run.caa.layer == LAYER == run.report["provenance"]["layer"]


def test_raw_caa_with_plain_prompts(rehearsal: tuple[TierRun, Path]) -> None:
    run, _ = rehearsal
    extraction = run.report["provenance"]["extraction"]
    assert (extraction["balance"], extraction["prompt_format"]) == ("none", "plain")
    assert run.caa.n_items == 24 + 8
    assert run.caa.positive.shape == (32, 2304)
    torch.testing.assert_close(run.caa.vector, (run.caa.positive - run.caa.negative).mean(0))
    assert run.report["provenance"]["behaviour"]["n_items"] == 8


def test_report_has_every_key_the_figures_read(rehearsal: tuple[TierRun, Path]) -> None:
    run, out = rehearsal
    written = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(run.report))
    for dotted in json.loads(EXPECTED.read_text(encoding="utf-8"))["report_keys"]:
        _at(written, dotted)
    assert (out / "report.md").is_file()


def test_report_bias_section_matches_saev_and_sae0(rehearsal: tuple[TierRun, Path]) -> None:
    """The report's two conventions agree with SAE(0) and SAE(v) encoded directly (no mix-up of keys)."""
    run, _ = rehearsal
    bias = run.report["bias"]
    for section in (bias, bias["other_convention"]):
        subtracted = section["decoder_bias_subtracted"]
        for key, codes in (("top_features_zero", run.weights["zero"]), ("top_features_vector", run.saev)):
            listed = [(e["feature"], e["value"]) for e in section[key]]
            code = codes[subtracted]
            assert [f for f, _ in listed] == torch.sort(code, descending=True, stable=True).indices[
                : len(listed)
            ].tolist()
            assert [v for _, v in listed] == pytest.approx([float(code[f]) for f, _ in listed], abs=1e-3)
    assert bias["decoder_bias_subtracted"] is False  # Gemma Scope's own convention
    assert bias["l0_zero"] == 4


def test_planted_figures_and_replication_table(
    rehearsal: tuple[TierRun, Path], tmp_path: Path, standins: Standins
) -> None:
    run, _ = rehearsal
    figures = tier_figures(run)
    expected = load_expectations(EXPECTED)
    failing = [r for r in replication_table(figures, expected) if not r.holds]
    assert not failing, [(r.figure, r.ours, r.study, r.note) for r in failing]
    # every figure of the study is produced, and the table is written in its documented shape
    study = load_expectations(GPU_DIR / "study.json")
    rows = replication_table(figures, study)
    assert [r.figure for r in rows] == list(study)
    assert all(r.ours is not None for r in rows), [r.figure for r in rows if r.ours is None]
    md, js = write_replication_table(rows, tmp_path)
    lines = md.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "| figure | study | ours | tolerance | holds? |"
    assert len([line for line in lines if line.startswith("| ")]) == 2 + len(study)  # header, rule, rows
    assert [r["figure"] for r in json.loads(js.read_text(encoding="utf-8"))["rows"]] == list(study)


def test_local_params_npz_loads_the_same_sae(standins: Standins, monkeypatch: pytest.MonkeyPatch) -> None:
    """``SAE_STEER_CHECKS_GEMMA_SCOPE`` naming a params.npz loads what the release loads; it is a stand-in."""
    path, _ = sae_params_path()
    assert path is not None
    assert is_standin(path)
    monkeypatch.setenv(SAE_ENV, str(path.parent))
    assert sae_params_path()[0] == path
    sae, provenance = load_tier_sae(str(path.parent))
    assert provenance["source"] == "params.npz"
    assert float(sae.b_enc.detach()[4888]) == pytest.approx(86.2, abs=1e-4)
    assert sae.cfg.apply_b_dec_to_input is False
    assert tuple(sae.W_dec.shape) == (16384, 2304)
