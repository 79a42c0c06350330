"""``sae-steer-checks survey``: every check over behaviours x layers x SAEs on one model.

The grid's cells are (behaviour, layer, SAE); each runs :func:`~sae_steer_checks.diagnostics.run_checks`
exactly as ``run`` does (the same score function, ordinary-text activations and multipliers) and writes
its full report to ``--out/cells/<cell>/``. Work is shared where it can be: the model loads once, each
behaviour's items are read once for every layer (one forward per batch, :func:`extract_caa_layers`), the
ordinary-text activations of a layer once for every behaviour, and the training activations of a layer
once for every architecture trained on it (``--out/saes/L<layer>-<arch>/``). A cell whose report is
already in ``--out`` is kept (``--force`` recomputes it), and so is a trained SAE; one made with other
options that change its numbers (``settings.json`` beside it) is refused rather than kept or overwritten. A
cell that fails becomes an ``error`` row with its one-line message and the others go on. ``--shard K/N``
runs every N-th cell, ``--merge`` joins shards.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from sae_steer_checks._validate import InputError, one_line

if TYPE_CHECKING:
    from sae_steer_checks.cli.inputs import DatasetSpec
    from sae_steer_checks.lm.models import LoadedModel
    from sae_steer_checks.sae.protocol import SAELike

__all__ = ["ARCHITECTURES", "Cell", "SaeSpec", "merge_surveys", "parse_shard", "plan_cells", "run_survey"]

ARCHITECTURES = ("jumprelu", "topk", "relu")
_KNOWN = {"cells", "saes", "survey.json", "survey.md", "survey.png"}
_ROW = "row.json"
_SETTINGS = "settings.json"
#: the options that change a cell's numbers (the model, the cell's behaviour, layer and SAE name it)
_CELL_OPTIONS = ("max_pairs", "prompt_format", "multipliers", "steer_positions", "learn_steps", "learn_items",
                 "text", "n_null", "n_boot", "seed", "dtype")  # fmt: skip
#: the options that change an SAE the survey trains
_TRAIN_OPTIONS = ("width", "k", "target_l0", "l1_coefficient", "train_epochs", "train_windows", "seed",
                  "dtype")  # fmt: skip


@dataclass(frozen=True)
class SaeSpec:
    """One SAE of the grid: a folder or release id given by the user, or an architecture to train."""

    id: str
    """The name in the table (the folder's name, the release id, or the architecture)."""
    source: str | None
    """The folder or ``release/id``; None for an SAE trained by the survey."""
    layer: int | None
    """The layer it reads (None: every layer of the grid)."""
    architecture: str | None = None
    """For a trained SAE: ``jumprelu``, ``topk`` or ``relu``."""


@dataclass(frozen=True)
class Cell:
    """One (behaviour, layer, SAE) of the grid."""

    id: str
    """Folder name under ``cells/`` and the row's key."""
    index: int
    """Position in the whole grid (shards and merges keep it)."""
    behaviour: str
    """The dataset as given (``builtin:NAME`` or a path)."""
    layer: int
    """The layer read and steered."""
    sae: SaeSpec
    """The SAE."""

    def describe(self, model: str) -> dict[str, Any]:
        """The row's identifying fields."""
        return {"cell": self.id, "index": self.index, "model": model, "behaviour": self.behaviour,
                "layer": self.layer, "sae": self.sae.id}  # fmt: skip


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "x"


def _dataset_slug(spec: str) -> str:
    return _slug(spec.removeprefix("builtin:") if spec.startswith("builtin:") else Path(spec).stem)


def parse_sae_specs(
    specs: Sequence[str], layers: Sequence[int], architectures: Sequence[str]
) -> list[SaeSpec]:
    """The grid's SAEs: ``--saes`` entries (``SPEC`` or ``L:SPEC``) then one per ``--architectures`` entry.

    A folder's layer is its ``cfg.json`` metadata's (``layer`` or a ``blocks.L`` hook), a release id's the
    ``layer_L`` in it; ``L:`` names it outright. Raises ``InputError`` when neither tells the layer.
    """
    out: list[SaeSpec] = []
    for spec in specs:
        layer: int | None = None
        source = spec
        match = re.fullmatch(r"(\d+):(.+)", spec)
        if match:
            layer, source = int(match.group(1)), match.group(2)
        else:
            layer = _sae_spec_layer(source)
            if layer is None:
                raise InputError(f"--saes {spec}: cannot tell which layer it reads; write it as L:{spec}")
        if layer not in layers:
            raise InputError(f"--saes {spec}: reads layer {layer}, which is not in --layers")
        name = Path(source).name if Path(source).expanduser().exists() else source
        out.append(SaeSpec(id=_slug(name), source=source, layer=layer))
    for arch in dict.fromkeys(architectures):
        out.append(SaeSpec(id=arch, source=None, layer=None, architecture=arch))
    ids = [s.id for s in out]
    return [
        SaeSpec(f"{s.id}-{i}", s.source, s.layer, s.architecture) if ids.count(s.id) > 1 else s
        for i, s in enumerate(out)
    ]


def _sae_spec_layer(spec: str) -> int | None:
    path = Path(spec).expanduser()
    if path.is_dir():
        try:
            meta = json.loads((path / "cfg.json").read_text()).get("metadata") or {}
        except (OSError, ValueError, AttributeError):
            return None
        if isinstance(meta.get("layer"), int):
            return int(meta["layer"])
        hook = re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", str(meta.get("hook_name", "")))
        return int(hook.group(1)) if hook else None
    match = re.search(r"layer_(\d+)", spec)
    return int(match.group(1)) if match else None


def plan_cells(datasets: Sequence[str], layers: Sequence[int], saes: Sequence[SaeSpec]) -> list[Cell]:
    """Every cell of the grid, behaviours outermost, then layers, then SAEs."""
    cells: list[Cell] = []
    for dataset in dict.fromkeys(datasets):
        for layer in dict.fromkeys(layers):
            for sae in saes:
                if sae.layer is None or sae.layer == layer:
                    cell_id = f"{_dataset_slug(dataset)}-L{layer}-{sae.id}"
                    cells.append(Cell(cell_id, len(cells), dataset, layer, sae))
    ids = [c.id for c in cells]
    return [Cell(f"{c.id}-{c.index}", c.index, c.behaviour, c.layer, c.sae) if ids.count(c.id) > 1 else c
            for c in cells]  # fmt: skip


def parse_shard(text: str | None) -> tuple[int, int]:
    """``K/N`` as ``(K, N)`` with ``1 <= K <= N`` (None: ``(1, 1)``)."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise InputError(f"--shard {text}: expected K/N with 1 <= K <= N, e.g. 1/4")
    return int(match.group(1)), int(match.group(2))


def _check_survey_out(out: Path, *, force: bool) -> None:
    """``out`` may be missing, empty, or a survey folder; anything else only with ``--force``."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    if not out.resolve().parent.is_dir():
        raise InputError(f"--out {out}: parent folder {out.resolve().parent} does not exist")
    if out.is_dir() and not force:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _KNOWN and not p.name.startswith("."))
        if foreign:
            raise InputError(
                f"--out {out}: folder holds files a survey did not write ({', '.join(foreign[:3])}); "
                "pass --force to write into it"
            )


