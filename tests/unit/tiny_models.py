"""Tiny random-weight causal LMs built from configs, for CPU tests that download nothing."""

from __future__ import annotations

import string
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from torch import nn
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
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

TINY_KINDS = ("gemma2", "gemma3", "llama", "mistral", "qwen2", "gpt2", "neox")
TINY_VOCAB = 64
TINY_WIDTH = 32

_SMALL = {
    "vocab_size": TINY_VOCAB,
    "hidden_size": TINY_WIDTH,
    "intermediate_size": 64,
    "num_attention_heads": 4,
}


def tiny_model(
    kind: str, n_layers: int = 3, seed: int = 0, *, vocab_size: int = TINY_VOCAB, **overrides: Any
) -> nn.Module:
    """A float32 causal LM of family ``kind``, 32 wide, random weights, in eval mode.

    ``overrides`` are passed to the model's config (e.g. ``attn_implementation``, special token ids).
    """
    torch.manual_seed(seed)
    small = {**_SMALL, "vocab_size": vocab_size}
    model: nn.Module
    if kind == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab_size, n_embd=TINY_WIDTH, n_layer=n_layers, n_head=4, **overrides)
        )
    elif kind == "neox":
        model = GPTNeoXForCausalLM(GPTNeoXConfig(**small, num_hidden_layers=n_layers, **overrides))
    else:
        builders = {
            "gemma2": (Gemma2Config, Gemma2ForCausalLM, {"head_dim": 8}),
            "gemma3": (Gemma3TextConfig, Gemma3ForCausalLM, {"head_dim": 8}),
            "llama": (LlamaConfig, LlamaForCausalLM, {}),
            "mistral": (MistralConfig, MistralForCausalLM, {}),
            "qwen2": (Qwen2Config, Qwen2ForCausalLM, {}),
        }
        config_cls, model_cls, extra = builders[kind]
        config = config_cls(**small, num_hidden_layers=n_layers, num_key_value_heads=2, **extra, **overrides)
        model = model_cls(config)
    return model.eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer of at most ``TINY_VOCAB`` ids with BOS/EOS/PAD, built in memory."""
    chars = string.ascii_lowercase + string.ascii_uppercase[:8] + " .,\n'-0123456789"
    vocab = {"<unk>": 0, "<bos>": 1, "<eos>": 2, "<pad>": 3}
    for char in chars:
        vocab.setdefault(char, len(vocab))
    assert len(vocab) <= TINY_VOCAB
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )
