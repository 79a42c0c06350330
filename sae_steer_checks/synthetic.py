"""The planted-feature world: a toy SAE and contrastive activations whose answers are known.

Each of the study's three mechanisms holds here by construction:

1. **Small norm, encoder bias wins.** Every ordinary activation carries a large *default component*
   that points strongly negatively along the *bias features*. The SAE absorbs that mean (in ``b_enc``
   under Gemma Scope's JumpReLU convention, in ``b_dec`` when it subtracts ``b_dec`` first), so the bias
   features sit below threshold on real activations but fire at about ``bias_value`` on the zero
   vector, and on any steering vector, which lacks the default component.
2. **Negative projections are lost.** A ``negative_fraction`` of the behaviour features fire more on negative
   prompts than on positive ones; the steering vector writes negatively along them and a
   non-negative SAE drops them.
3. **Negatively aligned pairs.** Each of the first ``n_aligned_pairs`` negative-leaning features has a *rare*
   partner whose decoder row has cosine exactly ``pair_cosine`` with its own. The negative projection on the
   feature shows up as a spurious positive coefficient on the partner.

The decoder rows are unit-norm; the encoder is tied to them (``W_enc = W_dec.T``), so a feature's
pre-activation is the projection of the centred input on its direction plus a small offset. Bias and
behaviour directions are orthonormal and orthogonal to every other decoder row (a partner excepted), so
SAE(0) fires exactly the bias features, only planted features lean, and every unplanted pair of decoder
rows has cosine above ``min_unplanted_cosine``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from sae_lens import (
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from sae_lens.saes.sae import SAE
from torch import Tensor

__all__ = ["GroundTruth", "PlantedWorld", "WorldConfig", "build_world"]

Architecture = Literal["jumprelu", "relu", "topk"]
_ARCHITECTURES = ("jumprelu", "relu", "topk")
_MAX_RESAMPLE_ROUNDS = 100


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a planted world; the same config gives bit-identical tensors."""

    d_model: int = 256
    """Width of the residual stream."""
    d_sae: int = 512
    """Number of SAE features."""
    architecture: Architecture = "jumprelu"
    """``jumprelu`` (Gemma Scope's convention), ``relu`` (sae-lens StandardSAE) or ``topk``."""
    topk_k: int = 16
    """k of the TopK architecture."""
    n_aligned_pairs: int = 2
    """Negative-leaning behaviour features given a rare partner at cosine ``pair_cosine``."""
    pair_cosine: float = -0.82
    """Exact decoder cosine of each planted pair."""
    n_dead_pairs: int = 0
    """Extra planted pairs between features that never fire."""
    min_unplanted_cosine: float = -0.4
    """Every unplanted pair of decoder rows has cosine above this."""
    n_bias_features: int = 3
    """Features that fire on the zero vector but not on ordinary activations (like Gemma Scope's 4888)."""
    bias_value: float = 86.2
    """Activation of each bias feature on the zero vector."""
    default_norm: float = 200.0
    """Norm of the default component shared by all activations (removed by CAA subtraction)."""
    feature_magnitude: float = 10.0
    """Typical coefficient of an active ordinary feature (drawn from 0.5x to 1.5x this)."""
    n_active: int = 4
    """Ordinary features active in each activation."""
    n_behaviour_features: int = 8
    """Features whose activation differs between positive and negative prompts."""
    negative_fraction: float = 0.5
    """Fraction of the behaviour features that are more active on negative prompts."""
    behaviour_magnitude: float = 8.0
    """Typical planted lean of a behaviour feature (0.75x..1.25x this; per pair 0.5x..1.5x its lean)."""
    n_nuisance: int = 2
    """Behaviour-unrelated features drawn independently for each positive and each negative prompt."""
    threshold: float = 4.0
    """JumpReLU threshold; for ReLU and TopK the encoder offset is ``-threshold``."""
    noise: float = 0.05
    """Standard deviation of isotropic Gaussian noise per coordinate."""
    seed: int = 0
    """Seed of every random draw in the world's construction."""
    readout_features: int = 0
    """0: the behaviour readout is the planted steering vector (the behaviour features' orthonormal rows).
    k > 0: it is a signed sparse combination of k ordinary decoder rows (``negative_fraction`` of them
    negative), rows that overlap others as an SAE's do; drawn from a stream of its own, so the rest of
    the world is the same as with 0."""

    def __post_init__(self) -> None:
        _require(self.d_model >= 2, "d_model", self.d_model, "an integer >= 2")
        _require(
            self.architecture in _ARCHITECTURES,
            "architecture",
            self.architecture,
            f"one of {_ARCHITECTURES}",
        )
        _require(-1.0 <= self.pair_cosine <= 1.0, "pair_cosine", self.pair_cosine, "in [-1, 1]")
        _require(
            0.0 <= self.negative_fraction <= 1.0,
            "negative_fraction",
            self.negative_fraction,
            "in [0, 1]",
        )
        _require(
            -1.0 <= self.min_unplanted_cosine < 1.0,
            "min_unplanted_cosine",
            self.min_unplanted_cosine,
            "in [-1, 1)",
        )
        if self.n_aligned_pairs or self.n_dead_pairs:
            _require(
                self.pair_cosine < self.min_unplanted_cosine,
                "pair_cosine",
                self.pair_cosine,
                f"below min_unplanted_cosine={self.min_unplanted_cosine} so planted pairs stand out",
            )
        for name in (
            "n_aligned_pairs",
            "n_dead_pairs",
            "n_bias_features",
            "n_active",
            "n_behaviour_features",
            "n_nuisance",
            "seed",
            "readout_features",
        ):
            value = getattr(self, name)
            _require(isinstance(value, int) and value >= 0, name, value, "a non-negative integer")
        for name in (
            "bias_value",
            "default_norm",
            "feature_magnitude",
            "behaviour_magnitude",
            "threshold",
        ):
            value = getattr(self, name)
            _require(math.isfinite(value) and value > 0, name, value, "a finite number > 0")
        _require(
            math.isfinite(self.noise) and self.noise >= 0,
            "noise",
            self.noise,
            "a finite number >= 0",
        )
        _require(
            self.n_bias_features + self.n_behaviour_features < self.d_model // 2,
            "n_behaviour_features",
            self.n_behaviour_features,
            f"such that n_bias_features + n_behaviour_features < d_model // 2 = {self.d_model // 2} "
            "(their directions are kept orthogonal to all other features)",
        )
        _require(
            self.n_aligned_pairs <= self.n_negative,
            "n_aligned_pairs",
            self.n_aligned_pairs,
            f"at most the number of negative-leaning features ({self.n_negative})",
        )
        _require(
            self.d_sae >= self.n_planted + self.n_active + 2 * self.n_nuisance,
            "d_sae",
            self.d_sae,
            f">= {self.n_planted + self.n_active + 2 * self.n_nuisance} to hold the "
            f"{self.n_planted} planted features plus n_active and nuisance draws",
        )
        default_per_bias = self.default_norm / math.sqrt(max(self.n_bias_features, 1))
        if self.n_bias_features:
            _require(
                self.bias_value < default_per_bias,
                "bias_value",
                self.bias_value,
                f"below default_norm/sqrt(n_bias_features)={default_per_bias:.4g}, so bias "
                "features stay silent on ordinary activations",
            )
        _require(
            self.readout_features <= self.d_sae - self.n_planted,
            "readout_features",
            self.readout_features,
            f"at most the number of ordinary features ({self.d_sae - self.n_planted})",
        )
        if self.architecture == "topk":
            _require(
                1 <= self.topk_k <= self.d_sae, "topk_k", self.topk_k, f"an integer in 1..d_sae={self.d_sae}"
            )

    @property
    def n_negative(self) -> int:
        """Number of negative-leaning behaviour features."""
        return round(self.negative_fraction * self.n_behaviour_features)

    @property
    def n_planted(self) -> int:
        """Features with a planted role: bias, behaviour, partners and dead pairs."""
        return self.n_bias_features + self.n_behaviour_features + self.n_aligned_pairs + 2 * self.n_dead_pairs


@dataclass(frozen=True)
class GroundTruth:
    """The planted answers every diagnostic can be checked against."""

    bias_features: tuple[int, ...]
    """Features active on the zero vector and silent on ordinary activations."""
    positive_features: tuple[int, ...]
    """Behaviour features more active on positive prompts."""
    negative_features: tuple[int, ...]
    """Behaviour features more active on negative prompts."""
    rare_features: tuple[int, ...]
    """Partners of the planted pairs: never sampled as features; they fire only through crosstalk (rarely)."""
    dead_features: tuple[int, ...]
    """Features of the dead pairs: they never fire on sampled activations."""
    ordinary_features: tuple[int, ...]
    """Features drawn into ordinary activations and as nuisance features."""
    pairs: tuple[tuple[int, int, float], ...]
    """(negative-leaning feature, rare partner, exact decoder cosine)."""
    dead_pairs: tuple[tuple[int, int, float], ...]
    """(dead feature, dead feature, exact decoder cosine)."""
    lean: Tensor
    """[d_sae] planted mean of (positive - negative) coefficient per feature."""
    default_component: Tensor
    """[d_model] the component shared by every activation."""
    readout: Tensor
    """[d_model] linear behaviour readout: the behaviour score of a steering vector u is readout @ u
    (the steering vector, or its part along one leaning side's features: ``WorldConfig.readout``)."""
    readout_code: Tensor
    """[d_sae] signed sparse coefficients with ``readout_code @ W_dec == readout``: ``lean`` by default,
    ``readout_features`` ordinary rows when set (the best sparse steering direction is known)."""
    steering_vector: Tensor
    """[d_model] the expected CAA vector, lean @ W_dec."""


