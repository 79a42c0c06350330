"""The ``sae-steer-checks`` command's handlers: run the checks and write the report a researcher reads.

Commands: ``run`` (model + dataset + SAE -> report), ``diagnose`` (saved tensors + SAE -> report),
``extract`` (model + dataset -> tensors ready for ``diagnose``), ``train-sae``, ``demo`` (the
embedded default) and ``render`` (report.json -> report.md and plots, drawn again). Exit code 0
on success, 2 on bad input with a one-line error naming the input. Heavy libraries are imported
inside the commands so that ``--help`` answers at once; the options live in
:mod:`sae_steer_checks.cli.parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sae_steer_checks._validate import InputError, one_line
from sae_steer_checks.cli.parser import PROG, TrainDefault, build_parser

if TYPE_CHECKING:
    import torch

    from sae_steer_checks.cli.inputs import CheckInputs
    from sae_steer_checks.diagnostics.run import CheckConfig
    from sae_steer_checks.lm.models import LoadedModel
    from sae_steer_checks.train import TrainConfig

__all__ = ["build_parser", "main", "train_config"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error already printed on one line (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    args.quiet = bool(getattr(args, "quiet", False))
    handler: Callable[[argparse.Namespace], int] = _HANDLERS[args.command]
    try:
        return handler(args)
    except InputError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted; no report was written", file=sys.stderr)
        return 130


# --- commands ---------------------------------------------------------------------------------


def _diagnose(args: argparse.Namespace) -> int:
    from sae_steer_checks._provenance import file_sha256
    from sae_steer_checks.cli.files import load_activations, load_item_ids, load_vector
    from sae_steer_checks.cli.inputs import CheckInputs
    from sae_steer_checks.sae.loading import load_sae, load_sae_metadata

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    sae = load_sae(args.sae, device=device, dtype=dtype, name="--sae")
    sae_prov = load_sae_metadata(args.sae, name="--sae")
    d_in = int(sae.W_dec.shape[1])
    vector = load_vector(args.vector, width=d_in)
    pos = load_activations(args.pos, name="--pos", width=d_in)
    neg = load_activations(args.neg, name="--neg", width=d_in)
    if pos.shape[0] != neg.shape[0]:
        raise InputError(
            f"--neg {args.neg}: has {neg.shape[0]} rows but --pos has {pos.shape[0]}; positive "
            "and negative activations must pair up row by row"
        )
    files = {"vector": args.vector, "pos": args.pos, "neg": args.neg}
    acts = None
    if args.activations is not None:
        acts = load_activations(args.activations, name="--activations", width=d_in)
        files["activations"] = args.activations
    item_ids = None
    unit = "each row is an item (no --item-ids)"
    if args.item_ids is not None:
        item_ids = load_item_ids(args.item_ids, rows=int(pos.shape[0]))
        files["item_ids"] = args.item_ids
        unit = f"item ids from {args.item_ids}"
    prov = {
        "command": "diagnose",
        "sae_source": sae_prov,
        "inputs": {k: {"path": str(p), "sha256": file_sha256(p)} for k, p in files.items()},
        "unit": unit,
        "device": str(device),
        "dtype": args.dtype,
        "seed": args.seed,
    }
    checked = CheckInputs(sae, vector, pos, neg, acts, provenance=prov, item_ids=item_ids)
    _check_and_report(checked, args)
    return 0


def _run(args: argparse.Namespace) -> int:
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.sae.loading import load_sae, load_sae_metadata
    from sae_steer_checks.steering.multipliers import default_multipliers

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    dataset = inputs.load_dataset(args.dataset, args.max_pairs)
    sae = load_sae(args.sae, device=device, dtype=dtype, name="--sae")
    sae_prov = load_sae_metadata(args.sae, name="--sae")
    loaded = _model(args, device, dtype)
    if int(sae.W_dec.shape[1]) != loaded.d_model:
        raise InputError(
            f"--sae {args.sae}: SAE input width d_in={int(sae.W_dec.shape[1])} does not match "
            f"the residual width {loaded.d_model} of --model {args.model}"
        )
    train, held_out = dataset.split(args.seed)
    fmt = args.prompt_format
    prompt_format = inputs.resolved_prompt_format(loaded, fmt, dataset)  # checked before the extraction
    caa = inputs.extract_vector(
        loaded, train, args.layer, spec=args.dataset, progress=not args.quiet, prompt_format=fmt
    )
    score_fn, behaviour = inputs.score_function(
        loaded,
        held_out,
        args.layer,
        spec=args.dataset,
        prompt_format=fmt,
        positions=args.steer_positions,
        progress=not args.quiet,
    )
    _say(args, "Reading ordinary text activations for the norm check ...")
    text = inputs.read_text_activations(
        loaded, args.layer, args.text, seed=args.seed, progress=not args.quiet
    )
    activations = text.activations
    multipliers = args.multipliers or default_multipliers(caa.vector, activations)
    _config(multipliers, args.seed)  # bad --multipliers fail before any learning
    learned = None
    if args.learn_steps > 0:
        n_learn = min(caa.n_items, args.learn_items)
        _say(
            args,
            f"Learning a steering vector in the SAE basis on {n_learn} of {caa.n_items} training items ...",
        )
        learned = inputs.learn_vector(
            loaded, train, args.layer, sae, norm=caa.norm, activations=activations, multipliers=multipliers,
            steps=args.learn_steps, spec=args.dataset, max_items=args.learn_items, prompt_format=fmt,
            positions=args.steer_positions, seed=args.seed, progress=not args.quiet,
        )  # fmt: skip
    prov = {
        "command": "run",
        "model": loaded.name,
        "gguf_file": args.gguf_file,
        "layer": args.layer,
        "sae_source": sae_prov,
        **dataset.provenance(),
        "extraction": caa.to_dict(),
        "behaviour": behaviour,
        "prompt_format": prompt_format,
        "unit": inputs.unit_description(caa),
        "activation_source": text.describe(),
        "device": str(device),
        "dtype": args.dtype,
        "seed": args.seed,
        "learning": {"steps": args.learn_steps, "max_items": args.learn_items},
    }
    checked = inputs.CheckInputs(
        sae,
        caa.vector,
        caa.positive,
        caa.negative,
        activations,
        score_fn=score_fn,
        multipliers=multipliers,
        provenance=prov,
        item_ids=caa.item_tensor(),
        learned=learned,
    )
    _check_and_report(checked, args)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from sae_steer_checks._provenance import versions
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.cli.files import ITEM_IDS_KEY, save_tensors
    from sae_steer_checks.report.files import atomic_output_dir, write_json

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    dataset = inputs.load_dataset(args.dataset, args.max_pairs)
    loaded = _model(args, device, dtype)
    data = dataset.all_data() if args.split == "all" else dataset.split(args.seed)[0]
    fmt = args.prompt_format
    prompt_format = inputs.resolved_prompt_format(loaded, fmt, dataset)  # checked before the extraction
    caa = inputs.extract_vector(
        loaded, data, args.layer, spec=args.dataset, progress=not args.quiet, prompt_format=fmt
    )
    meta = {"model": loaded.name, "layer": str(args.layer), "dataset": args.dataset}
    record = {
        "model": loaded.name,
        "gguf_file": args.gguf_file,
        "layer": args.layer,
        **dataset.provenance(),
        "split": args.split,
        "extraction": caa.to_dict(),
        "prompt_format": prompt_format,
        "unit": inputs.unit_description(caa),
        "seed": args.seed,
        "device": str(device),
        "dtype": args.dtype,
        "versions": versions(),
    }
    with atomic_output_dir(args.out, force=args.force) as tmp:
        save_tensors(tmp / "vector.safetensors", {"vector": caa.vector}, meta)
        save_tensors(tmp / "pos.safetensors", {"activations": caa.positive}, meta)
        save_tensors(tmp / "neg.safetensors", {"activations": caa.negative}, meta)
        save_tensors(tmp / "item_ids.safetensors", {ITEM_IDS_KEY: caa.item_tensor()}, meta)
        write_json(tmp / "extract.json", record)
    files = "vector.safetensors, pos.safetensors, neg.safetensors, item_ids.safetensors and extract.json"
    _say(args, f"Wrote {files} to {args.out} (||v|| = {caa.norm:.4g} from {caa.positive.shape[0]} pairs).")
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` of parsed ``train-sae`` arguments; options not given keep the field's default."""
    from sae_steer_checks.train import TrainConfig

    given = {
        name: getattr(args, name)
        for name in ("width", "architecture", "k", "l0_coefficient", "epochs", "corpora")
        if not isinstance(getattr(args, name), TrainDefault)
    }
    if "corpora" in given or args.text:
        named = tuple(given.get("corpora", ())) if "corpora" in given or not args.text else ()
        given["corpora"] = named + tuple(str(Path(t).expanduser().resolve()) for t in args.text or ())
    try:
        return TrainConfig(layer=args.layer, seed=args.seed, **given)
    except ValueError as error:  # the message names the field, which is the option's name
        raise InputError(f"--{one_line(error).replace('_', '-')}") from None


