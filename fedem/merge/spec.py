"""Which merge to run: the method registry and :class:`MergeSpec`, the validated settings of one merge.

Every method is a setting of one generalized task-arithmetic merge (mergekit's good idea, see
BRIEF §10–11): for each tensor W₀ that adapters 1…K touch, with ΔWₖ = sₖ·Bₖ·Aₖ and sₖ = αₖ/rₖ,

    τₖ = sparsify(ΔWₖ)                          none | magnitude top-k | DARE Bernoulli
    δ  = consensus(w₁τ₁ … w_Kτ_K)               none (Σ wₖτₖ) | TIES sign election
    δ  = δ / normalizer   (when normalize)       Σ wₖ, or for TIES the Σ wₖ that agree
    W  = W₀ + λ·δ                                in fp32, rounded once to W₀'s dtype

A method is a small frozen object in :data:`METHODS`, not a branch in an if/elif; the exact
formulas, the papers and where PEFT and mergekit differ are in ``docs/merging.md``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from fedem.config import Invalid
from fedem.errors import ConfigError

Sparsify = Literal["none", "magnitude", "bernoulli"]
Rescale = Literal["inverse", "l1", "none"]

# Which rescales make sense after which sparsifier: 1/p undoes a Bernoulli drop's expected
# shrinkage; after a deterministic top-k it has no meaning, and without sparsifying nothing shrank.
_RESCALES: dict[str, tuple[str, ...]] = {
    "none": ("none",),
    "magnitude": ("none", "l1"),
    "bernoulli": ("inverse", "l1", "none"),
}


@dataclasses.dataclass(frozen=True)
class Method:
    """One named setting of the generalized merge, with its defaults."""

    name: str
    sparsify: Sparsify
    ties: bool  # elect a sign per entry and keep only the agreeing deltas
    normalize: bool  # default: divide by the (agreeing) weights
    rescale: Rescale  # default rescale after sparsifying
    density: float | None  # default keep fraction; None: the user must choose (no paper default)
    reference: str

    @property
    def low_rank(self) -> bool:
        """True when the merge is linear in the factors, so ΔW never has to be formed per adapter."""
        return self.sparsify == "none" and not self.ties


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


for _m in (
    Method("linear", "none", False, False, "none", None, "Ilharco et al. 2023, arXiv:2212.04089"),
    # TIES keeps the top 20% by default, the paper's recommended k (Yadav et al. 2023, §4).
    Method("ties", "magnitude", True, True, "none", 0.2, "Yadav et al. 2023, arXiv:2306.01708"),
    Method("dare_linear", "bernoulli", False, False, "inverse", None, "Yu et al. 2024, arXiv:2311.03099"),
    Method("dare_ties", "bernoulli", True, True, "inverse", None, "Yu et al. 2024, arXiv:2311.03099"),
):
    register_method(_m)


@dataclasses.dataclass(frozen=True)
class MergeSpec:
    """The method and its parameters. ``None`` means the method's default (see :data:`METHODS`).

    - ``weights``: wₖ, one per adapter in the order given (None: all 1.0);
    - ``density``: the fraction kept by the sparsifier, in (0, 1] (TIES: top-k; DARE: keep
      probability p). Linear does not sparsify and takes none;
    - ``lambda_``: λ, the scale of the combined delta (mergekit's ``lambda``);
    - ``seed``: DARE's masks derive from it (and each adapter's hash and tensor name);
    - ``rescale``: after sparsifying, ``inverse`` (÷p, the DARE paper), ``l1`` (match each
      tensor's L1 norm, mergekit's choice) or ``none``;
    - ``normalize``: divide by Σ wₖ (linear, DARE-linear) or by the agreeing Σ wₖ (TIES).
    """

    method: str = "linear"
    weights: tuple[float, ...] | None = None
    density: float | None = None
    lambda_: float = 1.0
    seed: int = 0
    rescale: Rescale | None = None
    normalize: bool | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise Invalid("method", f"one of {', '.join(METHODS)} (got {self.method!r})")
        m = METHODS[self.method]
        if self.weights is not None:
            if not self.weights:
                raise Invalid("weights", "at least one weight, or null for all 1.0")
            if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in self.weights):
                raise Invalid("weights", "finite numbers")
            if (m.ties or self.normalized) and not all(w > 0 for w in self.weights):
                raise Invalid("weights", f"numbers > 0 for {self.method} (it divides by agreeing weights)")
        if self.density is not None:
            if m.sparsify == "none":
                raise Invalid(
                    "density", f"null for {self.method}, which does not sparsify (use ties or dare_*)"
                )
            if not (math.isfinite(self.density) and 0 < self.density <= 1):
                raise Invalid("density", f"a number in (0, 1] (got {self.density!r})")
        elif m.sparsify != "none" and m.density is None:
            raise Invalid("density", f"a keep probability in (0, 1] for {self.method}, e.g. 0.5 (no default)")
        if not math.isfinite(self.lambda_):
            raise Invalid("lambda_", "a finite number")
        if type(self.seed) is not int or self.seed < 0:
            raise Invalid("seed", "an integer >= 0")
        if self.rescale is not None and self.rescale not in _RESCALES[m.sparsify]:
            raise Invalid("rescale", f"one of {', '.join(_RESCALES[m.sparsify])} for {self.method}")

    @property
    def definition(self) -> Method:
        return METHODS[self.method]

    @property
    def keep(self) -> float:
        """The density in effect (1.0 when the method does not sparsify)."""
        if self.density is not None:
            return self.density
        return self.definition.density if self.definition.density is not None else 1.0

    @property
    def rescaling(self) -> Rescale:
        return self.rescale if self.rescale is not None else self.definition.rescale

    @property
    def normalized(self) -> bool:
        return self.normalize if self.normalize is not None else self.definition.normalize

    def weights_for(self, n: int) -> tuple[float, ...]:
        """wₖ for ``n`` adapters; ConfigError (one line) when the count does not match."""
        if n < 1:
            raise ConfigError("adapters: a merge needs at least one adapter")
        if self.weights is None:
            return (1.0,) * n
        if len(self.weights) != n:
            raise ConfigError(
                f"weights: {len(self.weights)} given for {n} adapter{'s' if n != 1 else ''}; give one per adapter"
            )
        return tuple(float(w) for w in self.weights)

    def record(self, n: int) -> dict:
        """Every setting in effect, as recorded in the output's ``fedem.json``."""
        m = self.definition
        return {
            "method": self.method,
            "sparsify": m.sparsify,
            "ties": m.ties,
            "weights": list(self.weights_for(n)),
            "density": self.keep if m.sparsify != "none" else None,
            "rescale": self.rescaling,
            "normalize": self.normalized,
            "lambda": self.lambda_,
            "seed": self.seed if m.sparsify == "bernoulli" else None,
            "reference": m.reference,
        }
