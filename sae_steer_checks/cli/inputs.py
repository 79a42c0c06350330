"""Assembling a full check's inputs: from a model and a dataset, or from the planted world.

The work is the library's (``data.load_dataset`` and ``split_dataset``, ``lm.text_activations``,
``steering.extract_caa`` and ``behaviour_task``); this module turns what a user can get wrong (a
missing file, a dataset not in the A/B format, a layer out of range, a model path that does not exist)
into :class:`~sae_steer_checks._validate.InputError` with a one-line message naming the command-line
input (``--dataset``, ``--model``, ``--layer``, ``--text``), the library's error kept as its cause.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae_steer_checks._provenance import file_sha256, versions
from sae_steer_checks._validate import InputError, one_line
from sae_steer_checks.data.prompts import PromptFormat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from sae_steer_checks.data.schema import ABItem, FreeformDataset
    from sae_steer_checks.lm.activations import TextActivations
    from sae_steer_checks.lm.models import LoadedModel
    from sae_steer_checks.sae.protocol import SAELike
    from sae_steer_checks.steering.caa import CAAResult
    from sae_steer_checks.steering.learned import LearnedVector
    from sae_steer_checks.steering.scoring import SteerPositions

__all__ = [
    "CheckInputs",
    "DatasetSpec",
    "extract_vector",
    "learn_vector",
    "load_checked_model",
    "load_dataset",
    "planted_inputs",
    "read_text_activations",
    "resolved_prompt_format",
    "score_function",
    "unit_description",
    "versions",
]


@dataclass(frozen=True)
class CheckInputs:
    """Everything one full check needs, whichever source it came from."""

    sae: SAELike
    """The SAE (a ``sae_lens.SAE`` or any ``SAELike``)."""
    vector: Tensor
    """Steering vector ``[d_in]``."""
    pos: Tensor
    """Positive activations at the read token ``[n_pairs, d_in]``."""
    neg: Tensor
    """Negative activations, paired row by row with ``pos`` ``[n_pairs, d_in]``."""
    activations: Tensor | None = None
    """Ordinary activations ``[n, d_in]`` for the norm check (None: ``pos`` and ``neg`` stand in)."""
    score_fn: Callable[[Tensor], Any] | None = None
    """Behaviour score of an added vector (one score per held-out item), enabling the retention check."""
    multipliers: Sequence[float] | None = None
    """Multipliers of the retention sweep (None: the library default)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """Where the inputs came from (model, SAE, layer, dataset and its hash, device, dtype, seed)."""
    item_ids: Tensor | None = None
    """Item of each pair ``[n_pairs]``; an A/B item and its choice-swapped copy share one (None: own)."""
    learned: LearnedVector | None = None
    """A steering vector learned in the SAE basis on the training items (``run --learn-steps``), or None."""


@dataclass(frozen=True)
class DatasetSpec:
    """A loaded contrastive dataset: CAA A/B items or a free-form set."""

    spec: str
    """As given on the command line (a path or ``builtin:NAME``)."""
    path: Path
    """The JSON file read."""
    ab_items: tuple[ABItem, ...] = ()
    """A/B items (``data.ABItem``), empty for a free-form set."""
    freeform: FreeformDataset | None = None
    """The ``data.FreeformDataset``, or None for an A/B set."""

    def provenance(self) -> dict[str, Any]:
        """Name, path, SHA-256 and size of the dataset, JSON-ready."""
        n = len(self.ab_items) if self.freeform is None else len(self.freeform.items)
        return {
            "dataset": self.spec,
            "dataset_path": str(self.path),
            "dataset_sha256": file_sha256(self.path),
            "dataset_kind": "ab" if self.freeform is None else "freeform",
            "n_items": n,
        }

    def all_data(self) -> list[ABItem] | FreeformDataset:
        """Every item, in the form ``caa.extract_caa`` takes."""
        return list(self.ab_items) if self.freeform is None else self.freeform

    def split(self, seed: int) -> tuple[list[ABItem], list[ABItem]] | tuple[FreeformDataset, FreeformDataset]:
        """``(extraction data, held-out scoring data)``: ``data.split_dataset``, a quarter held out."""
        from sae_steer_checks.data.schema import split_dataset

        if self.freeform is None:
            return split_dataset(list(self.ab_items), seed=seed)
        return split_dataset(self.freeform, seed=seed)


