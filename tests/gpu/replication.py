"""Plumbing of the Gemma 2 2B tier: find and load everything, extract, run every check, write the report.

Plain functions parameterised by sources, device and dtype, so the same code runs on the real weights
(``tests/gpu``, CUDA, bfloat16) and on the stand-ins in the exact on-disk layouts
(``tests/realmodel/test_gemma2_rehearsal.py``, CPU, float32, a few items). The study's figures and the
replication table live in ``tests/gpu/figures.py``.

The study's setup, exactly: Gemma 2 2B base, layer 14 (``hidden_states[15]``), RAW CAA
(``balance="none"``) over all 340 corrigible-neutral-HHH items (290 generate + 50 test) with plain
prompts (``"Question: ...\\n\\nAnswer: (A"``, no chat template: the base tokenizer ships one, but a base
model gets a plain prompt), Gemma Scope ``gemma-scope-2b-pt-res`` / ``layer_14/width_16k/average_l0_173``,
and ordinary text from the bundled offline corpora (lee + pydoc, ~170k Gemma 2 tokens) for the norm
distribution. The steering score is the A/B logit difference on the 50 test items, one score per item.
Steering adds the vector at the ``answer`` positions (from each prompt's last token, "(", on), CAA's own
convention (its reference code adds the vector after the end of the instruction); the study does not
state its own. Every earlier position is left as the model computed it, so each prompt's prefix runs once.
As in the study the vector is extracted from all 340 items, so the 50 scored items are part of the
extraction set (the report's provenance says so).

Where things come from (environment variables; nothing is downloaded when ``HF_HUB_OFFLINE=1``):

- ``SAE_STEER_CHECKS_GEMMA2_2B``: hub id or local folder of the model (default ``google/gemma-2-2b``).
- ``SAE_STEER_CHECKS_GEMMA_SCOPE``: a local Gemma Scope ``params.npz`` (or the folder holding it, or a
  sae-lens folder); default: the sae-lens release above, from the Hugging Face cache.
- ``SAE_STEER_CHECKS_CAA_DATA``: the CAA files (generate, then test), whitespace-separated paths or URLs,
  or one folder in the CAA repository layout; default: ``$SAE_STEER_CHECKS_CACHE/caa`` (else
  ``~/.cache/sae_steer_checks/caa``) in that layout (``generate/corrigible-neutral-HHH/generate_dataset.json``
  and ``test/corrigible-neutral-HHH/test_dataset_ab.json``).
- ``SAE_STEER_CHECKS_GPU_OUT``: the report folder the tier writes (default ``gpu-report``).

Batching, so that the whole tier runs on one H200 in well under 10 minutes with ``device="cuda"`` and
``dtype=torch.bfloat16`` (defaults of :class:`TierConfig`): CAA extraction reads 340 pairs in batches of
64 prompts with the shared prefix computed once (~6 forwards through blocks 0-14 only, seconds); the
ordinary text is cut into 128-token windows (BOS first, left out) read 64 windows per forward through
blocks 0-14 only (~1,340 windows, ~21 forwards); the score function runs the 50 test prompts in one
batch over a key/value cache of each prompt's unsteered prefix and stacks 16 steering vectors per
forward, replaying only blocks 15-25 at the answer position per vector (the vectors and the random
null x the multipliers, the shared zero multiplier scored once, in one batched call). The SAE stays
on the CPU in float32, because the diagnostics encode CPU tensors with it; the pair search, the signed
decompositions and their nulls run on ``device``. The CPU part is dominated by encoding the ~170k text
activations three times (live features and the two halves of the delta view), about a minute on 16 cores.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sae_steer_checks._provenance import file_sha256
from sae_steer_checks.data.schema import ABItem, load_ab_items
from sae_steer_checks.diagnostics.run import CheckConfig, CheckResult, run_checks
from sae_steer_checks.lm.models import LoadedModel, load_model
from sae_steer_checks.sae.loading import load_sae, load_sae_metadata
from sae_steer_checks.sae.protocol import encode_in_sae_space
from sae_steer_checks.steering.caa import CAAResult, extract_caa
from tests.gpu.figures import Figure, Row, replication_table, tier_figures, write_replication_table

__all__ = [
    "CAA_LAYOUT",
    "DATA_ENV",
    "GEMMA_SCOPE_FILE",
    "GEMMA_SCOPE_REPO",
    "LAYER",
    "MODEL_ENV",
    "OUT_ENV",
    "SAE_ENV",
    "SAE_SPEC",
    "STANDIN_MARKER",
    "Figure",
    "Row",
    "TierConfig",
    "TierRun",
    "caa_sources",
    "default_caa_root",
    "is_standin",
    "load_items",
    "load_tier_sae",
    "model_source",
    "replication_table",
    "run_tier",
    "sae_params_path",
    "sae_source",
    "text_activations",
    "tier_figures",
    "weight_codes",
    "write_replication_table",
]

LAYER = 14
MODEL_ID = "google/gemma-2-2b"
GEMMA_SCOPE_REPO = "google/gemma-scope-2b-pt-res"
SAE_RELEASE, SAE_ID = "gemma-scope-2b-pt-res", "layer_14/width_16k/average_l0_173"
SAE_SPEC = f"{SAE_RELEASE}/{SAE_ID}"
GEMMA_SCOPE_FILE = f"{SAE_ID}/params.npz"
CAA_LAYOUT = (
    "generate/corrigible-neutral-HHH/generate_dataset.json",
    "test/corrigible-neutral-HHH/test_dataset_ab.json",
)
MODEL_ENV, SAE_ENV, DATA_ENV, OUT_ENV = (
    "SAE_STEER_CHECKS_GEMMA2_2B",
    "SAE_STEER_CHECKS_GEMMA_SCOPE",
    "SAE_STEER_CHECKS_CAA_DATA",
    "SAE_STEER_CHECKS_GPU_OUT",
)
#: File that ``tests.helpers.gemma2_standins.build_standins`` leaves at the root of every stand-in build.
STANDIN_MARKER = ".standins.json"


# ------------------------------------------------------------------ where things come from


def model_source(env: Mapping[str, str] = os.environ) -> str:
    """Hub id or local folder of Gemma 2 2B (``SAE_STEER_CHECKS_GEMMA2_2B``, else ``google/gemma-2-2b``)."""
    return env.get(MODEL_ENV) or MODEL_ID


def sae_source(env: Mapping[str, str] = os.environ) -> str:
    """Local path of the Gemma Scope SAE (``SAE_STEER_CHECKS_GEMMA_SCOPE``), else the sae-lens release/id."""
    return env.get(SAE_ENV) or SAE_SPEC


def sae_params_path(env: Mapping[str, str] = os.environ) -> tuple[Path | None, str]:
    """The Gemma Scope ``params.npz`` this machine would load, and where it was looked for.

    Returns:
        ``(path, looked_at)``: the file (None when absent) and the exact place searched, for skips.
    """
    local = env.get(SAE_ENV)
    if local:
        path = Path(local).expanduser()
        path = path / "params.npz" if path.is_dir() else path
        return (path if path.is_file() else None), str(path)
    import huggingface_hub
    from huggingface_hub import constants

    found = huggingface_hub.try_to_load_from_cache(GEMMA_SCOPE_REPO, GEMMA_SCOPE_FILE)
    repo_dir = Path(constants.HF_HUB_CACHE) / f"models--{GEMMA_SCOPE_REPO.replace('/', '--')}"
    looked_at = f"{repo_dir}/snapshots/<revision>/{GEMMA_SCOPE_FILE} (or set {SAE_ENV})"
    return (Path(found) if isinstance(found, str) else None), looked_at


def is_standin(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies inside a stand-in build (an ancestor holds :data:`STANDIN_MARKER`).

    A stand-in ``params.npz`` has the real shapes and the study's planted values, so neither its size
    nor ``b_enc[4888]`` tells it apart; the build's marker does (symlinks are not followed, since the
    hub cache links snapshots to blobs inside the same build).
    """
    return any((parent / STANDIN_MARKER).is_file() for parent in Path(os.path.abspath(path)).parents)


