"""The ``sae-steer-checks`` command: run the checks and write the report a researcher reads.

Commands: ``run`` (model + dataset + SAE -> report), ``diagnose`` (saved tensors + SAE -> report),
``extract`` (model + dataset -> tensors ready for ``diagnose``), ``train-sae`` and ``demo`` (the
embedded default). Exit code 0 on success, 2 on bad input with a one-line error naming the input.
Heavy libraries are imported inside the commands so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from sae_steer_checks._validate import InputError, one_line

__all__ = ["build_parser", "main"]

PROG = "sae-steer-checks"
_DTYPES = ("float32", "bfloat16", "float16")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (see ``sae-steer-checks COMMAND --help``)."""
    common = _Parser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="print nothing but errors; no progress bars")  # fmt: skip
    parser = _Parser(
        prog=PROG,
        description="Check whether a sparse autoencoder (SAE) gives a trustworthy account of a "
        "steering vector: is the vector in distribution, does the encoder bias decide its top "
        "features, are negative projections lost, do negatively aligned decoder pairs fake "
        "positive ones, and does steering with the SAE's reconstruction still move the behaviour?",
        epilog="Run 'sae-steer-checks COMMAND --help' for a command's options.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(sub, "run", "extract a CAA vector from a model and a dataset, then run every "
                   "check and write the report", common)  # fmt: skip
    _model_args(run)
    _sae_arg(run)
    run.add_argument("--multipliers", type=float, nargs="+", metavar="M",
                     help="steering multipliers for the behaviour sweep (default: five, chosen so "
                     "that |m|*||v|| reaches half the median activation norm)")  # fmt: skip
    _out_args(run)
    _device_args(run)

    diag = _command(sub, "diagnose", "run the checks on a saved vector and activations", common)
    _sae_arg(diag)
    diag.add_argument("--vector", required=True, metavar="FILE",
                      help="safetensors file with key 'vector' of shape [d]")  # fmt: skip
    diag.add_argument("--pos", required=True, metavar="FILE",
                      help="positive activations: key 'activations' of shape [n, d]")  # fmt: skip
    diag.add_argument("--neg", required=True, metavar="FILE",
                      help="negative activations, paired row by row with --pos")  # fmt: skip
    diag.add_argument("--activations", metavar="FILE",
                      help="ordinary activations at the layer [n, d] for the norm check "
                      "(default: --pos and --neg together)")  # fmt: skip
    _out_args(diag)
    _device_args(diag)

    ext = _command(sub, "extract", "extract a CAA vector and its activations into safetensors "
                   "files ready for 'diagnose'", common)  # fmt: skip
    _model_args(ext)
    _out_args(ext, what="vector.safetensors, pos.safetensors, neg.safetensors")
    _device_args(ext)

    train = _command(sub, "train-sae", "train an SAE on a model's residual stream over offline text "
                     "and save it in sae-lens format", common)  # fmt: skip
    train.add_argument("--model", default="gemma3-270m", metavar="ID_OR_PATH",
                       help="model to read activations from (default gemma3-270m)")  # fmt: skip
    train.add_argument("--layer", required=True, type=int, metavar="L",
                       help="decoder block whose output the SAE reads")  # fmt: skip
    train.add_argument("--width", type=int, default=2048, help="number of features (default 2048)")
    train.add_argument("--architecture", choices=("jumprelu", "topk"), default="jumprelu",
                       help="JumpReLU with Gemma Scope's encoding (default) or TopK")  # fmt: skip
    train.add_argument("--k", type=int, default=64, help="TopK: active features per token")
    train.add_argument("--l0-coefficient", type=float, default=1.0,
                       help="JumpReLU: weight of the L0 penalty (default 1.0)")  # fmt: skip
    train.add_argument("--epochs", type=float, default=2.0,
                       help="passes over the training tokens (default 2)")  # fmt: skip
    train.add_argument("--corpora", nargs="+", default=["lee", "pydoc"], choices=("lee", "pydoc"),
                       help="offline text sources (default: lee pydoc)")  # fmt: skip
    _out_args(train, what="cfg.json and sae_weights.safetensors")
    _device_args(train, dtype="bfloat16")
    demo = _command(sub, "demo", "run the whole check on the embedded default and write the "
                    "report", common)  # fmt: skip
    demo.add_argument("--planted", action="store_true",
                      help="use the planted-feature world (a synthetic SAE whose answers are "
                      "known) instead of the default model")  # fmt: skip
    _out_args(demo)
    _device_args(demo, dtype=None)
    return parser


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
    from sae_steer_checks.cli.files import load_activations, load_vector
    from sae_steer_checks.cli.inputs import CheckInputs
    from sae_steer_checks.sae.loading import load_sae

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    sae, sae_prov = load_sae(args.sae, device=str(device), dtype=dtype)
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
    prov = {
        "command": "diagnose",
        "sae_source": sae_prov,
        "inputs": {k: {"path": str(p), "sha256": file_sha256(p)} for k, p in files.items()},
        "device": str(device),
        "dtype": args.dtype,
        "seed": args.seed,
    }
    _check_and_report(CheckInputs(sae, vector, pos, neg, acts, provenance=prov), args)
    return 0


