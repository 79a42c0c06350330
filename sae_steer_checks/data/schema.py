"""Contrastive data: the CAA A/B format and free-form contrasts, loaded and validated.

A/B items follow the CAA JSON format: a list of objects with ``question`` (the question with its
``(A)``/``(B)`` choices), ``answer_matching_behavior`` and ``answer_not_matching_behavior`` (``"(A)"`` or
``"(B)"``). Prompts end in the answer letter (``"...(A"``), the token CAA reads. Free-form sets contrast
two completions of one neutral opening and are scored by the log-probability of target words.
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

__all__ = [
    "BUNDLED_AB",
    "BUNDLED_FREEFORM",
    "HELDOUT_FRACTION",
    "ABItem",
    "ContrastivePair",
    "FreeformDataset",
    "FreeformItem",
    "bundled_path",
    "load_ab_items",
    "load_dataset",
    "load_freeform",
    "sample_dataset",
    "split_dataset",
    "split_items",
    "swap_choices",
]

Letter = Literal["A", "B"]
T = TypeVar("T")

#: A/B behaviours shipped with the package (``sae_steer_checks/datasets/<name>.json``).
BUNDLED_AB = ("corrigibility", "survival_instinct")
#: Free-form behaviours shipped with the package.
BUNDLED_FREEFORM = ("sentiment",)
#: Share of the items :func:`split_dataset` holds out for scoring behaviour (the rest extract the vector).
HELDOUT_FRACTION = 0.25

_ANSWER = re.compile(r"^\s*\(?\s*([AB])\s*\)?\s*$")
_CHOICE = re.compile(r"^(\s*)\(([AB])\)(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class ABItem:
    """One A/B question whose choices are written inside ``question``."""

    question: str
    """The question text including the ``(A) ...`` and ``(B) ...`` choice lines."""
    matching: Letter
    """Letter of the answer that matches the behaviour."""

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise ValueError(f"question must be a non-empty string, got {self.question!r}")
        if self.matching not in ("A", "B"):
            raise ValueError(f"matching must be 'A' or 'B', got {self.matching!r}")

    @property
    def non_matching(self) -> Letter:
        """Letter of the answer that does not match the behaviour."""
        return "B" if self.matching == "A" else "A"


@dataclass(frozen=True)
class FreeformItem:
    """A neutral opening with a positive and a negative completion."""

    prompt: str
    """The opening, e.g. ``"The movie was"``."""
    positive: str
    """Completion showing the behaviour, e.g. ``" delightful"`` (leading space included)."""
    negative: str
    """Completion showing its opposite, e.g. ``" miserable"``."""

    def __post_init__(self) -> None:
        for name in ("prompt", "positive", "negative"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if self.positive == self.negative:
            raise ValueError(f"positive and negative must differ, both are {self.positive!r}")


@dataclass(frozen=True)
class FreeformDataset:
    """A free-form contrastive behaviour: pairs for extraction, target words for scoring."""

    name: str
    """Behaviour name."""
    items: tuple[FreeformItem, ...]
    """Openings with contrasting completions."""
    positive_targets: tuple[str, ...]
    """Continuations whose probability rises with the behaviour."""
    negative_targets: tuple[str, ...]
    """Continuations whose probability falls with the behaviour."""
    description: str = ""
    """What the behaviour is."""

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("items must hold at least one FreeformItem, got none")
        for field in ("positive_targets", "negative_targets"):
            targets = getattr(self, field)
            if not targets or not all(isinstance(t, str) and t for t in targets):
                raise ValueError(f"{field} must be non-empty strings, got {targets!r}")
        shared = set(self.positive_targets) & set(self.negative_targets)
        if shared:
            raise ValueError(f"positive_targets and negative_targets share {sorted(shared)}")


@dataclass(frozen=True)
class ContrastivePair:
    """Two full prompts that differ only at the end; activations are read at their last token."""

    positive: str
    """Prompt ending in the behaviour-matching answer or completion."""
    negative: str
    """Prompt ending in the non-matching answer or completion."""
    positive_letter: Letter | None = None
    """Letter read on the positive side for A/B pairs, ``None`` for free-form pairs."""


def bundled_path(name: str) -> Path:
    """Path of the bundled dataset ``name`` (one of ``BUNDLED_AB + BUNDLED_FREEFORM``)."""
    if name not in BUNDLED_AB + BUNDLED_FREEFORM:
        raise ValueError(
            f"name must be a bundled dataset, one of {BUNDLED_AB + BUNDLED_FREEFORM}, got {name!r}"
        )
    return Path(__file__).resolve().parent / "builtin" / f"{name}.json"


def _read_json(source: str | os.PathLike[str]) -> tuple[Any, str]:
    """Parse JSON from a bundled name, a local path or an http(s) URL; return it and its label."""
    text_source = os.fspath(source)
    if text_source in BUNDLED_AB + BUNDLED_FREEFORM:
        path = bundled_path(text_source)
    elif text_source.startswith(("http://", "https://")):
        with urllib.request.urlopen(text_source, timeout=60) as response:
            raw = response.read().decode("utf-8")
        try:
            return json.loads(raw), text_source
        except json.JSONDecodeError as err:
            raise ValueError(f"{text_source}: not valid JSON ({err})") from err
    else:
        path = Path(text_source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"source: no dataset file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def _letter(value: Any, *, label: str, key: str) -> Letter:
    match = _ANSWER.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{label}: {key!r} must be '(A)' or '(B)', got {value!r}")
    return "A" if match.group(1) == "A" else "B"


def _ab_item(raw: Any, label: str) -> ABItem:
    if not isinstance(raw, dict):
        raise ValueError(f"{label}: expected an object, got {type(raw).__name__}")
    for key in ("question", "answer_matching_behavior", "answer_not_matching_behavior"):
        if key not in raw:
            raise ValueError(f"{label}: missing key {key!r}")
    question = raw["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{label}: 'question' must be a non-empty string, got {question!r}")
    matching = _letter(raw["answer_matching_behavior"], label=label, key="answer_matching_behavior")
    other = _letter(raw["answer_not_matching_behavior"], label=label, key="answer_not_matching_behavior")
    if matching == other:
        raise ValueError(f"{label}: both answers are ({matching}); they must be (A) and (B)")
    return ABItem(question=question, matching=matching)


def load_ab_items(source: str | os.PathLike[str]) -> list[ABItem]:
    """Load CAA A/B items from a bundled name, a JSON file path or an http(s) URL.

    Returns the items in file order. Raises ``ValueError`` naming the file and the item index for
    malformed items, ``FileNotFoundError`` for a missing path.
    """
    return _ab_items(*_read_json(source))


def _ab_items(data: Any, label: str) -> list[ABItem]:
    if not isinstance(data, list) or not data:
        raise ValueError(f"{label}: expected a non-empty JSON list of A/B items")
    return [_ab_item(raw, f"{label} item {index}") for index, raw in enumerate(data)]


def load_freeform(source: str | os.PathLike[str]) -> FreeformDataset:
    """Load a free-form contrastive set (bundled name, path or URL) into a ``FreeformDataset``.

    The JSON object holds ``name``, ``positive_targets``, ``negative_targets`` and ``items``
    (objects with ``prompt``, ``positive``, ``negative``); errors name the file and item index.
    """
    return _freeform(*_read_json(source))


def _freeform(data: Any, label: str) -> FreeformDataset:
    if not isinstance(data, dict):
        raise ValueError(f"{label}: expected a JSON object with 'items' and target lists")
    for key in ("items", "positive_targets", "negative_targets"):
        if key not in data:
            raise ValueError(f"{label}: missing key {key!r}")
    if not isinstance(data["items"], list) or not data["items"]:
        raise ValueError(f"{label}: 'items' must be a non-empty list")
    items = []
    for index, raw in enumerate(data["items"]):
        if not isinstance(raw, dict) or not {"prompt", "positive", "negative"} <= raw.keys():
            raise ValueError(f"{label} item {index}: expected an object with prompt/positive/negative")
        try:
            items.append(FreeformItem(raw["prompt"], raw["positive"], raw["negative"]))
        except ValueError as err:
            raise ValueError(f"{label} item {index}: {err}") from err
    try:
        return FreeformDataset(
            name=str(data.get("name", Path(label).stem)),
            items=tuple(items),
            positive_targets=tuple(data["positive_targets"]),
            negative_targets=tuple(data["negative_targets"]),
            description=str(data.get("description", "")),
        )
    except (ValueError, TypeError) as err:
        raise ValueError(f"{label}: {err}") from err


def load_dataset(
    source: str | os.PathLike[str], *, max_items: int | None = None
) -> list[ABItem] | FreeformDataset:
    """Load a contrast dataset of either format: A/B items or a free-form set.

    ``source`` is ``"builtin:NAME"`` or a bundled ``NAME`` (``BUNDLED_AB + BUNDLED_FREEFORM``), a JSON
    file path or an http(s) URL. A JSON list is read as CAA A/B items (returned as a ``list[ABItem]``),
    a JSON object as a ``FreeformDataset``. ``max_items`` keeps the first items only. Raises
    ``ValueError`` naming the file and item for malformed data, ``FileNotFoundError`` for a missing path.
    """
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be >= 1 or None, got {max_items}")
    text_source = os.fspath(source)
    if text_source.startswith("builtin:"):
        text_source = text_source.removeprefix("builtin:")
        bundled = BUNDLED_AB + BUNDLED_FREEFORM
        if text_source not in bundled:
            raise ValueError(f"source: no bundled set {text_source!r} (bundled: {', '.join(bundled)})")
    data, label = _read_json(text_source)
    if isinstance(data, dict):
        dataset = _freeform(data, label)
        return dataset if max_items is None else replace(dataset, items=dataset.items[:max_items])
    if isinstance(data, list):
        return _ab_items(data, label)[:max_items]
    raise ValueError(f"{label}: expected a JSON list of A/B items or an object of a free-form set")


def swap_choices(item: ABItem) -> ABItem:
    """The same item with the texts of choices (A) and (B) exchanged and the matching letter flipped.

    Raises ``ValueError`` when the question does not hold exactly one ``(A)`` and one ``(B)`` line.
    """
    found = _CHOICE.findall(item.question)
    letters = sorted(letter for _, letter, _ in found)
    if letters != ["A", "B"]:
        raise ValueError(
            "item.question must hold one '(A) ...' and one '(B) ...' line to swap choices, "
            f"found {letters or 'none'} in {item.question[:80]!r}"
        )
    question = _CHOICE.sub(
        lambda m: f"{m.group(1)}({'B' if m.group(2) == 'A' else 'A'}){m.group(3)}", item.question
    )
    lines = question.split("\n")
    # the relabelled lines now read (B)... then (A)...; reorder them so (A) comes first again
    idx = [i for i, line in enumerate(lines) if _CHOICE.match(line)]
    lines[idx[0]], lines[idx[1]] = lines[idx[1]], lines[idx[0]]
    return replace(item, question="\n".join(lines), matching=item.non_matching)


def split_items(items: Sequence[T], test_fraction: float = 0.25, *, seed: int = 0) -> tuple[list[T], list[T]]:
    """Shuffle ``items`` with ``seed`` and split them into ``(train, test)`` lists."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(items) < 2:
        raise ValueError(f"items must hold at least 2 entries to split, got {len(items)}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_test = min(len(items) - 1, max(1, round(len(items) * test_fraction)))
    test = [items[i] for i in order[:n_test]]
    train = [items[i] for i in order[n_test:]]
    return train, test


@overload
def split_dataset(
    data: FreeformDataset, heldout_fraction: float = ..., *, seed: int = ...
) -> tuple[FreeformDataset, FreeformDataset]: ...
@overload
def split_dataset(
    data: Sequence[T], heldout_fraction: float = ..., *, seed: int = ...
) -> tuple[list[T], list[T]]: ...
def split_dataset(
    data: FreeformDataset | Sequence[T], heldout_fraction: float = HELDOUT_FRACTION, *, seed: int = 0
) -> tuple[FreeformDataset, FreeformDataset] | tuple[list[T], list[T]]:
    """Split a dataset into ``(extraction data, held-out scoring data)``, shuffled by ``seed``.

    A/B items (any sequence) give two lists, a ``FreeformDataset`` two ``FreeformDataset`` objects with
    the same targets; ``heldout_fraction`` of the items (at least one, at most all but one) are held
    out, as :func:`split_items` draws them. Behaviour is scored on items the vector was not read from.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
    if isinstance(data, FreeformDataset):
        train, held_out = split_items(list(data.items), heldout_fraction, seed=seed)
        return replace(data, items=tuple(train)), replace(data, items=tuple(held_out))
    return split_items(list(data), heldout_fraction, seed=seed)


@overload
def sample_dataset(data: FreeformDataset, n: int | None, *, seed: int = ...) -> FreeformDataset: ...
@overload
def sample_dataset(data: Sequence[T], n: int | None, *, seed: int = ...) -> list[T]: ...
def sample_dataset(
    data: FreeformDataset | Sequence[T], n: int | None, *, seed: int = 0
) -> FreeformDataset | list[T]:
    """At most ``n`` items of ``data``, drawn without replacement by ``seed`` and kept in their order.

    ``n=None`` or ``n >= len`` keeps every item. A/B items (any sequence) give a list, a
    ``FreeformDataset`` a ``FreeformDataset`` with the same targets.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be None or an integer >= 1, got {n!r}")

    def draw(items: list[Any]) -> list[Any]:
        if n is None or n >= len(items):
            return items
        return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), n))]

    if isinstance(data, FreeformDataset):
        return replace(data, items=tuple(draw(list(data.items))))
    return draw(list(data))