def default_caa_root(env: Mapping[str, str] = os.environ) -> Path:
    """Folder searched for the CAA layout when ``SAE_STEER_CHECKS_CAA_DATA`` is unset."""
    cache = env.get("SAE_STEER_CHECKS_CACHE") or os.path.join("~", ".cache", "sae_steer_checks")
    return Path(cache).expanduser() / "caa"


def caa_sources(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The CAA files to read, generate set first: paths or URLs, a folder expanded to the CAA layout."""
    given = env.get(DATA_ENV, "").split()
    if not given:
        given = [str(default_caa_root(env))]
    sources: list[str] = []
    for entry in given:
        if Path(entry).expanduser().is_dir():
            sources.extend(str(Path(entry).expanduser() / rel) for rel in CAA_LAYOUT)
        else:
            sources.append(entry)
    return tuple(sources)


# ------------------------------------------------------------------ loading


def load_tier_sae(source: str, *, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Load the Gemma Scope SAE from a release/id, a sae-lens folder, or a local ``params.npz``.

    A ``params.npz`` (or a folder holding one) goes through sae-lens' own Gemma Scope converter
    (config from the repository and folder names, weights converted as ``from_pretrained`` does).

    Returns:
        ``(sae, provenance)``: a float32 sae-lens SAE on ``device`` and where it came from.
    """
    path = Path(source).expanduser()
    npz = path / "params.npz" if path.is_dir() else path
    if npz.name == "params.npz" and npz.is_file():
        from sae_lens import SAE
        from sae_lens.loading.pretrained_sae_loaders import get_gemma_2_config_from_hf

        def converter(
            p: str | Path, dev: str, cfg_overrides: dict[str, Any] | None = None
        ) -> tuple[dict[str, Any], dict[str, Tensor]]:
            cfg = get_gemma_2_config_from_hf(GEMMA_SCOPE_REPO, SAE_ID, dev, cfg_overrides=cfg_overrides)
            with np.load(p) as data:
                state = {k: torch.from_numpy(data[k]).to(torch.float32).to(dev) for k in data}
            return cfg, state

        sae = SAE.load_from_disk(str(npz), device=device, dtype="float32", converter=converter)
        return sae, {"source": "params.npz", "path": str(npz), "weights_sha256": file_sha256(npz)}
    return load_sae(source, device=device, dtype=torch.float32), load_sae_metadata(source)


def load_items(
    sources: Sequence[str], *, max_generate: int | None = None, max_test: int | None = None
) -> tuple[list[ABItem], list[ABItem]]:
    """The generation and test items (first and second source), each optionally cut to its first n.

    Returns:
        ``(generate, test)`` lists of ``ABItem``. Raises ``ValueError`` unless exactly two sources.
    """
    if len(sources) != 2:
        raise ValueError(f"sources must name the generate and the test file, got {len(sources)}: {sources}")
    generate, test = (load_ab_items(s) for s in sources)
    return generate[:max_generate], test[:max_test]


def weight_codes(sae: Any) -> dict[str, Any]:
    """SAE(0) under both decoder-bias conventions and the weight-only figures' raw material, no forward.

    Returns:
        ``{"zero": {True: [d_sae], False: [d_sae]}, "W_dec": [d_sae, d_in], "b_enc": [d_sae]}`` (float32,
        CPU); ``True`` means ``b_dec`` subtracted before encoding.
    """
    zero = torch.zeros(1, int(sae.W_dec.shape[1]))
    return {
        "zero": {s: encode_in_sae_space(sae, zero, subtract_b_dec=s)[0].cpu() for s in (True, False)},
        "W_dec": sae.W_dec.detach().float().cpu(),
        "b_enc": sae.b_enc.detach().float().cpu(),
    }


def text_activations(
    loaded: LoadedModel, layer: int, *, token_budget: int, window: int = 128, batch_size: int = 64
) -> Tensor:
    """Residual stream after block ``layer`` on up to ``token_budget`` ordinary text tokens.

    The text is the bundled offline corpora (lee news + pydoc prose, training and held-out documents
    alike: nothing is trained here), in ``window``-token windows whose BOS position is left out.

    Returns:
        ``[n_tokens, d_model]`` float32 on the CPU, ``n_tokens <= token_budget``.
    """
    from sae_steer_checks.data.corpus import split_corpus
    from sae_steer_checks.train import collect_activations

    split = split_corpus(loaded.tokenizer, ("lee", "pydoc"), window=window)
    windows = torch.cat([split.train, split.heldout])[: max(1, token_budget // (window - 1))]
    model = getattr(loaded.model, "model", loaded.model)  # the inner decoder: no head is ever needed
    return collect_activations(model, windows, layer, batch_size=batch_size).cpu()


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class TierConfig:
    """Everything the tier's run depends on; the defaults are the study's setup on one H200."""

    model: str = MODEL_ID
    """Hub id or local folder of the model."""
    sae: str = SAE_SPEC
    """SAE release/id, sae-lens folder or Gemma Scope ``params.npz``."""
    caa: tuple[str, ...] = ()
    """The generate and test files (see :func:`caa_sources`)."""
    layer: int = LAYER
    """Decoder block whose output is read and steered."""
    device: str = "cuda"
    """Device of the model, the pair search and the decompositions."""
    dtype: torch.dtype = torch.bfloat16
    """Dtype of the model's forwards (activations are stored in float32)."""
    device_map: str | None = None
    """``"auto"`` for a model larger than one device (accelerate's dispatch), else None."""
    max_generate: int | None = None
    """Generate items used (None: all 290)."""
    max_test: int | None = None
    """Test items used, for extraction and scoring (None: all 50)."""
    token_budget: int = 200_000
    """Ordinary text tokens for the norm distribution (the corpora give ~170k Gemma 2 tokens)."""
    window: int = 128
    """Tokens per text window, BOS included."""
    text_batch_size: int = 64
    """Text windows per forward."""
    extract_batch_size: int = 64
    """Prompts per extraction forward."""
    score_batch_size: int = 64
    """Prompt rows per scoring forward."""
    vectors_per_batch: int | None = None
    """Steering vectors stacked into one scoring forward (None: chosen per batch)."""
    learn_steps: int = 10
    """Steps of the steering vector learned in the SAE basis on all generate items (never the test items),
    its objective the slope between the sweep's extreme multipliers as ``run`` learns it; 0 learns none.
    This project's own addition: the study has no learned vector."""
    check: CheckConfig = field(default_factory=CheckConfig)
    """Settings of every diagnostic."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **overrides: Any) -> TierConfig:
        """The config with model, SAE and CAA files resolved from the environment, then ``overrides``."""
        base = cls(model=model_source(env), sae=sae_source(env), caa=caa_sources(env))
        return replace(base, **overrides)


@dataclass(frozen=True)
class TierRun:
    """What one run of the tier produced."""

    config: TierConfig
    """The config it ran with."""
    result: CheckResult
    """Every diagnostic."""
    report: dict[str, Any]
    """The report as written to ``report.json``."""
    caa: CAAResult
    """The raw CAA vector ``[d_model]`` and the activations it was taken from (float32, CPU)."""
    weights: dict[str, Any]
    """:func:`weight_codes` of the SAE."""
    saev: dict[bool, Tensor]
    """SAE(v) ``[d_sae]`` with (True) and without (False) subtracting ``b_dec``."""
    provenance: dict[str, Any]
    """Provenance passed to the report."""
    seconds: dict[str, float]
    """Wall time of each step."""


def _load_model(config: TierConfig) -> LoadedModel:
    kwargs: dict[str, Any] = {"device": config.device, "dtype": config.dtype}
    if config.device_map is not None:
        if "device_map" not in inspect.signature(load_model).parameters:
            raise ValueError(
                f"device_map={config.device_map!r}: sae_steer_checks.lm.models.load_model has no device_map "
                "parameter yet, so a model larger than one device cannot be dispatched"
            )
        kwargs["device_map"] = config.device_map
    return load_model(config.model, **kwargs)


def run_tier(config: TierConfig, out: str | Path, *, progress: bool = False) -> TierRun:
    """Run the whole tier and write its report folder ``out`` (replaced when it exists).

    Steps: load model, SAE and items; raw CAA at ``config.layer`` with plain prompts; ordinary-text
    activations; a steering vector learned in the SAE basis on the generate items
    (``config.learn_steps``); every diagnostic with per-item A/B scores on the test items (the ablation
    of the lost projections and the learned vector's slope included); ``write_report``.

    Returns:
        A :class:`TierRun` (the replication table is written by ``figures.write_replication_table``).
    """
    from sae_steer_checks.report.write import write_report
    from sae_steer_checks.steering.learned import learn_in_sae_basis
    from sae_steer_checks.steering.scoring import make_score_fn
    from sae_steer_checks.steering.tasks import ab_task, training_task

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    loaded = _load_model(config)
    lap("load_model")
    sae, sae_provenance = load_tier_sae(config.sae, device="cpu")
    weights = weight_codes(sae)
    generate, test = load_items(config.caa, max_generate=config.max_generate, max_test=config.max_test)
    lap("load_sae_and_items")
    model, tok = loaded.model, loaded.tokenizer
    caa = extract_caa(
        model,
        tok,
        [*generate, *test],
        config.layer,
        balance="none",
        prompt_format="plain",
        batch_size=config.extract_batch_size,
        progress=progress,
    )
    lap("extract_caa")
    activations = text_activations(
        loaded, config.layer, token_budget=config.token_budget, window=config.window,
        batch_size=config.text_batch_size,
    )  # fmt: skip
    lap("text_activations")
    learned = None
    if config.learn_steps > 0:
        learned = learn_in_sae_basis(
            model, training_task(tok, generate, prompt_format="plain"), config.layer, sae,
            norm=float(caa.vector.float().norm()), activations=activations,
            multipliers=(min(config.check.multipliers), max(config.check.multipliers)), positions="answer",
            steps=config.learn_steps,
            seed=config.check.seed, batch_size=config.score_batch_size, progress=progress,
        )  # fmt: skip
        lap("learn_in_sae_basis")
    task = ab_task(tok, test, prompt_format="plain")
    score_fn = make_score_fn(
        model,
        task,
        config.layer,
        positions="answer",  # CAA's convention (see the module notes)
        batch_size=config.score_batch_size,
        vectors_per_batch=config.vectors_per_batch,
    )
    result = run_checks(
        sae,
        caa.vector,
        caa.positive,
        caa.negative,
        activations,
        item_ids=torch.tensor(caa.units),
        score_fn=score_fn,
        learned=learned,
        config=config.check,
        device=config.device,
        progress=progress,
    )
    lap("run_checks")
    v = caa.vector.float().cpu()[None]
    saev = {s: encode_in_sae_space(sae, v, subtract_b_dec=s)[0].cpu() for s in (True, False)}
    provenance = {
        "model": config.model,
        "layer": config.layer,
        "device": str(config.device),
        "dtype": str(config.dtype).removeprefix("torch."),
        "sae_source": sae_provenance,
        "dataset": " ".join(config.caa),
        "dataset_sha256": " ".join(str(_sha(s)) for s in config.caa),
        "dataset_kind": "ab",
        "n_items": caa.n_items,
        "extraction": {
            **caa.to_dict(),
            "prompt_format": "plain",
            "items": f"{len(generate)} generate + {len(test)} test, as in the study",
        },
        "behaviour": {
            "task": "ab",
            "prompt_format": "plain",
            "n_items": task.n_items,
            "items": "the test items (also part of the extraction set, as in the study)",
        },
        "inputs": {"text_corpora": ["lee", "pydoc"], "text_tokens": int(activations.shape[0]),
                   "window": config.window},
    }  # fmt: skip
    report = write_report(result, out, provenance=provenance, force=True)
    lap("write_report")
    return TierRun(
        config=config,
        result=result,
        report=dict(report),
        caa=caa,
        weights=weights,
        saev=saev,
        provenance=provenance,
        seconds=seconds,
    )


def _sha(source: str) -> str | None:
    path = Path(source).expanduser()
    return file_sha256(path) if path.is_file() else None
