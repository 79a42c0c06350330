"""Tiny random-weight causal LMs and tokenizers built in memory, for CPU tests that download nothing.

One factory for every family (:func:`tiny_model`) and two tokenizers that share one special-token layout
(pad 0, bos 1, eos 2, unk 3), which is also what the models' configs say: a character-level one of at most
``TINY_VOCAB`` ids without BOS (:func:`tiny_tokenizer`) and a word-level one over given texts
(:func:`word_tokenizer`), which splits ``(A`` into ``(`` and ``A`` so the answer letter is a token of its own.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

TINY_KINDS = ("gemma2", "gemma3", "llama", "mistral", "qwen2", "gpt2", "neox")
TINY_VOCAB = 64
TINY_WIDTH = 32
SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>"]
_WORD = re.compile(r"\w+|[^\w\s]+")
_SPECIAL_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def tiny_model(
    kind: str,
    vocab_size: int = TINY_VOCAB,
    *,
    n_layers: int = 3,
    seed: int = 0,
    **overrides: Any,
) -> PreTrainedModel:
    """A float32 causal LM of family ``kind`` (one of ``TINY_KINDS``), 32 wide, random weights, eval mode.

    Eager attention, 512 positions and the tokenizers' special ids (pad 0, bos 1, eos 2); Gemma 2 gets a
    16-token sliding window so its local layers differ from its global ones on short prompts.
    ``overrides`` go to the model's config.
    """
    if kind not in TINY_KINDS:
        raise ValueError(f"kind must be one of {TINY_KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    common: dict[str, Any] = {
        "max_position_embeddings": 512,
        "attn_implementation": "eager",
        **_SPECIAL_IDS,
        **({"sliding_window": 16} if kind == "gemma2" else {}),
        **overrides,
    }
    small = {
        "vocab_size": vocab_size,
        "hidden_size": TINY_WIDTH,
        "intermediate_size": 64,
        "num_attention_heads": 4,
    }
    model: PreTrainedModel
    if kind == "gpt2":
        gpt2 = GPT2Config(vocab_size=vocab_size, n_embd=TINY_WIDTH, n_layer=n_layers, n_head=4, **common)
        model = GPT2LMHeadModel(gpt2)
    elif kind == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**small, num_hidden_layers=n_layers, **common))
    else:
        builders: dict[str, tuple[Any, Any, dict[str, Any]]] = {
            "gemma2": (Gemma2Config, Gemma2ForCausalLM, {"head_dim": 8}),
            "gemma3": (Gemma3TextConfig, Gemma3ForCausalLM, {"head_dim": 8}),
            "llama": (LlamaConfig, LlamaForCausalLM, {}),
            "mistral": (MistralConfig, MistralForCausalLM, {}),
            "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
        }
        config_cls, model_cls, extra = builders[kind]
        config = config_cls(**small, num_hidden_layers=n_layers, num_key_value_heads=2, **extra, **common)
        model = model_cls(config)
    return model.eval()


def _fast_tokenizer(vocab: dict[str, int], pre_tokenizer: Any, *, add_bos: bool) -> PreTrainedTokenizerFast:
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizer
    if add_bos:
        raw.post_processor = processors.TemplateProcessing(
            single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer of at most ``TINY_VOCAB`` ids; it adds no BOS (the corpus code does)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for char in string.ascii_lowercase + string.ascii_uppercase[:8] + " .,\n'-0123456789":
        vocab.setdefault(char, len(vocab))
    if len(vocab) > TINY_VOCAB:
        raise ValueError(f"the character vocabulary has {len(vocab)} ids, more than TINY_VOCAB={TINY_VOCAB}")
    return _fast_tokenizer(vocab, pre_tokenizers.Split(Regex("."), behavior="isolated"), add_bos=False)


def word_tokenizer(texts: Iterable[str], *, chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over every word and punctuation mark in ``texts`` that prepends BOS."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for text in texts:
        for word in _WORD.findall(text):
            vocab.setdefault(word, len(vocab))
    for extra in ("A", "B", "(", ")", "Question", "Answer", ":", "user", "model", "<", ">", "|"):
        vocab.setdefault(extra, len(vocab))
    # Whitespace() is the same \w+|[^\w\s]+ split as _WORD
    tok = _fast_tokenizer(vocab, pre_tokenizers.Whitespace(), add_bos=True)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok
