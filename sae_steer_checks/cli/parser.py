"""The argument parser of ``sae-steer-checks``: every command's options, with nothing heavy imported.

``train-sae``'s defaults are :class:`~sae_steer_checks.train.TrainConfig`'s fields, read only when
they are needed (help text or the command itself), because ``train`` imports sae-lens.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any, NoReturn

__all__ = ["DTYPES", "PROG", "TrainDefault", "build_parser"]

PROG = "sae-steer-checks"
DTYPES = ("float32", "bfloat16", "float16")
_REPORT_FILES = "report.json, report.md and PNG plots"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class TrainDefault:
    """The default of a ``train-sae`` option: the ``TrainConfig`` field of the same name.

    argparse keeps it as the option's value when the option is not given (the command then leaves
    the field to ``TrainConfig``); ``str()`` gives the field's default for the help text.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def value(self) -> Any:
        """The field's default (imports ``sae_steer_checks.train``)."""
        from sae_steer_checks.train import TrainConfig

        field = {f.name: f for f in dataclasses.fields(TrainConfig)}[self.name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    def __str__(self) -> str:
        value = self.value()
        return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    def __repr__(self) -> str:
        return f"TrainDefault({self.name!r})"


_TEXT_HELP = "your own text: plain text (documents split by blank lines), JSON lines, or a folder of them"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command (see ``sae-steer-checks COMMAND --help``)."""
    common = _Parser(add_help=False)
    quiet_help = "print nothing but errors; no progress bars"
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help=quiet_help)
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
    _add_run(_command(sub, common, "run", _RUN_HELP))
    _add_diagnose(_command(sub, common, "diagnose", "run the checks on a saved vector and activations"))
    _add_extract(_command(sub, common, "extract", _EXTRACT_HELP))
    _add_train(_command(sub, common, "train-sae", _TRAIN_HELP))
    _add_demo(
        _command(sub, common, "demo", "run the whole check on the embedded default and write the report")
    )
    _add_render(_command(sub, common, "render", _RENDER_HELP))
    _add_survey(_command(sub, common, "survey", _SURVEY_HELP))
    return parser


_RUN_HELP = "extract a CAA vector from a model and a dataset, then run every check and write the report"
_EXTRACT_HELP = "extract a CAA vector and its activations into safetensors files ready for 'diagnose'"
_RENDER_HELP = "redraw a report's report.md and PNG plots from its report.json alone"
_TRAIN_HELP = "train an SAE on a model's residual stream over offline text and save it in sae-lens format"
_MULTIPLIERS_HELP = (
    "steering multipliers for the behaviour sweep (default: five, chosen so that |m|*||v|| reaches "
    "half the median activation norm)"
)
_MODEL_HELP = "Hugging Face id, local folder or .gguf file, or 'gemma3-270m' for the packaged Gemma 3 270M"
_DATASET_HELP = (
    "CAA A/B JSON file (question, answer_matching_behavior, answer_not_matching_behavior), a "
    "free-form contrast set, or a bundled set: builtin:corrigibility, builtin:survival_instinct, "
    "builtin:sentiment"
)
_LAYER_HELP = "decoder block whose output is read and steered (hidden_states[L+1], blocks.L.hook_resid_post)"
_ITEM_IDS_HELP = (
    "item of each --pos/--neg row: key 'item_ids' of shape [n], integers, as 'extract' writes; rows "
    "sharing an id (an A/B item and its choice-swapped copy) count as one unit in every test and "
    "interval (default: each row is an item)"
)
_SPLIT_HELP = (
    "items to extract from: all (default) or train, the three quarters of the items (shuffled by "
    "--seed) that 'run' extracts from with the same --seed"
)
_SAE_HELP = (
    "sae-lens SAE folder (cfg.json + sae_weights.safetensors) or sae-lens release/id, e.g. "
    "gemma-scope-2b-pt-res/layer_14/width_16k/average_l0_173"
)


_STEER_POSITIONS_HELP = (
    "where the behaviour sweep adds a vector: 'answer' (default; CAA's convention: from each held-out "
    "prompt's last token on, whose output is the scored answer, so the unsteered prefix is computed once) or "
    "'all' (every position)"
)


def _steer_positions_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steer-positions", choices=("answer", "all"), default="answer", help=_STEER_POSITIONS_HELP
    )


_LEARN_STEPS_HELP = (
    "gradient steps of a steering vector learned in the SAE basis on the training items (signed, at most "
    "32 features, ||u|| = ||v||), swept beside v on the held-out items; 0 learns none (default %(default)s)"
)
_LEARN_ITEMS_HELP = (
    "training items the learned vector's objective reads, drawn by --seed (default %(default)s; all when "
    "fewer): each costs one forward over its prompts, then per step a forward and a backward pass through "
    "the blocks after the layer at each of the sweep's two extreme multipliers"
)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` reading an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


_non_negative_int = _int_at_least(0)
_positive_int = _int_at_least(1)


def _learn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--learn-steps", type=_non_negative_int, default=10, metavar="N", help=_LEARN_STEPS_HELP)
    p.add_argument("--learn-items", type=_positive_int, default=48, metavar="N", help=_LEARN_ITEMS_HELP)


def _add_run(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    _sae_arg(p)
    p.add_argument("--multipliers", type=float, nargs="+", metavar="M", help=_MULTIPLIERS_HELP)
    _steer_positions_arg(p)
    _learn_args(p)
    _text_arg(p)
    _out_args(p)
    _device_args(p)


def _add_diagnose(p: argparse.ArgumentParser) -> None:
    _sae_arg(p)
    p.add_argument(
        "--vector", required=True, metavar="FILE", help="safetensors file with key 'vector' of shape [d]"
    )
    p.add_argument(
        "--pos", required=True, metavar="FILE", help="positive activations: key 'activations' of shape [n, d]"
    )
    p.add_argument(
        "--neg", required=True, metavar="FILE", help="negative activations, paired row by row with --pos"
    )
    acts_help = (
        "ordinary activations at the layer [n, d] for the norm check (default: --pos and --neg together)"
    )
    p.add_argument("--activations", metavar="FILE", help=acts_help)
    p.add_argument("--item-ids", metavar="FILE", help=_ITEM_IDS_HELP)
    _out_args(p)
    _device_args(p)


def _add_extract(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--split", choices=("all", "train"), default="all", help=_SPLIT_HELP)
    _out_args(p, what="vector, pos, neg and item_ids .safetensors files and extract.json")
    _device_args(p)


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="gemma3-270m",
        metavar="ID_OR_PATH",
        help="model to read activations from (default gemma3-270m)",
    )
    p.add_argument(
        "--layer", required=True, type=int, metavar="L", help="decoder block whose output the SAE reads"
    )
    p.add_argument(
        "--width", type=int, default=TrainDefault("width"), help="number of features (default %(default)s)"
    )
    p.add_argument(
        "--architecture",
        choices=("jumprelu", "topk"),
        default=TrainDefault("architecture"),
        help="JumpReLU with Gemma Scope's encoding or TopK (default %(default)s)",
    )
    p.add_argument(
        "--k",
        type=int,
        default=TrainDefault("k"),
        help="TopK: active features per token (default %(default)s)",
    )
    p.add_argument(
        "--l0-coefficient",
        type=float,
        default=TrainDefault("l0_coefficient"),
        help="JumpReLU: weight of the L0 penalty (default %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=float,
        default=TrainDefault("epochs"),
        help="passes over the training tokens (default %(default)s)",
    )
    p.add_argument(
        "--corpora",
        nargs="+",
        default=TrainDefault("corpora"),
        choices=("lee", "pydoc"),
        help="offline text sources (default: %(default)s)",
    )
    p.add_argument(
        "--text", action="append", metavar="FILE_OR_FOLDER", help=_TEXT_HELP + " (adds to --corpora)"
    )
    _out_args(p, what="cfg.json and sae_weights.safetensors")
    _device_args(p, dtype="bfloat16")


def _add_demo(p: argparse.ArgumentParser) -> None:
    planted_help = (
        "use the planted-feature world (a synthetic SAE whose answers are known) instead of the default model"
    )
    p.add_argument("--planted", action="store_true", help=planted_help)
    _steer_positions_arg(p)
    _out_args(p)
    _device_args(p, dtype=None)


def _add_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="report folder holding report.json")
    p.add_argument(
        "--out",
        metavar="OTHER",
        help="write report.json (copied), report.md and the plots into this folder instead of DIR",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")


_SURVEY_HELP = (
    "run every check over a grid of behaviours x layers x SAEs on one model and write survey.json, "
    "survey.md, a heat map and each cell's report"
)


def _add_survey(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID_OR_PATH", help=_MODEL_HELP)
    p.add_argument("--datasets", nargs="+", metavar="FILE_OR_builtin:NAME", help=_DATASET_HELP)
    p.add_argument("--layers", nargs="+", type=int, metavar="L", help=_LAYER_HELP)
    saes_help = (
        "SAE folders or sae-lens release/ids, each for the layer its metadata (or 'layer_L' in the id) "
        "names; write L:SPEC to name the layer"
    )
    p.add_argument("--saes", nargs="+", metavar="[L:]DIR_OR_RELEASE/ID", help=saes_help)
    p.add_argument(
        "--architectures",
        nargs="+",
        choices=("jumprelu", "topk", "relu"),
        help="SAEs to train at every layer on the same offline-text activations (kept in --out/saes/)",
    )
    p.add_argument("--width", type=_positive_int, default=1024, help="trained SAEs' features (default 1024)")
    p.add_argument("--k", type=_positive_int, default=32, help="TopK: active features (default 32)")
    p.add_argument("--target-l0", type=float, default=32.0, help="JumpReLU: the L0 aimed at (default 32)")
    p.add_argument(
        "--l1-coefficient",
        type=float,
        default=10.0,
        help="ReLU: L1 penalty on inputs scaled to mean norm sqrt(d_in) (default 10: on Gemma 3 270M's "
        "offline text, L0 about 100-150 of 1024 at explained variance about 0.7)",
    )
    p.add_argument(
        "--train-epochs", type=float, default=2.0, help="passes over the training tokens (default 2)"
    )
    p.add_argument(
        "--train-windows",
        type=_positive_int,
        default=1024,
        help="128-token windows of offline text the SAEs train on (default 1024, about 130k tokens; at most "
        "what the corpus's training split holds)",
    )
    p.add_argument("--max-pairs", type=int, metavar="N", help="use at most the first N items of each dataset")
    p.add_argument("--prompt-format", choices=("auto", "plain", "chat"), default="auto",
                   help="A/B prompts as plain text or in the chat template (as for run)")  # fmt: skip
    p.add_argument("--multipliers", type=float, nargs="+", metavar="M", help=_MULTIPLIERS_HELP)
    _steer_positions_arg(p)
    _learn_args(p)
    _text_arg(p)
    p.add_argument("--n-null", type=_positive_int, default=39, help="null draws of every check (default 39)")
    p.add_argument("--n-boot", type=_positive_int, default=200, help="bootstrap draws (default 200)")
    p.add_argument("--no-plots", action="store_true", help="write each cell's report without its PNGs")
    p.add_argument("--shard", metavar="K/N", help="run only every N-th cell, starting at the K-th")
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="DIR",
        help="join the survey folders of shards into --out (no model is run)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="survey folder; cells already in it are kept")
    p.add_argument("--force", action="store_true", help="recompute every cell and write into a foreign --out")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _device_args(p)


def _command(sub: Any, common: argparse.ArgumentParser, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=text, description=text[0].upper() + text[1:] + ".", parents=[common]
    )
    return parser


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="ID_OR_PATH", help=_MODEL_HELP)
    p.add_argument("--gguf-file", metavar="FILE", help="GGUF file inside the --model folder or repo")
    p.add_argument(
        "--device-map",
        choices=("auto",),
        help="spread a model larger than one device over all visible devices (accelerate's dispatch)",
    )
    p.add_argument("--dataset", required=True, metavar="FILE_OR_builtin:NAME", help=_DATASET_HELP)
    p.add_argument("--layer", required=True, type=int, metavar="L", help=_LAYER_HELP)
    p.add_argument("--max-pairs", type=int, metavar="N", help="use at most the first N items of the dataset")
    p.add_argument(
        "--prompt-format",
        choices=("auto", "plain", "chat"),
        default="auto",
        help="A/B prompts as plain text or in the tokenizer's chat template; auto (default) uses the chat "
        "template only for an instruction-tuned model (a template and -it/instruct/chat/sft/rlhf/dpo "
        "in its name)",
    )


def _text_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--text",
        action="append",
        metavar="FILE_OR_FOLDER",
        help=_TEXT_HELP + " for the activation-norm distribution (default: held-out bundled offline text)",
    )


def _sae_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sae", required=True, metavar="DIR_OR_RELEASE/ID", help=_SAE_HELP)


def _out_args(p: argparse.ArgumentParser, what: str = _REPORT_FILES) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help=f"folder to write ({what})")
    p.add_argument("--force", action="store_true", help="replace --out if it exists and is not empty")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _device_args(p: argparse.ArgumentParser, *, dtype: str | None = "float32") -> None:
    p.add_argument(
        "--device",
        default=None,
        help="torch device, e.g. cpu or cuda (default: cuda when available, else cpu)",
    )
    if dtype is not None:
        p.add_argument(
            "--dtype",
            default=dtype,
            choices=DTYPES,
            help=f"dtype of the model weights (default {dtype}; the checks compute in float32)",
        )