def _settings(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The options ``names`` as given, JSON-ready (what a kept cell or SAE must have been made with)."""
    return {name: json.loads(json.dumps(getattr(args, name, None), default=str)) for name in names}


def _cell_settings(args: argparse.Namespace, cell: Cell) -> dict[str, Any]:
    trained = cell.sae.architecture is not None
    return _settings(args, _CELL_OPTIONS) | (_settings(args, _TRAIN_OPTIONS) if trained else {})


def _stale(folder: Path, wanted: dict[str, Any]) -> str | None:
    """How the settings recorded in ``folder`` differ from ``wanted`` (None: the same, or none recorded)."""
    try:
        had = json.loads((folder / _SETTINGS).read_text())
    except (OSError, ValueError):
        return None  # written before settings were recorded: kept as it is
    diff = [
        f"--{k.replace('_', '-')} {had.get(k)!r} there, {v!r} now"
        for k, v in wanted.items()
        if had.get(k) != v
    ]
    return "; ".join(diff) or None


def _refuse_stale(out: Path, stale: dict[str, str], what: str) -> None:
    if stale:
        first, why = next(iter(stale.items()))
        raise InputError(
            f"--out {out}: {len(stale)} {what} in it were made with other settings ({first}: {why}); give "
            "the same options, --force to recompute them, or another --out"
        )


# --- SAEs trained by the survey ------------------------------------------------------------------


def _train_saes(
    loaded: LoadedModel, wanted: dict[int, list[str]], args: argparse.Namespace, saes_dir: Path
) -> dict[tuple[int, str], str]:
    """Train the SAEs ``layer -> architectures`` that ``saes_dir`` lacks; ``(layer, arch) -> error``.

    The training windows of each layer are read once (all layers in one forward) and shared by the
    architectures. Each SAE is saved with ``train_sae``'s metadata (recipe, held-out quality).
    """
    from sae_steer_checks.cli.commands import _dtype, _say
    from sae_steer_checks.data.corpus import split_corpus
    from sae_steer_checks.lm.activations import collect_activations_layers
    from sae_steer_checks.report.files import atomic_output_dir, write_json
    from sae_steer_checks.train import TrainConfig, evaluate_sae, fit_sae, record_metadata

    settings = _settings(args, _TRAIN_OPTIONS)
    kept = {
        (layer, a): saes_dir / f"L{layer}-{a}"
        for layer, archs in wanted.items()
        for a in archs
        if not args.force and (saes_dir / f"L{layer}-{a}" / "cfg.json").is_file()
    }
    stale = {str(d): why for d in kept.values() if (why := _stale(d, settings))}
    _refuse_stale(saes_dir.parent, stale, "trained SAEs")
    todo = {layer: [a for a in archs if (layer, a) not in kept] for layer, archs in wanted.items()}
    todo = {layer: archs for layer, archs in todo.items() if archs}
    errors: dict[tuple[int, str], str] = {}
    if not todo:
        return errors
    if loaded.tokenizer is None:
        raise InputError(f"--model {loaded.name}: no tokenizer found beside the weights")
    recipe = TrainConfig()
    split = split_corpus(loaded.tokenizer, recipe.corpora, window=recipe.window, seed=args.seed)
    order = torch.randperm(split.train.shape[0], generator=torch.Generator().manual_seed(args.seed))
    windows = split.train[order[: args.train_windows]]
    heldout = split.heldout[: max(args.train_windows // 4, 4)]
    if windows.shape[0] < args.train_windows:
        _say(args, f"--train-windows {args.train_windows}: the corpus's training split holds "
                   f"{windows.shape[0]} windows; training on all of them")  # fmt: skip
    configs = {
        (layer, arch): TrainConfig(
            layer=layer, architecture=cast(Any, arch), width=args.width, k=args.k,
            target_l0=float(args.target_l0),
            l1_coefficient=args.l1_coefficient, epochs=args.train_epochs, seed=args.seed,
            batch_size=min(1024, int(windows.shape[0]) * 16),
            extra={"survey": f"trained on {windows.shape[0]} windows of the corpus"},
        )
        for layer, archs in todo.items() for arch in archs
    }  # fmt: skip
    _say(args, f"Reading {windows.shape[0]} training windows at layers {sorted(todo)} ...")
    saes_dir.mkdir(parents=True, exist_ok=True)
    inner = getattr(loaded.model, "base_model", loaded.model)
    read = {
        name: collect_activations_layers(inner, rows, sorted(todo), progress=not args.quiet, what=name)
        for name, rows in (("training windows", windows), ("held-out windows", heldout))
    }
    train_acts = {layer: acts.cpu() for layer, acts in read["training windows"].items()}
    heldout_acts = {layer: acts.cpu() for layer, acts in read["held-out windows"].items()}
    for (layer, arch), config in configs.items():
        tic = time.perf_counter()
        try:
            sae = fit_sae(train_acts[layer], config, device=_sae_device(args), progress=not args.quiet)
            quality = evaluate_sae(sae, heldout_acts[layer])
            train_quality = evaluate_sae(sae, train_acts[layer][:65_536])
        except (ValueError, RuntimeError) as error:
            errors[(layer, arch)] = f"training {arch} at layer {layer}: {one_line(error)}"
            continue
        record_metadata(sae, config, split, loaded.name, _dtype(args.dtype), quality, train_quality)
        sae.cfg.metadata.n_train_tokens = int(train_acts[layer].shape[0])
        sae.cfg.metadata.n_heldout_tokens = int(heldout_acts[layer].shape[0])
        with atomic_output_dir(saes_dir / f"L{layer}-{arch}", force=True) as tmp:
            sae.save_model(tmp)
            write_json(tmp / _SETTINGS, settings)
        figures = f"explained variance {quality.explained_variance:.3f}, L0 {quality.mean_l0:.1f}"
        _say(args, f"Trained {arch} at layer {layer} in {time.perf_counter() - tic:.0f}s: {figures}")
    return errors


def _sae_device(args: argparse.Namespace) -> torch.device:
    from sae_steer_checks.cli.commands import _device

    return _device(args.device)


# --- one cell ------------------------------------------------------------------------------------


@dataclass
class _LayerInputs:
    """What every SAE of one (behaviour, layer) shares."""

    caa: Any
    score_fn: Callable[[Tensor], Any]
    behaviour: dict[str, Any]
    text: Any
    multipliers: Sequence[float]


def _quality(sae: SAELike, text: Tensor) -> dict[str, Any]:
    """Width, architecture, L0 and explained variance: from the SAE's metadata, else measured on ``text``."""
    from sae_steer_checks.train import evaluate_sae

    cfg = getattr(sae, "cfg", None)
    arch = cfg.architecture() if cfg is not None and callable(getattr(cfg, "architecture", None)) else None
    meta = getattr(cfg, "metadata", None)
    ev, l0 = getattr(meta, "explained_variance", None), getattr(meta, "mean_l0", None)
    out: dict[str, Any] = {"architecture": arch, "width": int(sae.W_dec.shape[0])}
    if isinstance(ev, float) and isinstance(l0, float | int):
        out |= {"explained_variance": ev, "l0": float(l0), "quality_source": "the SAE's training metadata"}
    else:
        q = evaluate_sae(sae, text)
        out |= {"explained_variance": q.explained_variance, "l0": q.mean_l0,
                "quality_source": f"measured on {q.n_tokens} held-out text tokens"}  # fmt: skip
    return out


def _run_cell(
    cell: Cell,
    shared: _LayerInputs,
    loaded: LoadedModel,
    dataset: DatasetSpec,
    train_data: Any,
    args: argparse.Namespace,
    saes_dir: Path,
    cell_dir: Path,
) -> dict[str, Any]:
    """Run every check of one cell and write its report into ``cell_dir``; the row."""
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.cli.commands import _check_and_report, _dtype
    from sae_steer_checks.report.files import atomic_output_dir, write_json
    from sae_steer_checks.report.survey import survey_row
    from sae_steer_checks.sae.loading import load_sae, load_sae_metadata

    device, dtype = _sae_device(args), _dtype(args.dtype)
    source = (
        cell.sae.source if cell.sae.source is not None else str(saes_dir / f"L{cell.layer}-{cell.sae.id}")
    )
    sae = load_sae(source, device=device, dtype=dtype, name="--saes")
    sae_prov = load_sae_metadata(source, name="--saes")
    if int(sae.W_dec.shape[1]) != loaded.d_model:
        raise InputError(
            f"--saes {source}: SAE input width d_in={int(sae.W_dec.shape[1])} does not match the residual "
            f"width {loaded.d_model} of --model {args.model}"
        )
    caa, fmt = shared.caa, args.prompt_format
    learned = None
    if args.learn_steps > 0:
        learned = inputs.learn_vector(
            loaded, train_data, cell.layer, sae, norm=caa.norm, activations=shared.text.activations,
            multipliers=shared.multipliers, steps=args.learn_steps, spec=cell.behaviour,
            max_items=args.learn_items, prompt_format=fmt, positions=args.steer_positions, seed=args.seed,
            progress=not args.quiet,
        )  # fmt: skip
    prov = {
        "command": "survey",
        "model": loaded.name,
        "gguf_file": None,
        "layer": cell.layer,
        "sae_source": sae_prov,
        **dataset.provenance(),
        "extraction": caa.to_dict(),
        "behaviour": shared.behaviour,
        "prompt_format": inputs.resolved_prompt_format(loaded, fmt, dataset),
        "unit": inputs.unit_description(caa),
        "activation_source": shared.text.describe(),
        "device": str(device),
        "dtype": args.dtype,
        "seed": args.seed,
        "learning": {"steps": args.learn_steps, "max_items": args.learn_items},
        "survey_cell": cell.id,
    }
    checked = inputs.CheckInputs(
        sae, caa.vector, caa.positive, caa.negative, shared.text.activations, score_fn=shared.score_fn,
        multipliers=shared.multipliers, provenance=prov, item_ids=caa.item_tensor(), learned=learned,
    )  # fmt: skip
    described = cell.describe(loaded.name) | _quality(sae, shared.text.activations)
    cell_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output_dir(cell_dir, force=True) as tmp:
        report = _check_and_report(checked, args, out=tmp, force=True, verdicts=False)
        row = survey_row(described, report)
        write_json(tmp / _ROW, row)
        write_json(tmp / _SETTINGS, _cell_settings(args, cell))
    return row


# --- the survey ----------------------------------------------------------------------------------


def run_survey(args: argparse.Namespace) -> int:
    """The ``survey`` command (without ``--merge``): run the shard's cells, write the table; exit code."""
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.cli.commands import _config, _dtype, _model, _say
    from sae_steer_checks.lm.models import validate_layer
    from sae_steer_checks.report.survey import error_row, write_survey
    from sae_steer_checks.steering.caa import extract_caa_layers
    from sae_steer_checks.steering.multipliers import default_multipliers

    missing = [o for o in ("model", "datasets", "layers") if not getattr(args, o)]
    if missing:
        raise InputError(f"--{missing[0]}: required (unless --merge)")
    if not args.saes and not args.architectures:
        raise InputError("--saes: give SAEs (--saes) or architectures to train (--architectures)")
    out = Path(args.out).expanduser()
    _check_survey_out(out, force=args.force)
    k, n = parse_shard(args.shard)
    _config(args.multipliers, args.seed, n_null=args.n_null, n_boot=args.n_boot)  # bad draws fail first
    datasets = {spec: inputs.load_dataset(spec, args.max_pairs) for spec in dict.fromkeys(args.datasets)}
    layers = list(dict.fromkeys(args.layers))
    saes = parse_sae_specs(args.saes or [], layers, args.architectures or [])
    cells = plan_cells(list(datasets), layers, saes)
    mine = [c for c in cells if c.index % n == k - 1]
    rows: dict[str, dict[str, Any]] = {}
    pending: list[Cell] = []
    stale: dict[str, str] = {}
    for cell in mine:
        row_file = out / "cells" / cell.id / _ROW
        if row_file.is_file() and not args.force:
            rows[cell.id] = _kept_row(row_file)
            if why := _stale(row_file.parent, _cell_settings(args, cell)):
                stale[cell.id] = why
        else:
            pending.append(cell)
    _refuse_stale(out, stale, "cells")
    if not pending:  # every cell is kept: the model is not even loaded
        model = str(rows[mine[0].id]["model"]) if mine else str(args.model)
        kept = _survey_dict(model, cells, [rows[c.id] for c in mine], args.shard)
        names = write_survey(kept, out)
        _say(args, f"All {len(mine)} cells were already in {out}; wrote {', '.join(names)}.")
        return 0
    device, dtype = _sae_device(args), _dtype(args.dtype)
    model_args = argparse.Namespace(**vars(args), layer=max(layers), gguf_file=None, device_map=None)
    loaded = _model(model_args, device, dtype)  # checks the deepest layer, and --quiet quiets the load
    for layer in layers:
        try:
            validate_layer(loaded.model, layer)
        except (ValueError, TypeError) as error:
            raise InputError(f"--layers {layer}: {one_line(error)}") from None
    for dataset in datasets.values():
        inputs.resolved_prompt_format(loaded, args.prompt_format, dataset)  # checked before any work
    out.mkdir(exist_ok=True)
    _say(args, f"{len(mine)} cells in this shard: {len(mine) - len(pending)} kept, {len(pending)} to run.")
    trained: dict[int, list[str]] = {}
    for cell in pending:
        if cell.sae.architecture is not None:
            trained.setdefault(cell.layer, []).append(cell.sae.architecture)
    train_errors = _train_saes(loaded, trained, args, out / "saes") if trained else {}
    text_cache: dict[int, Any] = {}
    for spec, dataset in datasets.items():
        todo = [c for c in pending if c.behaviour == spec]
        if not todo:
            continue
        train_data, held_out = dataset.split(args.seed)
        todo_layers = sorted({c.layer for c in todo})
        _say(args, f"== {spec}: extracting at layers {todo_layers} ==")
        try:
            caas = extract_caa_layers(
                loaded.model, loaded.tokenizer, train_data, todo_layers,  # type: ignore[arg-type]
                prompt_format=args.prompt_format, progress=not args.quiet,
            )  # fmt: skip
        except (ValueError, RuntimeError) as error:
            for cell in todo:
                rows[cell.id] = error_row(cell.describe(loaded.name), f"--datasets {spec}: {one_line(error)}")
            continue
        for layer in todo_layers:
            try:
                if layer not in text_cache:
                    text_cache[layer] = inputs.read_text_activations(
                        loaded, layer, args.text, seed=args.seed, progress=not args.quiet
                    )
                text = text_cache[layer]
                score_fn, behaviour = inputs.score_function(
                    loaded, held_out, layer, spec=spec, prompt_format=args.prompt_format,
                    positions=args.steer_positions, progress=not args.quiet,
                )  # fmt: skip
                multipliers = args.multipliers or default_multipliers(caas[layer].vector, text.activations)
                shared = _LayerInputs(caas[layer], score_fn, behaviour, text, multipliers)
            except (InputError, ValueError, RuntimeError) as error:
                for cell in (c for c in todo if c.layer == layer):
                    rows[cell.id] = error_row(cell.describe(loaded.name), one_line(error))
                continue
            for cell in (c for c in todo if c.layer == layer):
                tic = time.perf_counter()
                _say(args, f"-- cell {cell.id} --")
                key = (cell.layer, cell.sae.architecture or "")
                if key in train_errors:
                    rows[cell.id] = error_row(cell.describe(loaded.name), train_errors[key])
                    continue
                try:
                    rows[cell.id] = _run_cell(
                        cell, shared, loaded, dataset, train_data, args, out / "saes", out / "cells" / cell.id
                    )
                except Exception as error:  # one failing cell must not stop the others
                    rows[cell.id] = error_row(cell.describe(loaded.name), one_line(error))
                message = rows[cell.id]["error"]
                _say(
                    args,
                    f"   {rows[cell.id]['status']} in {time.perf_counter() - tic:.0f}s"
                    + (f": {message}" if message else ""),
                )
    survey = _survey_dict(loaded.name, cells, [rows[c.id] for c in mine], args.shard)
    names = write_survey(survey, out)
    failed = sum(r["status"] != "ok" for r in survey["rows"])
    _say(args, f"Wrote {', '.join(names)} and cells/ to {out} ({len(mine)} cells, {failed} failed).")
    return 0


def _kept_row(row_file: Path) -> dict[str, Any]:
    """A finished cell's row, rebuilt from its ``report.json`` (so a newer survey reads older cells alike)."""
    from sae_steer_checks.report.survey import CELL_KEYS, survey_row

    row: dict[str, Any] = json.loads(row_file.read_text())
    report_file = row_file.with_name("report.json")
    if row.get("status") == "ok" and report_file.is_file():
        row = survey_row({k: row[k] for k in CELL_KEYS if k in row}, json.loads(report_file.read_text()))
    return row


def _survey_dict(
    model: str, cells: Sequence[Cell], rows: list[dict[str, Any]], shard: str | None
) -> dict[str, Any]:
    return {
        "model": model,
        "behaviours": list(dict.fromkeys(c.behaviour for c in cells)),
        "layers": list(dict.fromkeys(c.layer for c in cells)),
        "saes": list(dict.fromkeys(c.sae.id for c in cells)),
        "grid": [c.id for c in cells],
        "shard": shard,
        "rows": sorted(rows, key=lambda r: int(r["index"])),
    }


def merge_surveys(dirs: Sequence[str], out_dir: str, *, force: bool) -> dict[str, Any]:
    """Join the ``survey.json`` of shards ``dirs`` (and copy their cells) into ``out_dir``; the survey."""
    from sae_steer_checks.report.survey import error_row, write_survey

    surveys = []
    for name in dirs:
        path = Path(name).expanduser() / "survey.json"
        try:
            surveys.append((path.parent, json.loads(path.read_text())))
        except (OSError, ValueError) as error:
            raise InputError(f"--merge {name}: cannot read survey.json ({one_line(error)})") from None
    first = surveys[0][1]
    for folder, other in surveys[1:]:
        if other.get("grid") != first.get("grid") or other.get("model") != first.get("model"):
            raise InputError(f"--merge {folder}: its grid or model differs from that of {dirs[0]}")
    out = Path(out_dir).expanduser()
    _check_survey_out(out, force=force)
    out.mkdir(exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    for folder, survey_in in surveys:
        for row in survey_in["rows"]:
            kept = rows.get(row["cell"])
            if kept is None or (kept["status"] != "ok" and row["status"] == "ok"):
                rows[row["cell"]] = row
                source, target = folder / "cells" / row["cell"], out / "cells" / row["cell"]
                if row["status"] == "ok" and source.is_dir() and source.resolve() != target.resolve():
                    shutil.rmtree(target, ignore_errors=True)
                    shutil.copytree(source, target)
    for index, cell_id in enumerate(first["grid"]):
        if cell_id not in rows:
            described = {"cell": cell_id, "index": index, "model": first["model"], "behaviour": None,
                         "layer": None, "sae": None}  # fmt: skip
            rows[cell_id] = error_row(described, "not run by any of the merged shards")
    survey = {key: first[key] for key in ("model", "behaviours", "layers", "saes", "grid")}
    survey["shard"] = None
    survey["rows"] = sorted(rows.values(), key=lambda r: int(r["index"]))
    write_survey(survey, out)
    return survey
