"""Prompts that end at the read token: A/B prompts (plain or chat), contrastive pairs, tokenizing.

A/B prompts end in the answer letter (``"...(A"``), the token CAA reads. Free-form pairs are the
neutral opening followed by the positive or the negative completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sae_steer_checks.data.schema import ABItem, ContrastivePair, FreeformDataset, FreeformItem, swap_choices

__all__ = ["ab_pairs", "ab_prompt", "freeform_pairs", "tokenize", "uses_chat_template"]


def uses_chat_template(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` carries a chat template (then prompts are built with it)."""
    return bool(getattr(tokenizer, "chat_template", None))


def ab_prompt(tokenizer: Any, question: str, letter: str = "", *, chat_template: bool | None = None) -> str:
    """The prompt for ``question`` ending in ``"(" + letter`` (the read position when ``letter``).

    With a chat template (``chat_template=None`` means: when the tokenizer has one) the question is the
    user turn and the answer starts the model turn; otherwise ``"Question: ...\\n\\nAnswer: ("``.
    ``letter=""`` gives the prefix whose next-token distribution scores the letters.
    """
    if letter not in ("", "A", "B"):
        raise ValueError(f"letter must be '', 'A' or 'B', got {letter!r}")
    use_chat = uses_chat_template(tokenizer) if chat_template is None else chat_template
    if use_chat:
        head = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(head, str):
            raise ValueError(f"tokenizer.apply_chat_template returned {type(head).__name__}, not text")
    else:
        head = f"Question: {question}\n\nAnswer: "
    return f"{head}({letter}"


def ab_pairs(
    items: Sequence[ABItem],
    tokenizer: Any,
    *,
    swap: bool = False,
    chat_template: bool | None = None,
) -> list[ContrastivePair]:
    """Contrastive pairs for A/B items: the same prompt ending in the matching vs the other letter.

    With ``swap=True`` every item is followed by its choice-swapped copy, so each letter is the
    matching one equally often (the balanced CAA of ``sae_steer_checks.steering.caa``).
    """
    expanded: list[ABItem] = []
    for item in items:
        if not isinstance(item, ABItem):
            raise TypeError(f"items must be ABItem objects, got {type(item).__name__}")
        expanded.append(item)
        if swap:
            expanded.append(swap_choices(item))
    pairs = []
    for item in expanded:
        prompt = ab_prompt(tokenizer, item.question, chat_template=chat_template)
        pairs.append(ContrastivePair(prompt + item.matching, prompt + item.non_matching, item.matching))
    return pairs


def freeform_pairs(dataset: FreeformDataset | Sequence[FreeformItem]) -> list[ContrastivePair]:
    """Contrastive pairs ``prompt + positive`` vs ``prompt + negative`` of a free-form set."""
    items = dataset.items if isinstance(dataset, FreeformDataset) else dataset
    return [ContrastivePair(i.prompt + i.positive, i.prompt + i.negative) for i in items]


def tokenize(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text``, adding special tokens unless the text already starts with BOS.

    Chat templates write the BOS token into the text; tokenising it again with special tokens would
    give two.
    """
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (isinstance(bos, str) and bos and text.startswith(bos))
    ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
    return [int(i) for i in ids]

