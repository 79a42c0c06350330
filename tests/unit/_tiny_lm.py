"""Tiny random-weight causal LMs and a word-level tokenizer built in memory (nothing downloaded)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import tiny_models
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORD = re.compile(r"\w+|[^\w\s]+")


def word_tokenizer(texts: Iterable[str], *, chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word and punctuation mark in ``texts`` (``(A`` -> ``(``, ``A``)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for text in texts:
        for word in _WORD.findall(text):
            vocab.setdefault(word, len(vocab))
    for extra in ("A", "B", "(", ")", "Question", "Answer", ":", "user", "model", "<", ">", "|"):
        vocab.setdefault(extra, len(vocab))
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()  # the same \w+|[^\w\s]+ split as _WORD
    from tokenizers import processors

    raw.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def tiny_model(kind: str, vocab_size: int, *, seed: int = 0, n_layers: int = 3) -> PreTrainedModel:
    """A random-weight Gemma 2 or Llama model with ``n_layers`` blocks and d_model 32, in eval mode,
    eager attention and this tokenizer's special ids (pad 0, bos 1, eos 2)."""
    if kind not in ("gemma2", "llama"):
        raise ValueError(f"kind must be 'gemma2' or 'llama', got {kind!r}")
    extra = {"sliding_window": 16} if kind == "gemma2" else {}
    model = tiny_models.tiny_model(
        kind,
        n_layers,
        seed,
        vocab_size=vocab_size,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
        **extra,
    )
    assert isinstance(model, PreTrainedModel)
    return model
