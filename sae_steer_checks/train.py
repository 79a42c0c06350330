"""Training a residual-stream SAE with sae-lens' ``SAETrainer`` on offline text.

Recipe: read the residual stream after decoder block ``layer`` on the training windows of
``sae_steer_checks.data.corpus`` (BOS positions left out, since their norm is ~10x that of text tokens),
divide by one constant so the mean norm is ``sqrt(d_model)`` (residual norms of Gemma 3 270M are in
the thousands), train a JumpReLU SAE with Gemma Scope's encoding (``apply_b_dec_to_input=False``) or a
TopK SAE, fold the constant and the decoder norms back into the weights (the saved SAE takes raw
activations and has unit decoder rows, so feature activations are in residual-stream units), and
measure it on held-out documents. The result is saved in sae-lens' format with the recipe and the
quality figures in ``cfg.json``'s ``metadata``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from sae_lens import SAE, SAETrainer
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
from sae_lens.saes.sae import TrainingSAE
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.activation_scaler import ActivationWhitening
from torch import Tensor
from tqdm.auto import tqdm

from sae_steer_checks.data.corpus import CorpusSplit, split_corpus
from sae_steer_checks.lm.activations import collect_activations
from sae_steer_checks.lm.models import load_model, validate_layer

__all__ = [
    "SAEQuality",
    "TrainConfig",
    "TrainResult",
    "collect_activations",
    "evaluate_sae",
    "fit_sae",
    "record_metadata",
    "train_sae",
]


@dataclass(frozen=True)
class TrainConfig:
    """How to train an SAE; every field is recorded in the saved ``cfg.json`` metadata."""

    layer: int = 10
    """Decoder block whose output is read (``blocks.{layer}.hook_resid_post``)."""
    width: int = 2048
    """Number of SAE features (``d_sae``)."""
    architecture: Literal["jumprelu", "topk", "relu"] = "jumprelu"
    """``jumprelu`` (Gemma Scope style, L0 penalty), ``topk`` (``k`` active) or ``relu`` (L1 penalty)."""
    sparsity_loss: Literal["step", "tanh", "quadratic"] = "quadratic"
    """JumpReLU: L0 penalty (``step``), tanh surrogate, or quadratic pull toward ``target_l0``."""
    target_l0: float = 64.0
    """JumpReLU with ``quadratic``: the L0 the penalty pulls toward."""
    l0_coefficient: float = 1.0
    """JumpReLU: weight of the sparsity penalty against the summed squared error of scaled inputs."""
    ste_to_input: bool = True
    """JumpReLU: pass the threshold's straight-through gradient to the encoder too (faster)."""
    revive_coefficient: float = 3.0
    """JumpReLU: weight of the loss that lifts features silent for ``dead_window`` steps (0: off)."""
    dead_window: int = 10
    """Steps without firing after which a feature counts as dead during training."""
    jumprelu_init_threshold: float = 0.05
    """JumpReLU: starting threshold, in units of the scaled input."""
    jumprelu_bandwidth: float = 0.05
    """JumpReLU: bandwidth of the straight-through threshold gradient."""
    k: int = 64
    """TopK: active features per token."""
    l1_coefficient: float = 1.0
    """ReLU: weight of the L1 penalty (sae-lens' standard SAE, decoder-norm weighted) on scaled inputs."""
    lr: float = 1e-3
    """Adam learning rate (constant after warm-up, decayed over the last fifth)."""
    batch_size: int = 1024
    """Tokens per training step."""
    epochs: float = 2.0
    """Passes over the training tokens (fractions allowed)."""
    corpora: tuple[str, ...] = ("lee", "pydoc")
    """Text sources of ``sae_steer_checks.data.corpus``."""
    window: int = 128
    """Tokens per forward window, BOS included."""
    heldout_fraction: float = 0.1
    """Share of each corpus's tokens kept for evaluation, as whole documents."""
    seed: int = 0
    """Seed of the corpus split, initialisation and batch order."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes recorded with the recipe (e.g. why this layer)."""

    def __post_init__(self) -> None:
        positive = {
            "width": self.width,
            "k": self.k,
            "batch_size": self.batch_size,
            "dead_window": self.dead_window,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.layer < 0:
            raise ValueError(f"layer must be >= 0, got {self.layer}")
        if self.architecture not in ("jumprelu", "topk", "relu"):
            raise ValueError(f"architecture must be 'jumprelu', 'topk' or 'relu', got {self.architecture!r}")
        if self.architecture == "topk" and self.k > self.width:
            raise ValueError(f"k must be <= width {self.width}, got {self.k}")
        for name in (
            "l0_coefficient",
            "l1_coefficient",
            "jumprelu_init_threshold",
            "jumprelu_bandwidth",
            "lr",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not math.isfinite(self.revive_coefficient) or self.revive_coefficient < 0:
            raise ValueError(f"revive_coefficient must be >= 0, got {self.revive_coefficient!r}")
        if not math.isfinite(self.epochs) or self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs!r}")


@dataclass(frozen=True)
class SAEQuality:
    """Reconstruction and sparsity of an SAE on a set of activations."""

    explained_variance: float
    """``1 - sum ||x - SAE(x)||^2 / sum ||x - mean(x)||^2`` over all tokens."""
    mean_l0: float
    """Mean number of active features per token."""
    dead_fraction: float
    """Share of features active on no token of the set."""
    n_tokens: int
    """Tokens evaluated."""


@dataclass(frozen=True)
class TrainResult:
    """What ``train_sae`` produced."""

    path: Path
    """Directory holding ``cfg.json`` and ``sae_weights.safetensors``."""
    heldout: SAEQuality
    """Quality on held-out documents."""
    train: SAEQuality
    """Quality on (up to 65,536 of) the training tokens."""
    n_train_tokens: int
    """Training tokens (BOS positions excluded)."""
    seconds: dict[str, float]
    """Wall time of each stage: load, collect, fit, evaluate."""


@torch.no_grad()
def evaluate_sae(sae: Any, activations: Tensor, *, batch_size: int = 4096) -> SAEQuality:
    """Explained variance, mean L0 and dead-feature share of ``sae`` on ``activations`` ``[n, d]``."""
    if activations.ndim != 2 or activations.shape[0] < 2:
        raise ValueError(f"activations must be [n >= 2, d_in], got {list(activations.shape)}")
    x_all = activations.float()
    mean = x_all.mean(0)
    error = total = l0 = 0.0
    fired = torch.zeros(sae.W_dec.shape[0], dtype=torch.bool)
    for i in range(0, x_all.shape[0], batch_size):
        x = x_all[i : i + batch_size].to(sae.W_dec.device, sae.W_dec.dtype)
        feats = sae.encode(x)
        recon = sae.decode(feats).float()
        error += (recon - x.float()).pow(2).sum().item()
        total += (x.float() - mean.to(x.device)).pow(2).sum().item()
        active = feats != 0
        l0 += active.sum().item()
        fired |= active.any(0).cpu()
    return SAEQuality(
        explained_variance=1.0 - error / total,
        mean_l0=l0 / x_all.shape[0],
        dead_fraction=1.0 - fired.float().mean().item(),
        n_tokens=int(x_all.shape[0]),
    )


def _batches(activations: Tensor, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    # endless reshuffled epochs; the trainer decides when to stop
    while True:
        order = torch.randperm(activations.shape[0], generator=generator)
        for i in range(0, order.numel() - batch_size + 1, batch_size):
            yield activations[order[i : i + batch_size]]


def fit_sae(
    activations: Tensor,
    config: TrainConfig = TrainConfig(),
    *,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> SAE[Any]:
    """Train an SAE on raw activations ``[n, d_in]`` and return the inference SAE (float32).

    The returned SAE encodes raw activations (the input scale is folded into its weights) and its
    decoder rows have unit norm.
    """
    if activations.ndim != 2 or activations.shape[0] < config.batch_size:
        raise ValueError(
            f"activations must be [n >= batch_size={config.batch_size}, d_in], got {list(activations.shape)}"
        )
    d_in = int(activations.shape[1])
    # Train on (x - mean) * scale with the mean norm sqrt(d_in), the scale sae-lens' defaults
    # assume. Centring matters: the mean is ~85% of a residual vector's squared norm, and with it
    # every early Adam step on W_enc shifts all tokens' pre-activations alike and kills features.
    # Both maps are folded into the weights at the end (b_enc absorbs the mean, so the saved SAE
    # keeps Gemma Scope's convention and takes raw activations).
    mean = activations.mean(0)
    scale = math.sqrt(d_in) / (activations - mean).norm(dim=-1).mean().item()
    eye = torch.eye(d_in, dtype=torch.float32)
    centring = ActivationWhitening(mean=mean, matrix=eye * scale, inverse_matrix=eye / scale)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # sae-lens initialises weights from the global generator
    common = {"d_in": d_in, "d_sae": config.width, "apply_b_dec_to_input": False}
    sae: TrainingSAE[Any]
    if config.architecture == "jumprelu":
        sae = JumpReLUTrainingSAE(
            JumpReLUTrainingSAEConfig(
                **common,
                l0_coefficient=config.l0_coefficient,
                jumprelu_sparsity_loss_mode=config.sparsity_loss,
                target_l0=config.target_l0,
                jumprelu_ste_to_input=config.ste_to_input,
                pre_act_loss_coefficient=config.revive_coefficient or None,
                jumprelu_init_threshold=config.jumprelu_init_threshold,
                jumprelu_bandwidth=config.jumprelu_bandwidth,
                l0_warm_up_steps=0,
            )
        )
    elif config.architecture == "relu":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(**common, l1_coefficient=config.l1_coefficient))
    else:
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(**common, k=config.k))
    sae.to(torch.device(device))
    _data_init(sae, (activations[:8192] - mean) * scale, config)
    n_samples = int(config.epochs * activations.shape[0])
    steps = max(n_samples // config.batch_size, 1)
    trainer_cfg = SAETrainerConfig(
        total_training_samples=steps * config.batch_size,
        train_batch_size_samples=config.batch_size,
        lr=config.lr,
        lr_end=config.lr,  # the constant schedule decays linearly from here to 0
        lr_warm_up_steps=min(100, steps // 10),
        lr_decay_steps=steps // 5,
        device=str(torch.device(device)),
        dead_feature_window=config.dead_window,
        feature_sampling_window=steps + 1,
    )
    trainer: SAETrainer[Any, Any] = SAETrainer(
        cfg=trainer_cfg, sae=sae, data_provider=_batches(activations, config.batch_size, generator)
    )
    trainer.activation_scaler.whitening = centring
    # the loop of SAETrainer.fit through its public seams, minus its unconditional progress bar
    for _ in tqdm(range(steps), desc="training SAE", disable=not progress):
        trainer.maybe_reset_sparsity()
        trainer.step(next(trainer.data_provider))
        trainer.n_training_steps += 1
    sae.fold_activation_whitening(centring.mean, centring.matrix, centring.inverse_matrix)
    if config.architecture == "topk":
        # sae-lens' TopK fold leaves every decoder row at norm 1/scale; a uniform factor cannot
        # change which k features win, so folding it is safe despite TopK's guard against it
        sae.fold_and_get_W_dec_norm()
    else:
        sae.fold_W_dec_norm()
    return _to_inference(sae)


@torch.no_grad()
def _data_init(sae: TrainingSAE[Any], scaled: Tensor, config: TrainConfig) -> None:
    # Each encoder bias is set so its feature starts firing on ~target/width of the tokens, so the
    # sparsity penalty starts near its goal instead of silencing most features in its first steps.
    active = config.k if config.architecture == "topk" else config.target_l0
    quantile = 1.0 - min(active / config.width, 0.5)
    pre = scaled.to(sae.W_enc.device, sae.W_enc.dtype) @ sae.W_enc
    offset = config.jumprelu_init_threshold if config.architecture == "jumprelu" else 0.0
    sae.b_enc.copy_(offset - pre.quantile(quantile, dim=0))


def _to_inference(sae: TrainingSAE[Any]) -> SAE[Any]:
    state = sae.state_dict()
    sae.process_state_dict_for_saving_inference(state)
    cfg = sae.cfg.get_inference_sae_cfg_dict()
    if cfg.get("architecture") == "topk":
        # decoder rows are unit norm now, so the rescaling the training used is the identity
        cfg["rescale_acts_by_decoder_norm"] = False
    inference = SAE.from_dict(cfg)
    inference.load_state_dict(state)
    return inference.eval()


def train_sae(
    out_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    model: str = "gemma3-270m",
    device: str | torch.device = "cpu",
    model_dtype: torch.dtype = torch.bfloat16,
    progress: bool = True,
) -> TrainResult:
    """Collect activations of ``model`` on the corpus, train an SAE and save it in ``out_dir``.

    Returns the saved path and the quality on held-out documents; the same figures, the recipe
    (``config``), the corpus and token counts are written to ``cfg.json``'s ``metadata``.
    """
    seconds: dict[str, float] = {}
    tic = time.perf_counter()
    loaded = load_model(model, device=device, dtype=model_dtype)
    validate_layer(loaded.model, config.layer)
    if loaded.tokenizer is None:
        raise FileNotFoundError(f"model: no tokenizer found beside the weights of {model}")
    split = split_corpus(
        loaded.tokenizer,
        config.corpora,
        window=config.window,
        heldout_fraction=config.heldout_fraction,
        seed=config.seed,
    )
    seconds["load"] = time.perf_counter() - tic
    tic = time.perf_counter()
    inner = getattr(loaded.model, "base_model", loaded.model)  # skip the LM head
    train_acts = collect_activations(inner, split.train, config.layer, progress=progress)
    heldout_acts = collect_activations(inner, split.heldout, config.layer, progress=progress)
    seconds["collect"] = time.perf_counter() - tic
    tic = time.perf_counter()
    sae = fit_sae(train_acts, config, device=device, progress=progress)
    seconds["fit"] = time.perf_counter() - tic
    tic = time.perf_counter()
    heldout = evaluate_sae(sae, heldout_acts)
    sample = torch.randperm(train_acts.shape[0], generator=torch.Generator().manual_seed(0))
    train = evaluate_sae(sae, train_acts[sample[:65_536]])
    seconds["evaluate"] = time.perf_counter() - tic
    record_metadata(sae, config, split, loaded.name, model_dtype, heldout, train)
    path = Path(out_dir)
    sae.save_model(path)
    return TrainResult(path, heldout, train, split.n_train_tokens, seconds)


def record_metadata(
    sae: SAE[Any],
    config: TrainConfig,
    split: CorpusSplit,
    model_name: str,
    model_dtype: torch.dtype,
    heldout: SAEQuality,
    train: SAEQuality,
) -> None:
    """Write how ``sae`` was trained into its ``cfg.metadata`` (saved with it by ``save_model``).

    The model, hook and layer, the corpus split's documents and tokens, the recipe (``config``) and the
    quality on held-out and training tokens: what ``load_sae`` and the report's provenance read back.
    """
    meta = sae.cfg.metadata
    meta.model_name = model_name
    meta.hook_name = f"blocks.{config.layer}.hook_resid_post"
    meta.layer = config.layer
    meta.context_size = config.window
    meta.prepend_bos = True
    meta.width = config.width
    meta.seed = config.seed
    meta.corpus = list(split.corpora)
    meta.corpus_documents = {k: list(v) for k, v in split.n_documents.items()}
    meta.n_train_tokens = split.n_train_tokens
    meta.n_heldout_tokens = split.n_heldout_tokens
    meta.activation_dtype = str(model_dtype).removeprefix("torch.")
    meta.recipe = {**asdict(config), "corpora": list(config.corpora)}
    meta.explained_variance = heldout.explained_variance
    meta.mean_l0 = heldout.mean_l0
    meta.dead_fraction = heldout.dead_fraction
    meta.train_explained_variance = train.explained_variance
    meta.train_mean_l0 = train.mean_l0