def load_dataset(spec: str, max_pairs: int | None = None) -> DatasetSpec:
    """Load ``spec`` (a JSON path or ``builtin:NAME``), keeping at most the first ``max_pairs`` items.

    A JSON list is read as CAA A/B items, a JSON object as a free-form set (``data.load_dataset``).
    """
    from sae_steer_checks.data.schema import (
        BUNDLED_AB,
        BUNDLED_FREEFORM,
        FreeformDataset,
        bundled_path,
    )
    from sae_steer_checks.data.schema import load_dataset as load_contrasts

    where = f"--dataset {spec}"
    if max_pairs is not None and max_pairs < 2:
        raise InputError(f"--max-pairs {max_pairs}: must be at least 2")
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        bundled = BUNDLED_AB + BUNDLED_FREEFORM
        if name not in bundled:
            raise InputError(f"{where}: no bundled set '{name}' (bundled: {', '.join(bundled)})")
        path = bundled_path(name)
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"{where}: file not found")
    try:
        data = load_contrasts(path, max_items=max_pairs)
    except UnicodeDecodeError as error:
        raise InputError(f"{where}: cannot read as UTF-8 text ({one_line(error)})") from error
    except (ValueError, OSError) as error:
        raise InputError(f"{where}: {one_line(error)}") from error
    if isinstance(data, FreeformDataset):
        return DatasetSpec(spec, path, freeform=data)
    return DatasetSpec(spec, path, ab_items=tuple(data))


def load_checked_model(
    name: str,
    layer: int,
    *,
    gguf_file: str | None,
    device: str | torch.device,
    dtype: torch.dtype,
    device_map: str | None = None,
) -> LoadedModel:
    """``models.load_model`` with a tokenizer required and ``layer`` checked; a ``LoadedModel``."""
    from sae_steer_checks.lm.models import load_model, validate_layer

    try:
        loaded = load_model(name, gguf_file=gguf_file, device=device, dtype=dtype, device_map=device_map)
    except (OSError, ValueError, TypeError, ImportError) as error:
        raise InputError(f"--model {name}: {one_line(error)}") from error
    if loaded.tokenizer is None:
        raise InputError(f"--model {name}: no tokenizer found beside the weights")
    try:
        validate_layer(loaded.model, layer)
    except (ValueError, TypeError) as error:
        raise InputError(f"--layer {layer}: {one_line(error)}") from error
    return loaded


def _tokenizer(loaded: LoadedModel) -> PreTrainedTokenizerBase:
    if loaded.tokenizer is None:  # load_checked_model refuses such a model
        raise InputError(f"--model {loaded.name}: no tokenizer found beside the weights")
    return loaded.tokenizer


def extract_vector(
    loaded: LoadedModel,
    data: Sequence[ABItem] | FreeformDataset,
    layer: int,
    *,
    spec: str,
    progress: bool,
    prompt_format: PromptFormat = "auto",
) -> CAAResult:
    """CAA extraction (``caa.extract_caa``, balanced by default); a ``CAAResult``."""
    from sae_steer_checks.steering.caa import extract_caa

    try:
        return extract_caa(
            loaded.model, _tokenizer(loaded), data, layer, progress=progress, prompt_format=prompt_format
        )
    except ValueError as error:  # e.g. a question without exactly one (A) and one (B) line
        raise InputError(f"--dataset {spec}: {one_line(error)}") from error


def score_function(
    loaded: LoadedModel,
    held_out: Sequence[ABItem] | FreeformDataset,
    layer: int,
    *,
    spec: str,
    prompt_format: PromptFormat = "auto",
    positions: SteerPositions = "answer",
    progress: bool = False,
) -> tuple[Callable[[Tensor], Any], dict[str, Any]]:
    """The behaviour score on held-out data (A/B logit difference or free-form log-odds).

    ``positions`` are the steered positions (``steering.scoring.score_grid``). Returns
    ``(score_fn, info)`` where ``info`` describes the score for the provenance.
    """
    from sae_steer_checks.steering.scoring import STEER_POSITIONS_RULES, make_score_fn
    from sae_steer_checks.steering.tasks import behaviour_task

    try:
        task = behaviour_task(_tokenizer(loaded), held_out, prompt_format=prompt_format)
    except ValueError as error:
        raise InputError(f"--dataset {spec}: {one_line(error)}") from error
    score = "logit difference" if task.kind == "ab" else "log-odds of positive over negative"
    info = {
        "kind": task.kind,
        "n_scored": len(task),
        "n_items": task.n_items,
        "score": score,
        "steer_positions": positions,
        "steer_positions_rule": STEER_POSITIONS_RULES[positions],
    }
    return make_score_fn(loaded.model, task, layer, positions=positions, progress=progress), info