@dataclass(frozen=True)
class PlantedWorld:
    """A planted SAE with samplers of ordinary and contrastive activations."""

    config: WorldConfig
    """The config the world was built from."""
    sae: SAE
    """A real sae-lens SAE (JumpReLUSAE, StandardSAE or TopKSAE) with the planted weights."""
    truth: GroundTruth
    """The planted answers."""

    @property
    def W_dec(self) -> Tensor:
        """[d_sae, d_model] the unit-norm decoder rows."""
        return self.sae.W_dec.detach()

    def _generator(self, generator: torch.Generator | None, offset: int) -> torch.Generator:
        if generator is not None:
            return generator
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + offset)

    def _sparse(self, n: int, pool: Tensor, k: int, magnitude: float, gen: torch.Generator) -> Tensor:
        """[n, d_sae] coefficients: k distinct features of ``pool`` per row, in 0.5x..1.5x magnitude."""
        coeffs = torch.zeros(n, self.config.d_sae)
        if k == 0 or n == 0:
            return coeffs
        picks = torch.rand(n, pool.numel(), generator=gen).argsort(dim=1)[:, :k]
        values = magnitude * (0.5 + torch.rand(n, k, generator=gen))
        coeffs.scatter_(1, pool[picks], values)
        return coeffs

    def _to_model(self, coeffs: Tensor, gen: torch.Generator) -> Tensor:
        W_dec = self.W_dec.to(torch.float32).cpu()
        x = coeffs @ W_dec + self.truth.default_component.cpu()
        x = x + self.config.noise * torch.randn(x.shape, generator=gen)
        return x.to(device=self.sae.W_dec.device, dtype=self.sae.W_dec.dtype)

    def sample_activations(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ordinary activations: the default component plus ``n_active`` ordinary features and noise.

        Returns ``[n, d_model]``; norms are close to ``sqrt(default_norm**2 + n_active * ~magnitude**2)``.
        """
        _require(isinstance(n, int) and n >= 0, "n", n, "a non-negative integer")
        gen = self._generator(generator, 1)
        pool = torch.tensor(self.truth.ordinary_features)
        return self._to_model(
            self._sparse(n, pool, self.config.n_active, self.config.feature_magnitude, gen), gen
        )

    def sample_contrastive(
        self, n_pairs: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Positive and negative activations at the answer token, ``([n_pairs, d_model], ...)``.

        Both prompts of a pair share an ordinary context; positive-leaning features are added to the
        positive prompt and negative-leaning ones to the negative prompt, each with a per-pair strength
        of 0.5x..1.5x its planted lean; each prompt also gets ``n_nuisance`` independent ordinary features.
        """
        _require(isinstance(n_pairs, int) and n_pairs >= 0, "n_pairs", n_pairs, "a non-negative integer")
        cfg, truth = self.config, self.truth
        gen = self._generator(generator, 2)
        pool = torch.tensor(truth.ordinary_features)
        context = self._sparse(n_pairs, pool, cfg.n_active, cfg.feature_magnitude, gen)
        strength = 0.5 + torch.rand(n_pairs, cfg.d_sae, generator=gen)
        lean = truth.lean.cpu().to(torch.float32)
        pos = context + strength * lean.clamp(min=0)
        neg = context + strength * (-lean).clamp(min=0)
        pos = pos + self._sparse(n_pairs, pool, cfg.n_nuisance, cfg.feature_magnitude, gen)
        neg = neg + self._sparse(n_pairs, pool, cfg.n_nuisance, cfg.feature_magnitude, gen)
        return self._to_model(pos, gen), self._to_model(neg, gen)

    def behaviour_score(self, u: Tensor) -> float:
        """Exact planted behaviour change when ``u [d_model]`` is added to the residual stream."""
        if not isinstance(u, Tensor) or u.shape != (self.config.d_model,):
            raise ValueError(
                f"u must be a tensor of shape [{self.config.d_model}], got "
                f"{list(u.shape) if isinstance(u, Tensor) else type(u).__name__}"
            )
        return float(self.truth.readout.to(torch.float64) @ u.detach().cpu().to(torch.float64))

    def item_scores(self, u: Tensor, n_items: int = 32, spread: float = 0.5) -> Tensor:
        """Per-item behaviour change ``[n_items]`` (float64) when ``u [d_model]`` is added.

        Item i reads the behaviour through ``readout + spread * ||readout|| * g_i / sqrt(d_model)`` with
        ``g_i`` a fixed Gaussian draw (seeded by the world), so items agree on average (their mean is
        :meth:`behaviour_score` in expectation) and disagree item by item, like held-out prompts.
        """
        score = self.behaviour_score(u)  # validates u
        d = self.config.d_model
        gen = torch.Generator().manual_seed(self.config.seed + 7919)
        readout = self.truth.readout.detach().cpu().to(torch.float64)
        noise = torch.randn(n_items, d, generator=gen, dtype=torch.float64)
        readouts = readout + spread * float(readout.norm()) * noise / d**0.5
        out = readouts @ u.detach().cpu().to(torch.float64)
        return out if math.isfinite(score) else out * float("nan")


def build_world(
    config: WorldConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> PlantedWorld:
    """Build the planted world of ``config`` (default ``WorldConfig()``) on ``device`` in ``dtype``.

    Construction runs in float64 on the CPU from ``config.seed`` alone, so the same config gives
    bit-identical tensors whatever the device.
    """
    cfg = config if config is not None else WorldConfig()
    if not isinstance(cfg, WorldConfig):
        raise TypeError(f"config must be a WorldConfig, got {type(cfg).__name__}")
    gen = torch.Generator().manual_seed(cfg.seed)
    roles = torch.randperm(cfg.d_sae, generator=gen).tolist()
    cursor = 0

    def take(k: int) -> tuple[int, ...]:
        nonlocal cursor
        chosen = tuple(sorted(roles[cursor : cursor + k]))
        cursor += k
        return chosen

    bias = take(cfg.n_bias_features)
    behaviour = roles[cursor : cursor + cfg.n_behaviour_features]
    cursor += cfg.n_behaviour_features
    negative = tuple(sorted(behaviour[: cfg.n_negative]))
    positive = tuple(sorted(behaviour[cfg.n_negative :]))
    partners = roles[cursor : cursor + cfg.n_aligned_pairs]
    cursor += cfg.n_aligned_pairs
    dead_flat = roles[cursor : cursor + 2 * cfg.n_dead_pairs]
    cursor += 2 * cfg.n_dead_pairs
    ordinary = tuple(sorted(roles[cursor:]))

    anchors = list(negative[: cfg.n_aligned_pairs]) + dead_flat[0::2]
    followers = list(partners) + dead_flat[1::2]
    W_dec = _planted_decoder(cfg, bias + tuple(behaviour), anchors, followers, gen)

    lean = torch.zeros(cfg.d_sae, dtype=torch.float64)
    lean_sizes = cfg.behaviour_magnitude * (
        0.75 + 0.5 * torch.rand(cfg.n_behaviour_features, generator=gen, dtype=torch.float64)
    )
    for feature, size in zip(positive + negative, lean_sizes.tolist(), strict=True):
        lean[feature] = size if feature in positive else -size

    default_coef = cfg.default_norm / math.sqrt(max(cfg.n_bias_features, 1))
    default = torch.zeros(cfg.d_model, dtype=torch.float64)
    for b in bias:
        default -= default_coef * W_dec[b]
    # Offsets in centred coordinates: bias features sit (default_coef - bias_value) below zero on
    # ordinary activations; on an input without the default component they reach bias_value.
    offset = torch.zeros(cfg.d_sae, dtype=torch.float64)
    if cfg.architecture != "jumprelu":
        offset -= cfg.threshold
    # dead features sit far below any input they could meet
    offset[torch.tensor(dead_flat, dtype=torch.long)] = -cfg.default_norm
    for b in bias:
        offset[b] = cfg.bias_value - default_coef
    steering_vector = lean @ W_dec
    readout_code = _readout_code(cfg, ordinary, lean)

    sae = _make_sae(cfg, W_dec, offset, default, device, dtype)
    truth = GroundTruth(
        bias_features=bias,
        positive_features=positive,
        negative_features=negative,
        rare_features=tuple(sorted(partners)),
        dead_features=tuple(sorted(dead_flat)),
        ordinary_features=ordinary,
        pairs=tuple(
            (a, f, float(W_dec[a] @ W_dec[f]))
            for a, f in zip(anchors[: cfg.n_aligned_pairs], partners, strict=True)
        ),
        dead_pairs=tuple(
            (min(a, f), max(a, f), float(W_dec[a] @ W_dec[f]))
            for a, f in zip(dead_flat[0::2], dead_flat[1::2], strict=True)
        ),
        lean=lean.to(torch.float32),
        default_component=default.to(torch.float32),
        readout=(readout_code @ W_dec).to(torch.float32),
        readout_code=readout_code.to(torch.float32),
        steering_vector=steering_vector.to(torch.float32),
    )
    return PlantedWorld(config=cfg, sae=sae, truth=truth)


def _readout_code(cfg: WorldConfig, ordinary: tuple[int, ...], lean: Tensor) -> Tensor:
    """[d_sae] float64 code of the behaviour readout: ``lean``, or ``readout_features`` ordinary rows."""
    if cfg.readout_features == 0:
        return lean.clone()
    # a stream of its own: the world's other draws are those of readout_features = 0
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 5)
    k = cfg.readout_features
    picks = torch.tensor(ordinary)[torch.randperm(len(ordinary), generator=gen)[:k]]
    sizes = cfg.behaviour_magnitude * (0.75 + 0.5 * torch.rand(k, generator=gen, dtype=torch.float64))
    signs = torch.ones(k, dtype=torch.float64)
    signs[: round(cfg.negative_fraction * k)] = -1.0
    code = torch.zeros(cfg.d_sae, dtype=torch.float64)
    code[picks] = signs * sizes
    return code


def _planted_decoder(
    cfg: WorldConfig,
    orthogonal: tuple[int, ...],
    anchors: list[int],
    followers: list[int],
    gen: torch.Generator,
) -> Tensor:
    """[d_sae, d_model] float64 unit rows with the planted geometry (see the module docstring)."""
    W = torch.zeros(cfg.d_sae, cfg.d_model, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(cfg.d_model, cfg.d_model, generator=gen, dtype=torch.float64))
    # Bias and behaviour rows are orthonormal basis vectors; every other row lives in their orthogonal
    # complement, so neither the default component nor the behaviour leaks into unrelated features
    # (partners excepted: they carry ``pair_cosine`` of their anchor by design).
    for i, feature in enumerate(orthogonal):
        W[feature] = basis[:, i]
    complement = basis[:, len(orthogonal) :]
    others = [i for i in range(cfg.d_sae) if i not in set(orthogonal) and i not in set(followers)]
    follower_set = set(followers)

    def draw(k: int) -> Tensor:
        rows = torch.randn(k, complement.shape[1], generator=gen, dtype=torch.float64) @ complement.T
        return rows / rows.norm(dim=1, keepdim=True)

    def attach_followers() -> None:
        rho = cfg.pair_cosine
        for a, f in zip(anchors, followers, strict=True):
            u = torch.randn(cfg.d_model, generator=gen, dtype=torch.float64) @ complement @ complement.T
            u = u - (u @ W[a]) * W[a]
            u = u / u.norm()
            W[f] = rho * W[a] + math.sqrt(max(1.0 - rho * rho, 0.0)) * u

    index = torch.tensor(others + sorted(follower_set), dtype=torch.long)
    position = {int(feature): k for k, feature in enumerate(index.tolist())}
    planted = torch.zeros(len(index), len(index), dtype=torch.bool)
    for a, f in zip(anchors, followers, strict=True):
        if a in position:  # anchors of live pairs are basis rows, orthogonal to everything resampled
            planted[position[a], position[f]] = planted[position[f], position[a]] = True
    is_follower = torch.tensor([int(i) in follower_set for i in index.tolist()], dtype=torch.bool)
    W[torch.tensor(others, dtype=torch.long)] = draw(len(others))
    attach_followers()
    for _ in range(_MAX_RESAMPLE_ROUNDS):
        sub = W[index]
        bad = torch.triu(sub @ sub.T < cfg.min_unplanted_cosine, diagonal=1) & ~planted
        if not bad.any():
            return W
        rows_i, rows_j = bad.nonzero(as_tuple=True)
        # resample a non-follower end of each offending pair so planted cosines stay exact
        pick = torch.where(is_follower[rows_j], rows_i, rows_j)
        pick = pick[~is_follower[pick]].unique()
        W[index[pick]] = draw(len(pick))
        attach_followers()
    raise ValueError(
        f"d_model={cfg.d_model} is too small to keep every unplanted decoder cosine above "
        f"min_unplanted_cosine={cfg.min_unplanted_cosine} for d_sae={cfg.d_sae}: raise d_model, "
        "lower d_sae or lower min_unplanted_cosine"
    )


def _make_sae(
    cfg: WorldConfig,
    W_dec: Tensor,
    offset: Tensor,
    default: Tensor,
    device: str | torch.device,
    dtype: torch.dtype,
) -> SAE:
    """A sae-lens SAE whose encoder computes ``(x - default) @ W_dec.T + offset``."""
    common = {"d_in": cfg.d_model, "d_sae": cfg.d_sae, "dtype": "float32", "device": "cpu"}
    W_enc = W_dec.T.contiguous()
    sae: SAE
    if cfg.architecture == "jumprelu":
        # Gemma Scope's convention: b_dec is not subtracted, the mean is absorbed into b_enc.
        sae = JumpReLUSAE(JumpReLUSAEConfig(apply_b_dec_to_input=False, **common))
        b_enc = offset - default @ W_enc
    elif cfg.architecture == "relu":
        sae = StandardSAE(StandardSAEConfig(apply_b_dec_to_input=True, **common))
        b_enc = offset
    else:
        sae = TopKSAE(TopKSAEConfig(apply_b_dec_to_input=True, k=cfg.topk_k, **common))
        b_enc = offset
    state = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": default}
    if cfg.architecture == "jumprelu":
        state["threshold"] = torch.full((cfg.d_sae,), cfg.threshold, dtype=torch.float64)
    with torch.no_grad():
        for name, value in state.items():
            getattr(sae, name).copy_(value.to(torch.float32))
    sae.to(device=device, dtype=dtype)
    sae.eval()
    for param in sae.parameters():
        param.requires_grad_(False)
    return sae


def _require(ok: bool, field: str, value: object, expected: str) -> None:
    if not ok:
        raise ValueError(f"WorldConfig.{field} must be {expected}, got {value!r}")
