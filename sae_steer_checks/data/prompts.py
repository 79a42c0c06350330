r"""Prompts that end at the read token: A/B prompts (plain or chat), contrastive pairs, tokenizing.

A/B prompts end in the answer letter (``"...(A"``), the token CAA reads. Free-form pairs are the
neutral opening followed by the positive or the negative completion.

Prompt format: ``"plain"`` is ``"Question: ...\n\nAnswer: ("``; ``"chat"`` puts the question in the
user turn of the tokenizer's chat template and starts the model turn with ``"("``; ``"auto"`` (the
default) is chat only for an instruction-tuned model: the tokenizer has a chat template AND its
``name_or_path`` names an instruction-tuned checkpoint (see :func:`is_instruction_tuned`). Template
presence alone is not enough: Gemma 2's base tokenizer ships a chat template, and a base model
gets a plain prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset, FreeformItem, swap_choices

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "PROMPT_FORMATS",
    "PromptFormat",
    "ab_pairs",
    "ab_prompt",
    "expand_ab_items",
    "freeform_pairs",
    "is_instruction_tuned",
    "resolve_prompt_format",
    "tokenize",
    "uses_chat_template",
]

PromptFormat = Literal["plain", "chat", "auto"]
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)

# Markers of instruction-tuned checkpoints in a name or path, matched case-insensitively: "it", "sft",
# "rlhf" and "dpo" as whole name parts (between "-", "_", ".", "/" or the ends: gemma-2-2b-it,
# zephyr-7b-sft), "instruct" and "chat" anywhere (Llama-3.2-1B-Instruct, Llama-2-7b-chat-hf).
_TUNED = re.compile(r"(?:^|[-_./])(?:it|sft|rlhf|dpo)(?:$|[-_./])|instruct|chat", re.IGNORECASE)


def uses_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether ``tokenizer`` carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def is_instruction_tuned(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether ``tokenizer`` belongs to an instruction-tuned model, for ``prompt_format="auto"``.

    True when it has a chat template and its ``name_or_path`` (the hub id or local folder it was
    loaded from) carries an instruction-tuning marker: ``-it``, ``instruct``, ``chat``, ``-sft``,
    ``rlhf`` or ``dpo`` (case-insensitive). A local copy saved under a name without a marker counts
    as a base model: pass ``prompt_format="chat"`` for it.
    """
    name = getattr(tokenizer, "name_or_path", None) or ""
    return uses_chat_template(tokenizer) and bool(_TUNED.search(str(name)))


def resolve_prompt_format(
    tokenizer: PreTrainedTokenizerBase,
    prompt_format: PromptFormat = "auto",
    *,
    chat_template: bool | None = None,
) -> Literal["plain", "chat"]:
    """The concrete format (``"plain"`` or ``"chat"``) for ``tokenizer``.

    ``chat_template`` is the older keyword: ``True``/``False`` force chat/plain and win over
    ``prompt_format``; ``None`` defers to it. ``"chat"`` needs a tokenizer with a chat template.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format must be one of {PROMPT_FORMATS}, got {prompt_format!r}")
    if chat_template is not None:
        prompt_format = "chat" if chat_template else "plain"
    if prompt_format == "auto":
        return "chat" if is_instruction_tuned(tokenizer) else "plain"
    if prompt_format == "chat" and not uses_chat_template(tokenizer):
        raise ValueError("prompt_format='chat' needs a tokenizer with a chat template, this one has none")
    return prompt_format


def ab_prompt(
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    letter: str = "",
    *,
    prompt_format: PromptFormat = "auto",
    chat_template: bool | None = None,
) -> str:
    r"""The prompt for ``question`` ending in ``"(" + letter`` (the read position when ``letter``).

    Chat: the question is the user turn and the answer starts the model turn; plain:
    ``"Question: ...\n\nAnswer: ("`` (formats in the module notes; ``chat_template`` as in
    :func:`resolve_prompt_format`). ``letter=""`` gives the prefix whose next-token distribution
    scores the letters.
    """
    if letter not in ("", "A", "B"):
        raise ValueError(f"letter must be '', 'A' or 'B', got {letter!r}")
    if resolve_prompt_format(tokenizer, prompt_format, chat_template=chat_template) == "chat":
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(head, str):
            raise ValueError(f"tokenizer.apply_chat_template returned {type(head).__name__}, not text")
    else:
        head = f"Question: {question}\n\nAnswer: "
    return f"{head}({letter}"


def expand_ab_items(items: Sequence[ABItem], *, swap: bool = False) -> tuple[list[ABItem], tuple[int, ...]]:
    """The items, each followed by its choice-swapped copy when ``swap``, and each row's item index.

    The copy shares its original's index: the two are one unit (one question) for every test,
    standard error and interval downstream.
    """
    expanded: list[ABItem] = []
    ids: list[int] = []
    for index, item in enumerate(items):
        if not isinstance(item, ABItem):
            raise TypeError(f"items must be ABItem objects, got {type(item).__name__}")
        expanded.append(item)
        ids.append(index)
        if swap:
            expanded.append(swap_choices(item))
            ids.append(index)
    return expanded, tuple(ids)


def ab_pairs(
    items: Sequence[ABItem],
    tokenizer: PreTrainedTokenizerBase,
    *,
    swap: bool = False,
    prompt_format: PromptFormat = "auto",
    chat_template: bool | None = None,
) -> list[ContrastivePair]:
    """Contrastive pairs for A/B items: the same prompt ending in the matching vs the other letter.

    With ``swap=True`` every item is followed by its choice-swapped copy, so each letter is the
    matching one equally often (the balanced CAA of ``sae_steer_checks.steering.caa``); the pairs
    line up with :func:`expand_ab_items`.
    """
    expanded, _ = expand_ab_items(items, swap=swap)
    fmt = resolve_prompt_format(tokenizer, prompt_format, chat_template=chat_template)
    pairs = []
    for item in expanded:
        prompt = ab_prompt(tokenizer, item.question, prompt_format=fmt)
        pairs.append(ContrastivePair(prompt + item.matching, prompt + item.non_matching, item.matching))
    return pairs


def freeform_pairs(dataset: FreeformDataset | Sequence[FreeformItem]) -> list[ContrastivePair]:
    """Contrastive pairs ``prompt + positive`` vs ``prompt + negative`` of a free-form set."""
    items = dataset.items if isinstance(dataset, FreeformDataset) else dataset
    return [ContrastivePair(i.prompt + i.positive, i.prompt + i.negative) for i in items]


def tokenize(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text``, adding special tokens unless the text already starts with BOS.

    Chat templates write the BOS token into the text; tokenising it again with special tokens would
    give two.
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (isinstance(bos, str) and bos and text.startswith(bos))
    ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
    return [int(i) for i in ids]