def learn_vector(
    loaded: LoadedModel,
    train: Sequence[ABItem] | FreeformDataset,
    layer: int,
    sae: SAELike,
    *,
    norm: float,
    activations: Tensor,
    multipliers: Sequence[float],
    steps: int,
    spec: str,
    max_items: int | None = None,
    prompt_format: PromptFormat = "auto",
    positions: SteerPositions = "answer",
    seed: int = 0,
    progress: bool = False,
) -> LearnedVector:
    """``steering.learn_in_sae_basis`` on the training items (``steering.training_task``), at ``norm``.

    The objective reads at most ``max_items`` of the training items (``data.sample_dataset`` from
    the ``learned.items`` stream of ``seed``, apart from the draw that split the items; None: all)
    and is the slope between the sweep's two extreme ``multipliers``: the sweep's least-squares slope
    weighs them most, and each step runs the blocks after the layer once per multiplier. The held-out
    items are never read: they judge the vector in the retention sweep.
    """
    from sae_steer_checks.data.schema import sample_dataset
    from sae_steer_checks.stats.draws import stream_seed
    from sae_steer_checks.steering.learned import learn_in_sae_basis
    from sae_steer_checks.steering.tasks import training_task

    try:
        task = training_task(
            _tokenizer(loaded),
            sample_dataset(train, max_items, seed=stream_seed(seed, "learned.items")),
            prompt_format=prompt_format,
        )
    except ValueError as error:
        raise InputError(f"--dataset {spec}: {one_line(error)}") from error
    extremes = (min(multipliers), max(multipliers))
    try:
        return learn_in_sae_basis(
            loaded.model, task, layer, sae, norm=norm, activations=activations, multipliers=extremes,
            positions=positions, steps=steps, seed=seed, progress=progress,
        )  # fmt: skip
    except ValueError as error:  # e.g. an objective with no gradient along any decoder row
        raise InputError(f"--learn-steps {steps}: {one_line(error)}") from error


def read_text_activations(
    loaded: LoadedModel,
    layer: int,
    texts: Sequence[str] | None,
    *,
    n_windows: int = 32,
    seed: int = 0,
    progress: bool = False,
) -> TextActivations:
    """``lm.text_activations`` for the norm check, from ``--text`` (None: held-out bundled offline text).

    The user's own text is all read; of the bundled corpora only the documents held out from SAE
    training. Returns a ``TextActivations`` (``.activations``, ``.describe()``).
    """
    from sae_steer_checks.lm.activations import DEFAULT_CORPORA, text_activations

    corpora = tuple(texts) if texts else DEFAULT_CORPORA
    try:
        return text_activations(
            loaded.model,
            _tokenizer(loaded),
            layer,
            corpora,
            heldout_only=not texts,
            n_windows=n_windows,
            seed=seed,
            progress=progress,
        )
    except ImportError as error:  # gensim (the lee corpus) is in the corpus extra
        raise InputError(f"--text: {one_line(error)}; or pass --text with your own text") from error
    except (ValueError, OSError) as error:
        raise InputError(f"--text {' '.join(corpora)}: {one_line(error)}") from error


def planted_inputs(
    *, seed: int = 0, n_pairs: int = 256, n_activations: int = 2048, device: str | torch.device = "cpu"
) -> CheckInputs:
    """The planted-feature world: a sae-lens JumpReLU SAE and activations with known answers.

    The vector is the CAA mean difference of ``n_pairs`` planted contrastive pairs; the behaviour
    score is the world's exact linear readout.
    """
    from sae_steer_checks.synthetic import WorldConfig, build_world

    world = build_world(WorldConfig(seed=seed), device=device)
    gen = torch.Generator().manual_seed(seed)
    pos, neg = world.sample_contrastive(n_pairs, gen)
    acts = world.sample_activations(n_activations, gen)
    provenance = {
        "model": "planted-feature world (sae_steer_checks.synthetic)",
        "world_config": dataclasses.asdict(world.config),
        "sae_source": {"source": "planted", "architecture": world.config.architecture},
        "dataset": f"planted: {n_pairs} contrastive pairs, {n_activations} activations",
        "layer": None,
        "device": str(device),
        "dtype": "float32",
        "seed": seed,
    }
    return CheckInputs(
        sae=world.sae,
        vector=(pos - neg).mean(dim=0),
        pos=pos,
        neg=neg,
        activations=acts,
        score_fn=world.item_scores,
        multipliers=(-2.0, -1.0, 0.0, 1.0, 2.0),
        provenance=provenance,
    )


def resolved_prompt_format(
    loaded: LoadedModel, prompt_format: PromptFormat, dataset: DatasetSpec
) -> str | None:
    """The concrete prompt format (``plain``/``chat``) A/B prompts used; None for free-form data."""
    from sae_steer_checks.data.prompts import resolve_prompt_format

    if dataset.freeform is not None:
        return None
    try:
        return resolve_prompt_format(_tokenizer(loaded), prompt_format)
    except ValueError as error:  # chat asked of a tokenizer without a chat template
        raise InputError(f"--prompt-format {prompt_format}: {one_line(error)}") from error


def unit_description(caa: CAAResult) -> str:
    """What one unit of the tests and intervals is for a ``CAAResult``, in words for the provenance."""
    if caa.n_items < int(caa.positive.shape[0]):
        return "A/B item (an item and its choice-swapped copy share an id)"
    return "each pair is an item"
