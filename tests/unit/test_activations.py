"""Activations of ordinary text: windows read as a naive loop reads them, held-out documents by default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sae_steer_checks.data.corpus import CORPORA, corpus_windows, split_corpus
from sae_steer_checks.lm.activations import TextActivations, collect_activations, text_activations
from sae_steer_checks.lm.hooks import residual_activations
from tests.helpers.tiny_lm import tiny_model, tiny_tokenizer

# bit-identical comparisons across batch sizes need one intra-op thread
pytestmark = pytest.mark.usefixtures("one_thread")

_DOCS = [" ".join(f"w{i} {j}" for j in range(40)) + "." for i in range(12)]


@pytest.fixture
def tinytext(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(CORPORA, "tinytext", lambda: list(_DOCS))
    return "tinytext"


def test_collect_activations_drops_bos_and_matches_hooks() -> None:
    model = tiny_model("gemma3", n_layers=3)
    windows = torch.randint(4, 64, (5, 9), generator=torch.Generator().manual_seed(0))
    acts = collect_activations(model, windows, 1, batch_size=2)
    assert acts.shape == (5 * 8, 32)
    assert acts.dtype == torch.float32
    expected = residual_activations(model, windows, None, 1)[:, 1:].reshape(-1, 32)
    assert torch.equal(acts, expected)
    assert collect_activations(model, windows, 1, skip_first=False).shape == (5 * 9, 32)


def test_collect_activations_refuses_float_windows() -> None:
    with pytest.raises(ValueError, match=r"windows must be a \[n, window\] long tensor"):
        collect_activations(tiny_model("gemma3"), torch.zeros(2, 4), 1)


def test_text_activations_read_the_held_out_windows_a_loop_reads(tinytext: str) -> None:
    model, tokenizer = tiny_model("llama", n_layers=2), tiny_tokenizer()
    got = text_activations(
        model, tokenizer, 1, [tinytext], n_windows=3, window=16, heldout_fraction=0.3, seed=5
    )
    # the naive reference: split the documents, shuffle the held-out windows with the seed, read each alone
    split = split_corpus(tokenizer, [tinytext], window=16, heldout_fraction=0.3, seed=5)
    order = torch.randperm(split.heldout.shape[0], generator=torch.Generator().manual_seed(5))
    rows = [residual_activations(model, split.heldout[i : i + 1], None, 1)[0, 1:] for i in order[:3].tolist()]
    assert torch.allclose(got.activations, torch.cat(rows), atol=1e-6)
    assert got.activations.shape == (3 * 15, 32)
    assert (got.corpora, got.heldout_only, got.n_windows) == ((tinytext,), True, 3)
    assert got.describe() == f"45 held-out text tokens ({tinytext})"


def test_text_activations_of_a_users_files_read_all_their_documents(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("\n\n".join(_DOCS), encoding="utf-8")
    model, tokenizer = tiny_model("llama", n_layers=2), tiny_tokenizer()
    windows = corpus_windows(tokenizer, [str(path)], window=16)
    got = text_activations(model, tokenizer, 0, [str(path)], heldout_only=False, n_windows=10_000, window=16)
    assert isinstance(got, TextActivations)
    assert got.n_windows == windows.shape[0]
    order = torch.randperm(windows.shape[0], generator=torch.Generator().manual_seed(0))
    assert torch.equal(got.activations, collect_activations(model, windows[order], 0))
    assert got.describe() == f"{windows.shape[0] * 15} text tokens ({path})"


def test_one_short_document_of_ones_own_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("a few words of text, enough for two windows", encoding="utf-8")
    model, tokenizer = tiny_model("llama", n_layers=2), tiny_tokenizer()
    got = text_activations(model, tokenizer, 0, [str(path)], heldout_only=False, window=16)
    assert got.n_windows == 2
    with pytest.raises(ValueError, match="too little text for one window of 128 tokens"):
        text_activations(model, tokenizer, 0, [str(path)], heldout_only=False)


def test_split_seed_fixes_the_documents_and_seed_the_draw(tinytext: str) -> None:
    model, tokenizer = tiny_model("llama", n_layers=2), tiny_tokenizer()
    kwargs = {"n_windows": 2, "window": 16, "heldout_fraction": 0.3, "split_seed": 0}
    a = text_activations(model, tokenizer, 1, [tinytext], seed=1, **kwargs)
    b = text_activations(model, tokenizer, 1, [tinytext], seed=1, **kwargs)
    c = text_activations(model, tokenizer, 1, [tinytext], n_windows=100, window=16, heldout_fraction=0.3)
    assert torch.equal(a.activations, b.activations)
    # every window drawn with split_seed=0 is one of the held-out windows of seed 0's split
    pool = c.activations.reshape(-1, 15, 32)
    for window in a.activations.reshape(-1, 15, 32):
        assert any(torch.equal(window, other) for other in pool)


def test_text_activations_errors_name_the_argument(tinytext: str, tmp_path: Path) -> None:
    model, tokenizer = tiny_model("llama", n_layers=2), tiny_tokenizer()
    with pytest.raises(ValueError, match="n_windows must be >= 1"):
        text_activations(model, tokenizer, 1, [tinytext], n_windows=0)
    with pytest.raises(ValueError, match="corpora must name distinct corpora"):
        text_activations(model, tokenizer, 1, [tinytext, tinytext])
    with pytest.raises(ValueError, match="corpus must be one of"):
        text_activations(model, tokenizer, 1, [str(tmp_path / "missing.txt")])
    with pytest.raises(ValueError, match=r"layer must be in 0\.\.1"):
        text_activations(model, tokenizer, 5, [tinytext], window=16, heldout_fraction=0.3)
