"""The embedded default: every check on Gemma 3 270M with the bundled SAE, on the CPU.

Two checks share one model load:

- **corrigibility** (the bundled A/B set, balanced CAA): the study's setting, for the geometry. A 270M
  base model does not express corrigibility through A/B letters, so this check has no retention sweep;
- **sentiment** (the bundled free-form contrast): a behaviour the model does express, for retention
  (original vector, SAE(v) and the signed decomposition, scored on held-out openings).

Ordinary activations for the norm check and for telling live from dead features come from held-out
text of the offline corpora (documents never used to train the bundled SAE).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sae_steer_checks.cli.inputs import CheckInputs
    from sae_steer_checks.steering.scoring import SteerPositions

__all__ = ["DEMO_CHECKS", "DemoCheck", "demo_inputs", "write_summary"]

#: (name, bundled dataset, whether the retention sweep runs)
DEMO_CHECKS: tuple[tuple[str, str, bool], ...] = (
    ("corrigibility", "corrigibility", False),
    ("sentiment", "sentiment", True),
)


@dataclass(frozen=True)
class DemoCheck:
    """The inputs of one of the demo's checks."""

    name: str
    """Sub-folder of the report and short name of the behaviour."""
    inputs: CheckInputs
    """``inputs.CheckInputs`` of this check."""


def demo_inputs(
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    n_text_windows: int = 32,
    max_pairs: int | None = None,
    positions: SteerPositions = "answer",
    progress: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> list[DemoCheck]:
    """Load Gemma 3 270M and the bundled SAE and assemble the demo's checks.

    ``n_text_windows`` held-out text windows (127 tokens each) give the ordinary activations;
    ``max_pairs`` caps the items of each dataset (None: all); ``positions`` are the behaviour sweep's
    steered positions (``answer`` or ``all``, ``steering.scoring.score_grid``).
    """
    from sae_steer_checks.cli import inputs
    from sae_steer_checks.lm.activations import DEFAULT_CORPORA, text_activations
    from sae_steer_checks.lm.models import load_model
    from sae_steer_checks.sae.loading import bundled_sae_dir, load_sae, sae_layer
    from sae_steer_checks.steering.multipliers import default_multipliers

    sae_dir = bundled_sae_dir()
    sae = load_sae(sae_dir, device=device)
    layer = sae_layer(sae)
    say(f"Loading Gemma 3 270M (SAE at layer {layer}) ...")
    loaded = load_model("gemma3-270m", device=device, dtype=torch.float32)
    if loaded.tokenizer is None:
        raise FileNotFoundError("the packaged Gemma 3 270M has no tokenizer beside its weights")
    say("Reading held-out text activations ...")
    # the documents held out from the bundled SAE's training, split as its recipe split them
    recipe = dict(sae.cfg.metadata.get("recipe") or {})
    text = text_activations(
        loaded.model,
        loaded.tokenizer,
        layer,
        tuple(recipe.get("corpora", DEFAULT_CORPORA)),
        n_windows=n_text_windows,
        window=int(recipe.get("window", 128)),
        heldout_fraction=float(recipe.get("heldout_fraction", 0.1)),
        split_seed=int(recipe.get("seed", 0)),
        seed=seed,
        progress=progress,
    )
    activations = text.activations
    sae_source = {"source": "bundled", "path": str(sae_dir), "metadata": _json_ready(sae.cfg.metadata)}

    checks: list[DemoCheck] = []
    for name, dataset_name, with_retention in DEMO_CHECKS:
        say(f"Extracting the {name} vector ...")
        dataset = inputs.load_dataset(f"builtin:{dataset_name}", max_pairs)
        train, held_out = dataset.split(seed)
        caa = inputs.extract_vector(loaded, train, layer, spec=dataset.spec, progress=progress)
        score_fn: Callable[[Tensor], Any] | None = None
        multipliers = None
        behaviour: dict[str, Any] = {"retention": "not run: the model does not express this behaviour"}
        if with_retention:
            score_fn, behaviour = inputs.score_function(
                loaded, held_out, layer, spec=dataset.spec, positions=positions, progress=progress
            )
            multipliers = default_multipliers(caa.vector, activations)
        provenance = {
            "command": "demo",
            "check": name,
            "model": loaded.name,
            "layer": layer,
            "sae_source": sae_source,
            **dataset.provenance(),
            "extraction": caa.to_dict(),
            "behaviour": behaviour,
            "activation_source": text.describe(),
            "device": str(device),
            "dtype": "float32",
            "seed": seed,
        }
        checks.append(
            DemoCheck(
                name,
                inputs.CheckInputs(
                    sae,
                    caa.vector,
                    caa.positive,
                    caa.negative,
                    activations,
                    score_fn,
                    multipliers,
                    provenance,
                    caa.item_tensor(),
                ),
            )
        )
    return checks


def _json_ready(metadata: Any) -> dict[str, Any]:
    out = {}
    for key, value in metadata.to_dict().items():
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        out[key] = value
    return out


def write_summary(reports: dict[str, dict[str, Any]], out: Path) -> None:
    """Write ``summary.json`` (sorted keys) and ``summary.md`` over the demo's reports into ``out``.

    The verdicts are read from each report's ``verdicts`` list (see ``report.schema.VerdictEntry``).
    """
    from sae_steer_checks.report.files import write_json

    summary: dict[str, Any] = {}
    lines = ["# sae_steer_checks demo: Gemma 3 270M with the bundled SAE", ""]
    for name, report in reports.items():
        prov = report["provenance"]
        found = report["verdicts"]
        summary[name] = {
            "report": f"{name}/report.json",
            "layer": prov.get("layer"),
            "dataset": prov.get("dataset"),
            "verdicts": [{key: v[key] for key in ("mechanism", "status", "sentence")} for v in found],
        }
        lines += [
            f"## {name} (layer {prov.get('layer')}, `{prov.get('dataset')}`)",
            "",
            f"Full report: [{name}/report.md]({name}/report.md)",
            "",
        ]
        lines += [f"- **{v['mechanism']}** ({v['status']}): {v['sentence']}" for v in found]
        lines.append("")
    write_json(out / "summary.json", summary)
    (out / "summary.md").write_text("\n".join(lines), encoding="utf-8")
