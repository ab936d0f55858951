"""TRAC: a parameter-free wrapper that scales how far the optimizer moves from θ_ref.

The benchmark's optimizer (with the method's gradient parts) runs as the *base*; TRAC
keeps the parameters on the ray from a reference point,

    θ_t = θ_ref + S_t · Δ_t,

with Δ the base's accumulated updates and the scale S learned online from how well the
gradient agrees with the direction Δ. Per step t, with the gradient g_t at θ_t:

    h_t   = ⟨g_t, Δ_t⟩                            (over every parameter)
    Δ_t+1 = Δ_t + u_t                             (u_t: the base's update)
    for each β_j:  v_j ← β_j² v_j + h_t²,   σ_j ← β_j σ_j − h_t   (h_t: see ``clamped``)
                   s_j = s_init / erfi(1/√2) · erfi(σ_j / (√2 · √v_j + ε))
    S_t+1 = Σ_j s_j,   θ_t+1 = θ_ref + max(S_t+1, 0) · Δ_t+1

θ_ref is the parameters at the first step, kept as an :class:`lopkit.nets.Anchor`, and Δ
(the base iterate's offset, carried in the state) is params-shaped, so a unit reset sets
the unit's reference to its new values and its Δ to 0 (it restarts at its fresh values),
``reset_all`` restarts TRAC. g_t is the raw gradient of the update (before ``l2`` and the
other gradient parts). TRAC is an ``update`` part that receives the step's raw gradient
as the extra argument ``grads``; listed after other update parts' remedies it sees their
updates as part of u_t. A change of θ that is not a reset (weight clipping, hare &
tortoise's reset, a boundary shrink) is overwritten by the next step's θ_ref + S·Δ.

Where the paper and its code differ: the official implementation does not carry Δ; it
recovers it each step as Δ_t = (θ_t − θ_ref)/(S_t + ε) (``delta="recovered"``; σ starts at
1e-8 and the scale is clamped at 0 in both). That recovery loses Δ whenever the clamped
scale is 0 — θ = θ_ref, so Δ = 0 and h = 0 from then on, and the ratio σ_j/√v_j, hence S,
never changes again: the network stays at θ_ref for good. On SCR with SGD this happened
within the first steps (S ≈ −5e-8 after 200 steps, the error of the initial network), so
the carried Δ — the base optimizer's own iterate, which the method describes as running
unchanged underneath TRAC — is the default. The paper's Algorithm 1 was not compared
with either reading line by line here.

What bounds the scale: nothing but the clamp, in lopkit and in both official versions.
The PyTorch code (package/src/trac_optimizer/trac.py) starts s at 0, v at 0, σ at 1e-8
(lines 125–128), sums one h over every parameter group (200–215), updates v, σ and s in
float32 exactly as above with ε only inside the erfi argument (234–241, raising an error
if s is NaN), and clamps only the sum, max(Σ_j s_j, 0) (253); no s_j, sum or ratio has a
maximum. The JAX version (package/src/trac_optimizer/experimental/jax/trac.py) starts s
at s_init (82) and does not clamp at all (104–106). So the scale can reach ±inf in float32
(erfi overflows past |x| ≈ 9.4) in every reading.

The explosions this allows (``clamped="raw"``, the code's rule and the default): while
S_t < 0 the params sit at θ_ref, so h_t = ⟨∇f(θ_ref), Δ_t⟩ no longer depends on S — the
tuners integrate it open loop. A run of h > 0 (the loss at θ_ref rises along Δ) drives the
σ_j of the faster tuners far below 0 (S down to −8e24, or −inf, on SCR), and when h turns
negative (the target changed) the fastest tuners grow positive while a slower one is still
hugely negative; S = Σ_j s_j is then a difference of huge terms and crosses 0 by as much as
the integration made it, not by what the loss asks: on SCR (quick, seed 3, s_init 1e-8)
S went from −1.1e3 to +1.1e4 in one step (its median over the run: 0.028), the gradient at
θ_ref + 1.1e4·Δ had norm 1e16 and the base step added it to Δ. ``clamped="surrogate"``
feeds the tuners ĥ_t = min(h_t, 0) while S_t < 0 (h_t otherwise): the reduction of a
constrained online learner to an unconstrained one (Cutkosky & Orabona, COLT 2018), whose
surrogate gradient ½(h + |h|·∂dist(S)) with dist(S) = max(−S, 0) is min(h, 0) outside the
domain S ≥ 0 — a gradient that would push the clamped S further below 0 is dropped, one
that pushes it back is kept. This is not in TRAC's paper or code (a named option, not the
default); on SCR it removed every exploding bin (docs/remedies.md). With
``delta="recovered"`` it changes nothing (h = 0 while clamped).

References:
  Muppidi, Zhang & Yang. Fast TRAC: a parameter-free optimizer for lifelong reinforcement
  learning. NeurIPS 2024 (β ∈ {0.9, 0.99, …, 0.999999}, s_init 1e-8, ε 1e-8).
  Public code read (not copied): ComputationalRobotics/TRAC,
  package/src/trac_optimizer/trac.py (``_step``; defaults of ``start_trac``) and
  package/src/trac_optimizer/experimental/jax/trac.py.
  Cutkosky & Orabona. Black-box reductions for parameter-free online learning in Banach
  spaces. COLT 2018 (the constrained-domain reduction behind ``clamped="surrogate"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lopkit._config import field
from lopkit.methods._base import Context, Parts, Remedy
from lopkit.nets._units import Anchor

BETAS = (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999)


@dataclasses.dataclass(frozen=True)
class TRACConfig:
    """TRAC (Muppidi et al. 2024): the official defaults."""

    betas: tuple[float, ...] = field(BETAS, "the β_j of the averaged ⟨g, Δ⟩ terms",
                                     unit_interval=True)  # fmt: skip
    s_init: float = field(1e-8, "s_init: the scale of each erfi term", positive=True, axis=True)
    eps: float = field(1e-8, "ε", positive=True)
    delta: str = field(
        "carried",
        "carried: Δ accumulates the base's updates (a base iterate kept apart); recovered: "
        "Δ = (θ − θ_ref)/(S + ε) each step (the official code)",
        choices=("carried", "recovered"),
    )
    clamped: str = field(
        "raw",
        "what the tuners see while the scale is clamped (S_t < 0, θ_t = θ_ref): raw: h_t "
        "(the official code); surrogate: min(h_t, 0) (Cutkosky & Orabona's reduction to a "
        "constrained domain; not in TRAC's sources)",
        choices=("raw", "surrogate"),
    )


def erfi(x: jax.Array) -> jax.Array:
    """The imaginary error function erfi(x) = −i·erf(ix) = 2/√π · e^{x²} · D(x) (D: Dawson)."""
    return 2.0 / np.sqrt(np.pi) * jnp.exp(x * x) * jax.scipy.special.dawsn(x)


class TRACState(NamedTuple):
    reference: Anchor  # θ_ref
    delta: Any  # Δ, params-shaped (a moment: a unit reset zeroes the unit's Δ); () if recovered
    s: jax.Array  # [n] the s_j of the last step
    variance: jax.Array  # [n] v_j
    sigma: jax.Array  # [n] σ_j


def trac(
    betas: tuple[float, ...] = BETAS,
    s_init: float = 1e-8,
    eps: float = 1e-8,
    delta: str = "carried",
    clamped: str = "raw",
) -> optax.GradientTransformationExtraArgs:
    """TRAC as a transformation after the base optimizer: ``updates`` are the base's u_t,
    ``params`` θ_t, the extra argument ``grads`` the gradient g_t at θ_t."""
    b = jnp.asarray(betas, jnp.float32)
    carried = delta == "carried"

    def init(params):
        n = len(betas)
        offset0 = jax.tree_util.tree_map(jnp.zeros_like, params) if carried else ()
        return TRACState(
            Anchor(jax.tree_util.tree_map(lambda p: jnp.array(p, copy=True), params)),
            offset0,
            jnp.zeros((n,), jnp.float32),
            jnp.zeros((n,), jnp.float32),
            jnp.full((n,), 1e-8, jnp.float32),
        )

    def update(updates, state, params=None, *, grads: Any = None, **extra: Any):
        if params is None or grads is None:
            raise ValueError("trac needs params and the step's gradient (extra argument 'grads')")
        ref = state.reference.params
        if carried:
            offset = state.delta
        else:
            total = jnp.sum(state.s)
            offset = jax.tree_util.tree_map(lambda p, r: (p - r) / (total + eps), params, ref)
        h = sum(
            jnp.vdot(d, g)
            for d, g in zip(jax.tree_util.tree_leaves(offset), jax.tree_util.tree_leaves(grads),
                            strict=True)
        )  # fmt: skip
        offset = jax.tree_util.tree_map(jnp.add, offset, updates)
        if clamped == "surrogate":  # S_t < 0: θ_t = θ_ref, drop what pushes S further down
            h = jnp.where(jnp.sum(state.s) < 0.0, jnp.minimum(h, 0.0), h)
        variance = b**2 * state.variance + h**2
        sigma = b * state.sigma - h
        norm = erfi(jnp.float32(1.0 / np.sqrt(2.0)))
        s = s_init / norm * erfi(sigma / (np.sqrt(2.0) * jnp.sqrt(variance) + eps))
        scale = jnp.maximum(jnp.sum(s), 0.0)
        new = jax.tree_util.tree_map(
            lambda p, r, d: r + d * scale - p, params, ref, offset
        )  # θ_t+1 − θ_t
        kept = offset if carried else ()
        return new, TRACState(state.reference, kept, s, variance, sigma)

    return optax.GradientTransformationExtraArgs(init, update)


def _build(config: TRACConfig, ctx: Context) -> Parts:
    return Parts(
        update=trac(tuple(config.betas), config.s_init, config.eps, config.delta, config.clamped)
    )


TRAC = Remedy(
    name="trac",
    summary="parameter-free scale of the optimizer's offset from θ_ref (erfi of averaged ⟨g, Δ⟩)",
    source="Muppidi, Zhang & Yang 2024 (NeurIPS), Fast TRAC",
    config=TRACConfig,
    build=_build,
    parts=("update",),
)