def _run(args: argparse.Namespace) -> int:
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.sae.loading import load_sae

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    dataset = inputs.load_dataset(args.dataset, args.max_pairs)
    sae, sae_prov = load_sae(args.sae, device=str(device), dtype=dtype)
    loaded = _model(args, device, dtype)
    if int(sae.W_dec.shape[1]) != loaded.d_model:
        raise InputError(
            f"--sae {args.sae}: SAE input width d_in={int(sae.W_dec.shape[1])} does not match "
            f"the residual width {loaded.d_model} of --model {args.model}"
        )
    train, held_out = dataset.split(args.seed)
    caa = inputs.extract_vector(loaded, train, args.layer, spec=args.dataset,
                                progress=not args.quiet)  # fmt: skip
    score_fn, behaviour = inputs.score_function(loaded, held_out, args.layer, spec=args.dataset)
    multipliers = args.multipliers or inputs.default_multipliers(caa.vector, caa.positive, caa.negative)
    prov = {
        "command": "run",
        "model": loaded.name,
        "gguf_file": args.gguf_file,
        "layer": args.layer,
        "sae_source": sae_prov,
        **dataset.provenance(),
        "extraction": caa.to_dict(),
        "behaviour": behaviour,
        "device": str(device),
        "dtype": args.dtype,
        "seed": args.seed,
    }
    checked = inputs.CheckInputs(sae, caa.vector, caa.positive, caa.negative, None, score_fn,
                                 multipliers, prov)  # fmt: skip
    _check_and_report(checked, args)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.cli.files import save_tensors
    from sae_steer_checks.report.files import atomic_output_dir, write_json

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    dataset = inputs.load_dataset(args.dataset, args.max_pairs)
    loaded = _model(args, device, dtype)
    caa = inputs.extract_vector(loaded, dataset.all_data(), args.layer, spec=args.dataset,
                                progress=not args.quiet)  # fmt: skip
    meta = {"model": loaded.name, "layer": str(args.layer), "dataset": args.dataset}
    record = {
        "model": loaded.name,
        "gguf_file": args.gguf_file,
        "layer": args.layer,
        **dataset.provenance(),
        "extraction": caa.to_dict(),
        "seed": args.seed,
        "device": str(device),
        "dtype": args.dtype,
        "versions": inputs.versions(),
    }
    with atomic_output_dir(args.out, force=args.force) as tmp:
        save_tensors(tmp / "vector.safetensors", {"vector": caa.vector}, meta)
        save_tensors(tmp / "pos.safetensors", {"activations": caa.positive}, meta)
        save_tensors(tmp / "neg.safetensors", {"activations": caa.negative}, meta)
        write_json(tmp / "extract.json", record)
    _say(args, f"Wrote vector.safetensors, pos.safetensors, neg.safetensors and extract.json to "
         f"{args.out} (||v|| = {caa.norm:.4g} from {caa.positive.shape[0]} pairs).")  # fmt: skip
    return 0


def _train_sae(args: argparse.Namespace) -> int:
    from sae_steer_checks.report.files import atomic_output_dir
    from sae_steer_checks.train import TrainConfig, train_sae

    _check_out(args)
    device, dtype = _device(args.device), _dtype(args.dtype)
    try:
        config = TrainConfig(
            layer=args.layer, width=args.width, architecture=args.architecture, k=args.k,
            l0_coefficient=args.l0_coefficient, epochs=args.epochs, corpora=tuple(args.corpora),
            seed=args.seed,
        )  # fmt: skip
    except ValueError as error:  # the message names the field, which is the option's name
        raise InputError(f"--{one_line(error).replace('_', '-')}") from None
    with atomic_output_dir(args.out, force=args.force) as tmp:
        try:
            result = train_sae(tmp, config, model=args.model, device=device, model_dtype=dtype,
                               progress=not args.quiet)  # fmt: skip
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
        checks = demo_inputs(seed=args.seed, device=_device(args.device), progress=not args.quiet,
                             say=lambda text: _say(args, text))  # fmt: skip
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


_HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "diagnose": _diagnose,
    "extract": _extract,
    "train-sae": _train_sae,
    "demo": _demo,
}


# --- the shared path: check, plot, report --------------------------------------------------------


def _check_and_report(
    checked: Any, args: argparse.Namespace, *, out: Any = None, force: bool | None = None
) -> dict[str, Any]:
    """Run every check on ``checked``, write the report into ``out`` (default ``--out``); the report dict."""
    import torch

    from sae_steer_checks._provenance import versions
    from sae_steer_checks.diagnostics.run import CheckConfig, run_checks
    from sae_steer_checks.report.markdown import verdicts, write_report
    from sae_steer_checks.report.plots import plot_data_from_result

    torch.manual_seed(args.seed)
    result = run_checks(
        checked.sae, checked.vector, checked.pos, checked.neg, checked.activations,
        score_fn=checked.score_fn, multipliers=checked.multipliers,
        config=CheckConfig(seed=args.seed), progress=not args.quiet,
    )  # fmt: skip
    report = result.to_dict()
    report["provenance"].update(checked.provenance)
    report["provenance"].setdefault("versions", versions())
    sample = checked.activations
    if sample is None:
        sample = torch.cat([checked.pos, checked.neg])
    plot_data = plot_data_from_result(result, sample, checked.sae.W_dec)
    target = args.out if out is None else out
    written = write_report(report, target, force=args.force if force is None else force,
                           plot_data=plot_data)  # fmt: skip
    if out is None:  # the demo's sub-reports are written into a temporary folder, named at the end
        _say(args, f"Wrote {', '.join(written)} to {target}")
    for v in verdicts(report):
        _say(args, f"- {v.mechanism}: {v.status}. {v.sentence}")
    return report


# --- helpers ------------------------------------------------------------------------------------


def _model(args: argparse.Namespace, device: Any, dtype: Any) -> Any:
    from transformers.utils import logging as hf_logging

    from sae_steer_checks.cli.inputs import load_checked_model

    # transformers draws a "Loading weights" bar of its own; --quiet silences it for this load only
    silence = args.quiet and hf_logging.is_progress_bar_enabled()
    if silence:
        hf_logging.disable_progress_bar()
    try:
        return load_checked_model(
            args.model, args.layer, gguf_file=args.gguf_file, device=device, dtype=dtype
        )
    finally:
        if silence:
            hf_logging.enable_progress_bar()


def _command(sub: Any, name: str, text: str, common: argparse.ArgumentParser) -> Any:
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                          parents=[common])  # fmt: skip


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="ID_OR_PATH",
                   help="Hugging Face id, local folder or .gguf file, or 'gemma3-270m' for the "
                   "packaged Gemma 3 270M")  # fmt: skip
    p.add_argument("--gguf-file", metavar="FILE", help="GGUF file inside the --model folder or repo")
    p.add_argument("--dataset", required=True, metavar="FILE_OR_builtin:NAME",
                   help="CAA A/B JSON file (question, answer_matching_behavior, "
                   "answer_not_matching_behavior), a free-form contrast set, or a bundled set: "
                   "builtin:corrigibility, builtin:survival_instinct, builtin:sentiment")  # fmt: skip
    p.add_argument("--layer", required=True, type=int, metavar="L",
                   help="decoder block whose output is read and steered (hidden_states[L+1], "
                   "blocks.L.hook_resid_post)")  # fmt: skip
    p.add_argument("--max-pairs", type=int, metavar="N",
                   help="use at most the first N items of the dataset")  # fmt: skip


def _sae_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sae", required=True, metavar="DIR_OR_RELEASE/ID",
                   help="sae-lens SAE folder (cfg.json + sae_weights.safetensors) or sae-lens "
                   "release/id, e.g. gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173")  # fmt: skip


def _out_args(p: argparse.ArgumentParser, what: str = "report.json, report.md and PNG plots") -> None:
    p.add_argument("--out", required=True, metavar="DIR", help=f"folder to write ({what})")
    p.add_argument("--force", action="store_true",
                   help="replace --out if it exists and is not empty")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _device_args(p: argparse.ArgumentParser, *, dtype: str | None = "float32") -> None:
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    if dtype is not None:
        p.add_argument("--dtype", default=dtype, choices=_DTYPES,
                       help=f"dtype of the model weights (default {dtype}; the checks compute in "
                       "float32)")  # fmt: skip


def _check_out(args: argparse.Namespace) -> None:
    from sae_steer_checks.report.files import validate_out_dir

    validate_out_dir(args.out, force=args.force)


def _device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def _dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)
