"""Residual activations of ordinary text: the distribution a steering vector is compared against.

The norm check asks whether a steering vector is short next to the activations an SAE was trained
on, and telling live from dead features needs the same activations. They are read here from
windows of text (the offline corpora of :mod:`sae_steer_checks.data.corpus`, or a user's own files),
with BOS positions left out, since their norm is ~10x that of text tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sae_steer_checks.data.corpus import corpus_windows, split_corpus
from sae_steer_checks.lm.hooks import capture_residual
from sae_steer_checks.lm.models import validate_layer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_CORPORA",
    "TextActivations",
    "collect_activations",
    "collect_activations_layers",
    "text_activations",
]

#: The offline corpora read when no text is given (see ``data.corpus.CORPORA``).
DEFAULT_CORPORA = ("lee", "pydoc")


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    windows: Tensor,
    layer: int,
    *,
    batch_size: int = 16,
    skip_first: bool = True,
    progress: bool = False,
) -> Tensor:
    """Residual stream after block ``layer`` on token ``windows`` ``[n, window]``, float32.

    Returns ``[n * (window - 1), d_model]`` (or ``n * window`` rows with ``skip_first=False``),
    windows in order. Forwards stop after block ``layer``; for speed pass the inner decoder in
    bfloat16 (``loaded.model.model``), the values are stored as float32 all the same.
    (:func:`collect_activations_layers` with one layer.)
    """
    layer = validate_layer(model, layer)
    return collect_activations_layers(
        model, windows, [layer], batch_size=batch_size, skip_first=skip_first, progress=progress
    )[layer]


@torch.no_grad()
def collect_activations_layers(
    model: nn.Module,
    windows: Tensor,
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    skip_first: bool = True,
    progress: bool = False,
    what: str = "text",
) -> dict[int, Tensor]:
    """:func:`collect_activations` at several blocks from one forward per batch: ``layer -> [rows, d_model]``.

    The forward stops after the last of ``layers``; the values stay on the model's device. ``what`` names
    the windows in the progress bar.
    """
    if windows.ndim != 2 or windows.dtype != torch.long:
        raise ValueError(f"windows must be a [n, window] long tensor, got {list(windows.shape)}")
    wanted = sorted({validate_layer(model, layer) for layer in layers})
    if not wanted:
        raise ValueError("layers must name at least one decoder block, got none")
    start = 1 if skip_first else 0
    device = next(model.parameters()).device
    chunks: dict[int, list[Tensor]] = {layer: [] for layer in wanted}
    desc = f"reading {what} at layer{'s' if len(wanted) > 1 else ''} {', '.join(map(str, wanted))}"
    for i in tqdm(range(0, windows.shape[0], batch_size), desc=desc, unit="batch", disable=not progress):
        with capture_residual(model, wanted, stop_after_last=True) as captured:
            model(input_ids=windows[i : i + batch_size].to(device), use_cache=False)
        for layer in wanted:
            acts = captured[layer][0].float()[:, start:]
            chunks[layer].append(acts.reshape(-1, acts.shape[-1]))
    return {layer: torch.cat(c) for layer, c in chunks.items()}


@dataclass(frozen=True)
class TextActivations:
    """Residual activations of ordinary text and where they came from."""

    activations: Tensor
    """Float32 ``[n_tokens, d_model]``, BOS positions left out."""
    corpora: tuple[str, ...]
    """The corpora or files read (names of ``data.corpus.CORPORA`` or paths)."""
    heldout_only: bool
    """Whether only held-out documents were read (those an SAE trained on the corpora never saw)."""
    n_windows: int
    """Windows of text read."""

    def describe(self) -> str:
        """One line for a report: how many tokens of which text."""
        kind = "held-out text tokens" if self.heldout_only else "text tokens"
        return f"{self.activations.shape[0]} {kind} ({', '.join(self.corpora)})"


def text_activations(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    layer: int,
    corpora: Sequence[str] = DEFAULT_CORPORA,
    *,
    heldout_only: bool = True,
    n_windows: int = 32,
    window: int = 128,
    heldout_fraction: float = 0.1,
    split_seed: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> TextActivations:
    """Residual activations after block ``layer`` on ``n_windows`` windows of ordinary text.

    ``corpora`` are names of the offline corpora (``"lee"``, ``"pydoc"``) or paths of the user's text
    files or folders (see ``data.corpus.load_documents``), cut into windows of ``window`` tokens. With
    ``heldout_only`` (default) only the held-out documents of ``data.corpus.split_corpus`` are read
    (``heldout_fraction``, ``split_seed``, default ``seed``), which is right for the corpora an SAE was
    trained on; ``heldout_only=False`` reads every document (a user's own text). Windows are drawn in
    an order shuffled by ``seed``. Returns a :class:`TextActivations` whose ``activations`` are
    ``[n_windows_read * (window - 1), d_model]`` float32.

    Raises ``ValueError`` or ``OSError`` for text that cannot be read or split, ``ModuleNotFoundError``
    when the ``lee`` corpus is asked for without gensim (``pip install 'sae-steer-checks[corpus]'``).
    """
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    corpora = tuple(corpora)
    if heldout_only:
        split = split_corpus(
            tokenizer,
            corpora,
            window=window,
            heldout_fraction=heldout_fraction,
            seed=seed if split_seed is None else split_seed,
        )
        pool = split.heldout
    else:
        pool = corpus_windows(tokenizer, corpora, window=window)
    if pool.shape[0] == 0:
        raise ValueError(f"corpora {', '.join(corpora)}: too little text for one window of {window} tokens")
    order = torch.randperm(pool.shape[0], generator=torch.Generator().manual_seed(seed))
    chosen = pool[order[:n_windows]]
    acts = collect_activations(model, chosen, layer, progress=progress)
    return TextActivations(
        activations=acts, corpora=corpora, heldout_only=heldout_only, n_windows=int(chosen.shape[0])
    )