def _train_sae(args: argparse.Namespace) -> int:
    from sae_steer_checks.report.files import atomic_output_dir
    from sae_steer_checks.train import train_sae

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    config = train_config(args)
    with atomic_output_dir(args.out, force=args.force) as tmp:
        try:
            result = train_sae(
                tmp, config, model=args.model, device=device, model_dtype=dtype, progress=not args.quiet
            )
        except (FileNotFoundError, ImportError, OSError) as error:
            raise InputError(f"--model {args.model}: {one_line(error)}") from None
        except ValueError as error:
            if "layer" not in str(error):
                raise
            raise InputError(f"--layer {args.layer}: {one_line(error)}") from None
    q = result.heldout
    quality = f"explained variance {q.explained_variance:.3f}, mean L0 {q.mean_l0:.1f}"
    _say(args, f"Wrote the SAE to {args.out}: held-out {quality}, dead {q.dead_fraction:.1%}.")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from sae_steer_checks.cli import inputs

    _check_out(args)
    if args.planted:
        _check_and_report(inputs.planted_inputs(seed=args.seed, device=_device(args.device)), args)
        return 0
    from sae_steer_checks.cli.demo import demo_inputs, write_summary
    from sae_steer_checks.report.files import atomic_output_dir

    try:
        checks = demo_inputs(
            seed=args.seed,
            device=_device(args.device),
            positions=args.steer_positions,
            progress=not args.quiet,
            say=lambda text: _say(args, text),
        )
    except (FileNotFoundError, ImportError) as error:
        raise InputError(f"demo: {one_line(error)}") from None
    reports = {}
    with atomic_output_dir(args.out, force=args.force) as tmp:
        for check in checks:
            _say(args, f"== {check.name} ==")
            reports[check.name] = _check_and_report(check.inputs, args, out=tmp / check.name, force=False)
        write_summary(reports, tmp)
    _say(args, f"Wrote {', '.join(sorted(reports))} and summary.md to {args.out}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from sae_steer_checks.report.render import render_report

    target = args.dir if args.out is None else args.out
    names = render_report(args.dir, args.out, force=args.force)
    _say(args, f"Wrote {', '.join(names)} to {target} from {Path(args.dir) / 'report.json'}")
    return 0


def _survey(args: argparse.Namespace) -> int:
    from sae_steer_checks.cli.survey import merge_surveys, run_survey

    if args.learn_steps < 0:
        raise InputError(f"--learn-steps {args.learn_steps}: must be >= 0")
    if args.merge:
        survey = merge_surveys(args.merge, args.out, force=args.force)
        _say(args, f"Merged {len(args.merge)} surveys into {args.out} ({len(survey['rows'])} cells).")
        return 0
    return run_survey(args)


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "diagnose": _diagnose,
    "extract": _extract,
    "train-sae": _train_sae,
    "demo": _demo,
    "render": _render,
    "survey": _survey,
}


