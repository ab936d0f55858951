"""DASH: direction-aware shrinking at each task boundary.

At a warm start (the first step of every new task), each unit's weights are shrunk by how
well they align with the negative gradient of the loss on recent data:

    s_i = clip(cos(w_i, −ḡ_i), λ, 1),   w_i ← s_i · w_i

so weights that point where the loss wants them to go (learned features) are kept, and
weights that do not (memorized noise) shrink toward 0, down to a factor λ. A unit is a
column of a dense weight ``[fan_in, units]`` (its incoming weights: a row of PyTorch's
``[out, in]`` weight, as the official code takes it), and for a conv kernel
``[kh, kw, c_in, c_out]`` one input-channel slice of an output channel (the official code
computes the cosine over the kernel's spatial positions for each (c_out, c_in) pair).
Every layer's weights are shrunk, the output layer's included; each layer's bias vector is
shrunk as one vector (one cosine for the whole bias, as the official code does). LayerNorm
parameters are kept, and so is the optimizer state.

ḡ, the gradient "over the data", is accumulated by a gradient part (which passes the
gradient on unchanged) and read by the boundary event from the optimizer state, then reset:

* ``average="mean"`` (default): the mean of the gradients of every step since the last
  boundary — the paper computes the gradient of the loss over the training data at the
  warm start; in a stream that is the previous task's data, and a cosine does not depend
  on the mean's scale, so the sum is kept;
* ``average="ema"``: the official code's ḡ ← (1 − α) ḡ + α(−g) over the batches, α
  ``alpha`` (0.3 in the code, ``main.py`` ``--dash_alpha``); there the batches are passed
  over the fixed warm-start weights, here they are the stream's steps as the weights train.

The gradient part sees the gradient as it reaches it in the chain: list ``dash`` before
other gradient parts (``dash+l2``) for the loss gradient alone. Where ḡ is 0 (no step since
the last boundary) nothing is shrunk.

References:
  Shin, Oh, Cho & Yun. DASH: Warm-starting neural network training in stationary settings
  without loss of plasticity. NeurIPS 2024. Official code
  github.com/baekrok/DASH-Direction-Aware-SHrinking, ``utils/train_utils.py`` ``dash``
  (λ 0.3, α 0.3: ``main.py`` defaults).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lopkit._config import field
from lopkit.methods._base import BoundaryEvent, Context, Parts, Remedy
from lopkit.methods._matrices import leaf_paths, update_leaves, weight_paths
from lopkit.nets._units import get


@dataclasses.dataclass(frozen=True)
class DASHConfig:
    """DASH (Shin et al. 2024); λ 0.3 and α 0.3 are the official code's defaults."""

    floor: float = field(
        0.3, "λ: a unit's weights are multiplied by clip(cos(w, −ḡ), λ, 1)",
        unit_interval=True, axis=True,
    )  # fmt: skip
    average: str = field(
        "mean",
        "mean: ḡ the mean gradient since the last boundary; ema: ḡ ← (1 − α)ḡ + α(−g) "
        "(the official code)",
        choices=("mean", "ema"),
    )
    alpha: float = field(0.3, "α of average=ema", unit_interval=True, axis=True)


class DASHState(NamedTuple):
    """−ḡ accumulated since the last boundary (params-shaped: unit resets zero a unit's)."""

    direction: Any


def _cosine(w: jax.Array, d: jax.Array, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """(cos(w, d) over ``axes``, whether d is nonzero there)."""
    dot = jnp.sum(w * d, axes)
    nw = jnp.sqrt(jnp.sum(w * w, axes))
    nd = jnp.sqrt(jnp.sum(d * d, axes))
    ok = (nd > 0) & (nw > 0)
    return jnp.where(ok, dot / jnp.where(ok, nw * nd, 1.0), 1.0), ok


def shrink_factors(w: jax.Array, direction: jax.Array, floor) -> jax.Array:
    """The factor of every entry of ``w``: clip(cos, λ, 1) per unit (1 where ḡ is 0)."""
    if w.ndim == 1:  # a bias: one cosine for the whole vector
        axes = (0,)
    elif w.ndim == 2:  # dense [fan_in, units]: a unit's incoming column
        axes = (0,)
    else:  # conv [kh, kw, c_in, c_out]: per (c_in, c_out) over the spatial positions
        axes = (0, 1)
    cos, ok = _cosine(w, direction, axes)
    factor = jnp.where(ok, jnp.clip(cos, floor, 1.0), 1.0)
    return jnp.expand_dims(factor, axes)


def _build(config: DASHConfig, ctx: Context) -> Parts:
    shapes = jax.eval_shape(ctx.net.init, jax.random.PRNGKey(0))
    paths = weight_paths(shapes) + leaf_paths(shapes, "b")

    def init(params):
        return DASHState(jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        if config.average == "ema":
            a = config.alpha
            direction = jax.tree_util.tree_map(
                lambda d, g: (1.0 - a) * d - a * g, state.direction, updates
            )
        else:
            direction = jax.tree_util.tree_map(lambda d, g: d - g, state.direction, updates)
        return updates, DASHState(direction)

    def is_state(node):
        return isinstance(node, DASHState)

    def event(params, opt_state, key):
        found = [n for n in jax.tree_util.tree_leaves(opt_state, is_leaf=is_state) if is_state(n)]
        (state,) = found  # exactly one: this remedy's gradient part

        def shrink(path, w):
            return w * shrink_factors(w, get(state.direction, path), config.floor)

        params = update_leaves(params, paths, shrink)
        opt_state = jax.tree_util.tree_map(
            lambda n: (
                DASHState(jax.tree_util.tree_map(jnp.zeros_like, n.direction)) if is_state(n) else n
            ),
            opt_state,
            is_leaf=is_state,
        )
        return params, opt_state

    return Parts(gradient=optax.GradientTransformation(init, update), boundary=BoundaryEvent(event))


DASH = Remedy(
    name="dash",
    summary="at each task start shrink each unit's weights by max(cos(w, −ḡ), λ) (ḡ recent)",
    source="Shin, Oh, Cho & Yun 2024 (NeurIPS); code baekrok/DASH-Direction-Aware-SHrinking",
    config=DASHConfig,
    build=_build,
    parts=("gradient", "boundary"),
)
