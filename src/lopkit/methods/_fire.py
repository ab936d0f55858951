"""FIRE: Frobenius-isometry reinitialization — each weight replaced by its nearest isometry.

At each reset point, every weight matrix W (every layer's, the output layer's included;
biases and normalization parameters are kept) is replaced by the solution of

    min_W̃ ‖W̃ − W‖²_F  subject to  W̃ᵀW̃ = I     (closest to the old weights, isometric),

the orthogonal polar factor W̃ = W (WᵀW)^(−1/2) (= U Vᵀ for W = U Σ Vᵀ; the orthogonal
Procrustes solution), approximated by Newton–Schulz iterations: with W made tall
(transposed when it has more columns than rows) and X₀ = W / ‖W‖_F,

    X ← 1.5 X − 0.5 X (XᵀX),

``iterations`` times (10 in the official code; each iteration moves a singular value x
toward 1 as x ← 1.5x − 0.5x³, so a singular value below ‖W‖_F / 1.5^N is not yet at 1 after N
iterations). The optimizer state is kept.

Reset points: the first step of every new task (``every = 0``, a boundary event: "apply FIRE
before training on new data"), or after every N-th update (``every = N``, a rule after the
update), for streams without task boundaries.

``scale`` (the official code, README ``fire`` and ``vision/interventions/fire.py``): after
the orthogonalization the code multiplies each weight by √(d_out / d_in), and orthogonalizes a
conv kernel one spatial position at a time (each ``[c_in, c_out]`` slice), dividing by the
kernel's size kh·kw. ``scale="none"`` (default) is the paper's closed form W(WᵀW)^(−1/2)
with the unfolded kernel ``[kh·kw·c_in, c_out]`` as the matrix; ``scale="code"`` is the
code's (per-position kernels, √(d_out / d_in) / (kh·kw)).

References:
  Han, Park, Oh, Kim, Lee & Kim. FIRE: Frobenius-isometry reinitialization for balancing
  the stability–plasticity tradeoff. ICLR 2026. Official code github.com/isaac7778/FIRE.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._seeds import any_seed
from lopkit.methods._base import BoundaryEvent, Context, Parts, Remedy, UnitRule
from lopkit.methods._matrices import update_leaves, weight_paths


@dataclasses.dataclass(frozen=True)
class FIREConfig:
    """FIRE (Han et al. 2026): 10 Newton–Schulz iterations (the official code's default)
    at every task boundary."""

    iterations: int = field(10, "Newton–Schulz iterations", positive=True)
    every: int = field(
        0, "0: at each task boundary; N > 0: after every N-th update instead", nonnegative=True
    )
    scale: str = field(
        "none",
        "none: the polar factor W(WᵀW)^(−1/2) (paper); code: the official code's "
        "√(d_out/d_in) scale and per-position conv kernels",
        choices=("none", "code"),
    )


def newton_schulz(m: jax.Array, iterations: int) -> jax.Array:
    """The orthogonal polar factor of matrix ``m``, approximated by ``iterations`` cubic
    Newton–Schulz steps from m / ‖m‖_F."""
    wide = m.shape[1] > m.shape[0]
    x = m.T if wide else m
    x = x / jnp.maximum(jnp.linalg.norm(x), jnp.finfo(x.dtype).tiny)
    for _ in range(iterations):
        # einsums, not x.T @ x: the same lowering for a batch of runs and for one run
        x = 1.5 * x - 0.5 * jnp.einsum("ij,jk->ik", x, jnp.einsum("ij,ik->jk", x, x))
    return x.T if wide else x


def isometry(w: jax.Array, iterations: int, scale: str = "none") -> jax.Array:
    """FIRE's replacement of one weight ``w`` (``[fan_in, units]`` or ``[kh, kw, c_in, c_out]``)."""
    if scale == "none":
        return newton_schulz(w.reshape(-1, w.shape[-1]), iterations).reshape(w.shape)
    # the official code: torch weights are [d_out, d_in]; lopkit's are [d_in, d_out]
    d_in, d_out = w.shape[-2], w.shape[-1]
    factor = math.sqrt(d_out / d_in)
    if w.ndim == 2:
        return newton_schulz(w, iterations) * factor
    kh, kw = w.shape[0], w.shape[1]
    slices = jax.vmap(jax.vmap(lambda s: newton_schulz(s, iterations)))(w)
    return slices * (factor / (kh * kw))


def _build(config: FIREConfig, ctx: Context) -> Parts:
    shapes = jax.eval_shape(ctx.net.init, jax.random.PRNGKey(0))
    paths = weight_paths(shapes)

    def fire(params):
        return update_leaves(
            params, paths, lambda path, w: isometry(w, config.iterations, config.scale)
        )

    if config.every == 0:

        def event(params, opt_state, key):
            return fire(params), opt_state

        return Parts(boundary=BoundaryEvent(event))

    def init(params):
        return ()

    def apply(state, params, opt_state, trace, key, step):
        due = (step + 1) % config.every == 0  # after updates N, 2N, … (step counts from 0)

        def renew(p):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(due, a, b), fire(p), p)

        # only on steps where some run of the batch is due (every run, when all count alike)
        params = jax.lax.cond(any_seed(due), renew, lambda p: p, params)
        return state, params, opt_state

    return Parts(unit_rule=UnitRule(init, apply))


FIRE = Remedy(
    name="fire",
    summary="at each task start (or every N steps) each weight → nearest isometry (Newton–Schulz)",
    source="Han, Park, Oh, Kim, Lee & Kim 2026 (ICLR); official code isaac7778/FIRE",
    config=FIREConfig,
    build=_build,
    parts=("boundary", "unit_rule"),
)