# --- the shared path: check, plot, report --------------------------------------------------------


def _check_and_report(
    checked: CheckInputs,
    args: argparse.Namespace,
    *,
    out: Path | None = None,
    force: bool | None = None,
    verdicts: bool = True,
) -> dict[str, Any]:
    """Run every check on ``checked``, write the report into ``out`` (default ``--out``); the report dict.

    ``--n-null``, ``--n-boot`` and ``--no-plots`` apply where the command has them; ``verdicts`` prints
    each verdict's sentence (unless ``--quiet``).
    """
    import torch

    from sae_steer_checks.diagnostics.run import run_checks
    from sae_steer_checks.report.write import report_files, write_report

    n_null, n_boot = getattr(args, "n_null", None), getattr(args, "n_boot", None)
    config = _config(checked.multipliers, args.seed, n_null=n_null, n_boot=n_boot)
    torch.manual_seed(args.seed)
    result = run_checks(
        checked.sae,
        checked.vector,
        checked.pos,
        checked.neg,
        checked.activations,
        item_ids=checked.item_ids,
        score_fn=checked.score_fn,
        learned=checked.learned,
        config=config,
        progress=not args.quiet,
    )
    target = args.out if out is None else out
    force = args.force if force is None else force
    plots = not getattr(args, "no_plots", False)
    report = write_report(result, target, provenance=checked.provenance, plots=plots, force=force)
    if out is None:  # the demo's sub-reports are written into a temporary folder, named at the end
        _say(args, f"Wrote {', '.join(report_files(target))} to {target}")
    for v in report["verdicts"] if verdicts else ():
        _say(args, f"- {v['mechanism']}: {v['status']}. {v['sentence']}")
    return dict(report)


# --- helpers ------------------------------------------------------------------------------------


def _config(
    multipliers: Sequence[float] | None, seed: int, *, n_null: int | None = None, n_boot: int | None = None
) -> CheckConfig:
    """The run's ``CheckConfig``; bad ``--multipliers``, ``--n-null`` or ``--n-boot`` are an input error."""
    from sae_steer_checks.diagnostics.run import CheckConfig

    given: dict[str, Any] = {"n_null": n_null, "n_boot": n_boot}
    if multipliers is not None:
        given["multipliers"] = tuple(float(m) for m in multipliers)
    given = {name: value for name, value in given.items() if value is not None}
    try:
        return CheckConfig(seed=seed, **given)
    except ValueError as error:
        message = one_line(error)
        name = next((n for n in given if message.startswith(n)), "multipliers")
        raise InputError(f"--{name.replace('_', '-')}: {message}") from None


def _model(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> LoadedModel:
    from transformers.utils import logging as hf_logging

    from sae_steer_checks.cli.inputs import load_checked_model

    # transformers draws a "Loading weights" bar of its own; --quiet silences it for this load only
    silence = args.quiet and hf_logging.is_progress_bar_enabled()
    if silence:
        hf_logging.disable_progress_bar()
    try:
        return load_checked_model(
            args.model,
            args.layer,
            gguf_file=args.gguf_file,
            device=device,
            dtype=dtype,
            device_map=args.device_map,
        )
    finally:
        if silence:
            hf_logging.enable_progress_bar()


def _check_out(args: argparse.Namespace) -> None:
    from sae_steer_checks.report.files import validate_out_dir

    validate_out_dir(args.out, force=args.force)


def _device(name: str | None) -> torch.device:
    """The torch device named by ``--device``; not given, CUDA when it is available, else the CPU."""
    import torch

    from sae_steer_checks.lm.models import default_device

    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise InputError(f"--device {name}: not a torch device (e.g. cpu, cuda, cuda:1)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def _dtype(name: str) -> torch.dtype:
    import torch

    return getattr(torch, name)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)
