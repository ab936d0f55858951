"""Host-stepped streams: a stream whose environment runs outside the compiled program
(``stream.hosted``: MuJoCo's C simulator, stepped in threads on the host) cannot be
scanned over; the engine then drives the same per-seed pieces from the host, block by
block: ``stream.play(host, act, n)`` plays one block on the host, calling ``act(obs, t)``
— one jitted call of ``stream.act`` vmapped over all seeds per env step, with the step's
randomness (``stream.act_noise``) drawn for the whole block beforehand — and returns the
block's data (``feed``, numpy, leading seed axis); one compiled vmapped call then runs
``stream.block(…, predict, feed)`` and the learner's updates exactly as :meth:`Program._block`
does for any stream, and at the end of a bin one compiled call computes its error,
records and probes as :meth:`Program.run_bins` does. The host part of the state (``state["host"]``:
the simulators' complete state as numpy arrays with a leading seed axis, from
``stream.host_init(base_seed, seeds)``) is part of the one state pytree, so checkpoints
and ``--resume`` need nothing else.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from lopkit import _devices
from lopkit._seeds import SEED_AXIS
from lopkit.engine._program import COMPILER_OPTIONS, _split_host


def host_chunk(program: Any, state: dict[str, Any], first_bin: int, n_bins: int):
    """:meth:`Program.chunk` for a hosted stream: per block, ``stream.play`` on the host (one
    :func:`act` call per env step), then one compiled :func:`fed_block`; per bin one
    compiled :func:`host_bin`. Same outputs as :meth:`Program.chunk`."""
    device, host = _split_host(state)
    blocks_per_bin = program.bin_size // program.block_size
    errors, values = [], []
    for b in range(first_bin, first_bin + n_bins):
        totals, records = [], []
        for j in range(blocks_per_bin):
            index = jnp.asarray(b * blocks_per_bin + j, jnp.int32)
            # only what acting reads, so that a step's call passes few buffers, on one
            # device: a call across devices per env step would wait on each of them
            acting = program.learner.predicting(device["learner"])  # the params that predict
            params, stream_state, keys = _devices.gather(
                (acting, device["stream"], device["keys"]["stream"])
            )
            noise = jax.device_get(act_noise(program, keys, index))  # [n, K, …] on the host

            def step_act(obs, t, inputs=(params, stream_state), noise=noise):
                return act(program, *inputs, obs, noise[t])

            host, feed = program.stream.play(host, step_act, program.block_size)
            device, total, record = fed_block(program, program.constants, device, feed, index)
            totals.append(total)
            records.append(record)
        totals = jnp.stack(totals, axis=1)  # [K, blocks]
        records = jax.tree_util.tree_map(lambda *r: jnp.stack(r, axis=1), *records)
        device, (error, value) = host_bin(
            program, program.constants, device, jnp.asarray(b, jnp.int32), totals, records
        )
        errors.append(error)
        values.append(value)
    return {**device, "host": host}, jnp.stack(errors, 1), jnp.stack(values, 1)

@functools.partial(jax.jit, static_argnums=0)
def act_noise(program: Any, stream_key, block_index):
    """The randomness of every seed's acting in block ``block_index``, ``[n, K, …]``:
    ``stream.act_noise(key)`` for env step ``t`` with the seed's block key (as
    :meth:`Program._block` derives it) folded with ``t``. Drawn for the whole block in one call,
    so that a step's call (:func:`act`) is the policy alone."""

    def one(k, t):
        return program.stream.act_noise(jax.random.fold_in(jax.random.fold_in(k, block_index), t))

    steps = jnp.arange(program.block_size, dtype=jnp.int32)
    return jax.vmap(jax.vmap(one, (0, None)), (None, 0))(stream_key, steps)

@functools.partial(jax.jit, static_argnums=0)
def act(program: Any, params, stream_state, obs, noise):
    """All seeds' actions at one env step: vmapped ``stream.act(stream_state, predict,
    obs, noise)`` with obs ``[K, …]`` and the step's ``noise`` (:func:`act_noise`)."""

    def one(p, s, o, z):
        return program.stream.act(s, functools.partial(program.learner.net.apply, p), o, z)

    return jax.vmap(one)(params, stream_state, obs, noise)

@functools.partial(
    jax.jit, static_argnums=0, donate_argnums=2, compiler_options=COMPILER_OPTIONS
)
def fed_block(program: Any, constants: Any, state: dict[str, Any], feed: Any, block_index):
    bound = program.bound(constants)

    def one(state, feed):  # each run's own learner, as run_bins
        return bound.configured(state.get("settings"))._block(state, block_index, feed)

    def runs(state_and_feed):
        state, (total, records) = jax.vmap(one, axis_name=SEED_AXIS)(*state_and_feed)
        return state, total, records

    return _devices.per_device(runs, (state, feed))

@functools.partial(jax.jit, static_argnums=0)
def host_bin(program: Any, constants: Any, state: dict[str, Any], b, totals, records):
    bound = program.bound(constants)

    def one(state, totals, records):
        return bound._bin_values(state, b, totals, records)

    run = jax.vmap(lambda args: one(*args), axis_name=SEED_AXIS)
    return _devices.per_device(run, (state, totals, records))
