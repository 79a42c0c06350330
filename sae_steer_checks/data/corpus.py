"""Offline text for collecting activations: English news and Python documentation prose.

Two sources that any installation can reach without a network:

- ``"lee"``: the Lee background corpus of Australian news stories shipped in the gensim wheel
  (``gensim/test/test_data/lee_background.cor``; 299 stories, ~60k words, ~74k Gemma 3 tokens);
- ``"pydoc"``: the reference-manual topics of Python's own ``pydoc_data.topics`` (79 topics, ~65k
  words of prose with code examples).

Documents are split into training and held-out sets as whole documents (held-out text never reaches
training), deterministically from a seed, then tokenised into fixed-length windows.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["CORPORA", "CorpusSplit", "corpus_windows", "load_documents", "split_corpus"]


def _lee_documents() -> list[str]:
    spec = importlib.util.find_spec("gensim")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the 'lee' corpus is read from the gensim wheel: run `pip install gensim`")
    path = Path(spec.origin).parent / "test" / "test_data" / "lee_background.cor"
    if not path.is_file():
        raise FileNotFoundError(f"the gensim installation lacks its test corpus {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _pydoc_documents() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[key].strip() for key in sorted(topics) if topics[key].strip()]


#: Corpus name -> function returning its documents in a fixed order.
CORPORA: dict[str, Callable[[], list[str]]] = {"lee": _lee_documents, "pydoc": _pydoc_documents}


def load_documents(name: str) -> list[str]:
    """The documents of corpus ``name``, in a fixed order.

    ``name`` is a key of ``CORPORA`` or the path of a user's text: a plain-text file (documents
    separated by blank lines), a JSON-lines file (``.jsonl``; one document per line, a string or an
    object with a ``"text"`` key), or a folder of such files (``*.txt``, ``*.jsonl``, sorted by name).
    """
    if name in CORPORA:
        return CORPORA[name]()
    path = Path(name).expanduser()
    if not path.exists():
        raise ValueError(f"corpus must be one of {sorted(CORPORA)} or a text file or folder, got {name!r}")
    files = sorted(f for f in path.iterdir() if f.suffix in (".txt", ".jsonl")) if path.is_dir() else [path]
    documents = [doc for f in files for doc in _file_documents(f)]
    if not documents:
        raise ValueError(f"corpus {name}: no text found (expected .txt or .jsonl files with text)")
    return documents


def _file_documents(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [d.strip() for d in text.split("\n\n") if d.strip()]
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"corpus {path}: line {number} is not JSON ({error.msg})") from None
        doc = record.get("text") if isinstance(record, dict) else record
        if not isinstance(doc, str):
            raise ValueError(f"corpus {path}: line {number} holds no string or 'text' field")
        if doc.strip():
            documents.append(doc.strip())
    return documents


@dataclass(frozen=True)
class CorpusSplit:
    """Token windows of a corpus, split into training and held-out documents."""

    train: Tensor
    """Training windows ``[n_train, window]`` (long), each starting with the BOS token."""
    heldout: Tensor
    """Held-out windows ``[n_heldout, window]`` (long), from documents never in ``train``."""
    corpora: tuple[str, ...]
    """Names of the corpora used, in order."""
    window: int
    """Tokens per window, BOS included."""
    heldout_fraction: float
    """Target share of each corpus's tokens assigned to held-out documents."""
    seed: int
    """Seed of the document shuffle that decides the split."""
    n_documents: dict[str, tuple[int, int]]
    """Per corpus: (training documents, held-out documents)."""

    def __post_init__(self) -> None:
        for name, ids in (("train", self.train), ("heldout", self.heldout)):
            if ids.ndim != 2 or ids.shape[1] != self.window:
                raise ValueError(f"{name} must be [n, {self.window}], got {list(ids.shape)}")

    @property
    def n_train_tokens(self) -> int:
        """Training tokens, BOS positions excluded."""
        return int(self.train.shape[0] * (self.window - 1))

    @property
    def n_heldout_tokens(self) -> int:
        """Held-out tokens, BOS positions excluded."""
        return int(self.heldout.shape[0] * (self.window - 1))


