"""The seed axis: rules are written for one seed, but may ask whether *any* seed acts.

The engine maps every per-seed function over the named axis :data:`SEED_AXIS`. A rare,
expensive branch (a unit reset, a task-boundary event) can then run under
``lax.cond(any_seed(pred), …)``: the predicate is the same for all seeds, so under ``vmap``
the branch runs only on steps where some seed needs it, instead of every step as a
per-seed ``cond`` (which ``vmap`` turns into a select of both branches) would. The branch
must be the identity for seeds whose own predicate is false, so what a seed computes does
not depend on the seeds beside it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SEED_AXIS = "seeds"


def any_seed(pred: jax.Array) -> jax.Array:
    """True when ``pred`` holds for at least one seed (just ``pred`` outside the engine)."""
    try:
        return jax.lax.psum(jnp.asarray(pred, jnp.int32), SEED_AXIS) > 0
    except NameError:  # not mapped over the seed axis (a direct call, e.g. in a test)
        return jnp.asarray(pred, bool)
