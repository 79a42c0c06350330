"""Offline corpora and the document-level train / held-out split."""

from __future__ import annotations

import pytest
import torch

from sae_steer_checks.data.corpus import CORPORA, CorpusSplit, corpus_windows, load_documents, split_corpus
from tests.helpers.tiny_lm import tiny_tokenizer

_DOCS = [f"Document {i}: " + " ".join(f"word{i}x{j}" for j in range(20 + 7 * i)) for i in range(12)]


@pytest.fixture
def tiny_corpus(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(CORPORA, "tiny", lambda: list(_DOCS))
    return "tiny"


@pytest.mark.parametrize(("name", "min_docs", "min_words"), [("lee", 250, 50_000), ("pydoc", 60, 50_000)])
def test_bundled_corpora_are_offline_and_substantial(name: str, min_docs: int, min_words: int) -> None:
    documents = load_documents(name)
    assert len(documents) >= min_docs
    assert sum(len(doc.split()) for doc in documents) >= min_words
    assert all(doc == doc.strip() and doc for doc in documents)
    assert load_documents(name) == documents  # fixed order


def test_unknown_corpus_is_named() -> None:
    with pytest.raises(ValueError, match="corpus must be one of"):
        load_documents("wikipedia")


def test_split_windows_start_with_bos_and_have_fixed_length(tiny_corpus: str) -> None:
    tokenizer = tiny_tokenizer()
    split = split_corpus(tokenizer, [tiny_corpus], window=16, heldout_fraction=0.25, seed=3)
    assert isinstance(split, CorpusSplit)
    for ids in (split.train, split.heldout):
        assert ids.dtype == torch.long
        assert ids.shape[1] == 16
        assert (ids[:, 0] == tokenizer.bos_token_id).all()
        assert (ids[:, 1:] != tokenizer.bos_token_id).all()
    n_train, n_heldout = split.n_documents[tiny_corpus]
    assert n_train + n_heldout == len(_DOCS)
    assert split.n_train_tokens == split.train.shape[0] * 15


def test_heldout_documents_never_reach_training(tiny_corpus: str) -> None:
    tokenizer = tiny_tokenizer()
    split = split_corpus(tokenizer, [tiny_corpus], window=16, heldout_fraction=0.3, seed=1)

    def decode(row: torch.Tensor) -> str:
        return "".join(tokenizer.convert_ids_to_tokens(row.tolist()))

    train_text = "".join(decode(row[1:]) for row in split.train)
    heldout_text = "".join(decode(row[1:]) for row in split.heldout)
    heldout_docs = [i for i in range(len(_DOCS)) if f"word{i}x5 " in heldout_text]
    assert heldout_docs
    for i in heldout_docs:
        assert f"word{i}x" not in train_text
    # the held-out share stays within the requested fraction of the tokens
    total = split.train.numel() + split.heldout.numel()
    assert split.heldout.numel() <= 0.3 * total + 2 * 16


def test_split_is_deterministic_and_seeded(tiny_corpus: str) -> None:
    tokenizer = tiny_tokenizer()
    first = split_corpus(tokenizer, [tiny_corpus], window=16, heldout_fraction=0.3, seed=0)
    again = split_corpus(tokenizer, [tiny_corpus], window=16, heldout_fraction=0.3, seed=0)
    other = split_corpus(tokenizer, [tiny_corpus], window=16, heldout_fraction=0.3, seed=5)
    assert torch.equal(first.train, again.train)
    assert torch.equal(first.heldout, again.heldout)
    assert not torch.equal(first.heldout, other.heldout) or first.heldout.shape != other.heldout.shape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 1}, "window"),
        ({"heldout_fraction": 0.0}, "heldout_fraction"),
        ({"heldout_fraction": 1.0}, "heldout_fraction"),
        ({"heldout_fraction": 0.001}, "too small"),
    ],
)
def test_bad_split_arguments_are_named(tiny_corpus: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_corpus(tiny_tokenizer(), [tiny_corpus], **kwargs)


def test_repeated_corpus_is_refused(tiny_corpus: str) -> None:
    with pytest.raises(ValueError, match="distinct"):
        split_corpus(tiny_tokenizer(), [tiny_corpus, tiny_corpus])


def test_corpus_windows_cut_every_document_as_a_split_cuts_one_set(tiny_corpus: str) -> None:
    tok = tiny_tokenizer()
    windows = corpus_windows(tok, [tiny_corpus], window=16)
    ids = tok("\n\n".join(_DOCS), add_special_tokens=False)["input_ids"]
    n = len(ids) // 15
    assert windows.shape == (n, 16)
    assert (windows[:, 0] == tok.bos_token_id).all()
    assert windows[:, 1:].reshape(-1).tolist() == ids[: n * 15]
    with pytest.raises(ValueError, match="corpora must name distinct corpora"):
        corpus_windows(tok, [tiny_corpus, tiny_corpus])
    with pytest.raises(ValueError, match="window must be in"):
        corpus_windows(tok, [tiny_corpus], window=1)