def split_corpus(
    tokenizer: PreTrainedTokenizerBase,
    corpora: Sequence[str] = ("lee", "pydoc"),
    *,
    window: int = 128,
    heldout_fraction: float = 0.1,
    seed: int = 0,
) -> CorpusSplit:
    """Tokenise ``corpora`` into ``window``-token windows with a document-level held-out split.

    Per corpus, documents are shuffled with ``seed`` and taken into the held-out set while it stays
    within ``heldout_fraction`` of that corpus's tokens; the rest is training text. Within each set,
    documents are joined with blank lines, tokenised without special tokens, cut into runs of
    ``window - 1`` tokens (the incomplete tail is dropped) and given a leading BOS, since Gemma and
    most decoders expect one and its position is an outlier best left out of SAE training.
    """
    corpora = tuple(corpora)
    if not corpora or len(set(corpora)) != len(corpora):
        raise ValueError(f"corpora must name distinct corpora, got {corpora!r}")
    if not 2 <= window <= 8192:
        raise ValueError(f"window must be in 2..8192, got {window}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ValueError("tokenizer must define bos_token_id")
    generator = torch.Generator().manual_seed(seed)
    train_runs: list[Tensor] = []
    heldout_runs: list[Tensor] = []
    counts: dict[str, tuple[int, int]] = {}
    for name in corpora:
        documents = load_documents(name)
        lengths = [len(_encode(tokenizer, doc)) for doc in documents]
        budget = heldout_fraction * sum(lengths)
        heldout_ids: set[int] = set()
        used = 0
        for index in torch.randperm(len(documents), generator=generator).tolist():
            if used + lengths[index] <= budget:
                heldout_ids.add(index)
                used += lengths[index]
        train_docs = [d for i, d in enumerate(documents) if i not in heldout_ids]
        heldout_docs = [d for i, d in enumerate(documents) if i in heldout_ids]
        if not heldout_docs:
            raise ValueError(
                f"heldout_fraction {heldout_fraction} is too small to hold any {name!r} document"
            )
        counts[name] = (len(train_docs), len(heldout_docs))
        train_runs.append(_windows(tokenizer, train_docs, window, bos))
        heldout_runs.append(_windows(tokenizer, heldout_docs, window, bos))
    return CorpusSplit(
        train=torch.cat(train_runs),
        heldout=torch.cat(heldout_runs),
        corpora=corpora,
        window=window,
        heldout_fraction=heldout_fraction,
        seed=seed,
        n_documents=counts,
    )


def corpus_windows(
    tokenizer: PreTrainedTokenizerBase, corpora: Sequence[str], *, window: int = 128
) -> Tensor:
    """Every document of ``corpora`` in ``window``-token windows ``[n, window]`` (long), no split.

    Windows are cut as :func:`split_corpus` cuts each of its sets (documents joined with blank lines,
    ``window - 1`` tokens after a BOS, the incomplete tail dropped), corpus by corpus, in order.
    """
    corpora = tuple(corpora)
    if not corpora or len(set(corpora)) != len(corpora):
        raise ValueError(f"corpora must name distinct corpora, got {corpora!r}")
    if not 2 <= window <= 8192:
        raise ValueError(f"window must be in 2..8192, got {window}")
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        raise ValueError("tokenizer must define bos_token_id")
    return torch.cat([_windows(tokenizer, load_documents(name), window, bos) for name in corpora])


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _windows(tokenizer: PreTrainedTokenizerBase, documents: list[str], window: int, bos: int) -> Tensor:
    ids = torch.tensor(_encode(tokenizer, "\n\n".join(documents)), dtype=torch.long)
    n = ids.numel() // (window - 1)
    body = ids[: n * (window - 1)].reshape(n, window - 1)
    return torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)
