"""The seed axis: rules are written for one seed, but may ask whether *any* seed acts.

The engine maps every per-seed function over the named axis :data:`SEED_AXIS`. A rare,
expensive branch (a unit reset, a task-boundary event) can then run under
``lax.cond(any_seed(pred), …)``: the predicate is the same for all seeds, so under ``vmap``
the branch runs only on steps where some seed needs it, instead of every step as a
per-seed ``cond`` (which ``vmap`` turns into a select of both branches) would. The branch
must be the identity for seeds whose own predicate is false, so what a seed computes does
not depend on the seeds beside it. Inside :func:`one_run_at_a_time` a run computes alone:
there ``any_seed`` is the run's own predicate.
"""

from __future__ import annotations

import contextvars

import jax
import jax.numpy as jnp

SEED_AXIS = "seeds"
_ALONE = contextvars.ContextVar("lopkit_one_run", default=False)


def any_seed(pred: jax.Array) -> jax.Array:
    """True when ``pred`` holds for at least one seed (just ``pred`` outside the engine, and
    inside :func:`one_run_at_a_time`, where each run computes alone)."""
    if _ALONE.get():
        return jnp.asarray(pred, bool)
    try:
        return jax.lax.psum(jnp.asarray(pred, jnp.int32), SEED_AXIS) > 0
    except NameError:  # not mapped over the seed axis (a direct call, e.g. in a test)
        return jnp.asarray(pred, bool)


def one_run_at_a_time(fn, carry: int | None = None):
    """``fn`` (written for one run) which, mapped over runs, computes them one after another.

    Under ``vmap`` XLA computes a run's matrix products as one batched product over the
    runs, and how it sums a long contraction (a 2,000-example probe batch) depends on the
    batch: the same run's Gram matrix came out a rounding apart alone and in a batch of 8,
    and so did its effective rank. Mapped one run at a time (``lax.map``), each run's
    products have the shapes they have alone, so its values are the same bits whatever
    runs are beside it. For rare, heavy work (the probes, every few thousand steps), where
    a loop step per run costs little. Also the learner's updates of a block under
    ``seed_map="split"`` (:class:`lopkit.engine.Program`): a loop step per run and block.
    ``fn`` is traced as one run alone (:func:`any_seed` is the run's own predicate).

    ``carry``: the position of an argument that ``fn`` returns updated, as
    ``fn(*args) -> (new args[carry], rest)`` with the same structure, shapes and dtypes
    (the learner state of a block's updates). Mapped over runs, the runs' stacked
    ``args[carry]`` is then updated in place, run ``i`` read from and written back to row
    ``i`` of the stack, instead of ``lax.map`` stacking the results into new arrays (a
    fresh zeroed stack, then copies of it, every call: measured, DQN on MinAtar at K = 64,
    a sixth of the device time). What each run computes is the same either way.
    """
    from jax import custom_batching

    @custom_batching.custom_vmap
    def mapped(*args):
        token = _ALONE.set(True)
        try:
            return fn(*args)
        finally:
            _ALONE.reset(token)

    @mapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        def widen(batched, leaf):
            return leaf if batched else jnp.broadcast_to(leaf, (axis_size, *jnp.shape(leaf)))

        args = jax.tree_util.tree_map(widen, list(in_batched), list(args))
        if carry is None:
            out = jax.lax.map(lambda a: mapped(*a), tuple(args))
            return out, jax.tree_util.tree_map(lambda _: True, out)

        def row(tree, i):
            return jax.tree_util.tree_map(
                lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), tree
            )

        def put(stack, tree, i):
            return jax.tree_util.tree_map(
                lambda s, v: jax.lax.dynamic_update_index_in_dim(s, v, i, 0), stack, tree
            )

        def one(stack, i):
            return mapped(*(stack if j == carry else row(a, i) for j, a in enumerate(args)))

        _, rest_shapes = jax.eval_shape(lambda s: one(s, 0), row(args[carry], 0))
        rest = jax.tree_util.tree_map(
            lambda a: jnp.zeros((axis_size, *a.shape), a.dtype), rest_shapes
        )

        def body(i, stacks):
            stack, rest = stacks
            new, r = one(row(stack, i), i)
            return put(stack, new, i), put(rest, r, i)

        out = jax.lax.fori_loop(0, axis_size, body, (args[carry], rest))
        return out, jax.tree_util.tree_map(lambda _: True, out)

    return mapped


def in_order_sum(x: jax.Array) -> jax.Array:
    """The sum of ``x`` over its leading axis, added in index order.

    A reduction's summation order is XLA's to choose, and under ``vmap`` it depends on the
    batch: a bin's error, summed over the bin's 100 block totals as ``totals.sum()``, came
    out a rounding apart (4.8e-7) for the same run in a program of 1,000 runs and in one of
    100, while every parameter was the same bits. A scan adds the terms one after another,
    in the same order whatever runs are beside it. For short sums taken rarely (once a bin).
    """
    x = jnp.asarray(x)
    total, _ = jax.lax.scan(lambda acc, v: (acc + v, None), jnp.zeros(x.shape[1:], x.dtype), x)
    return total
