"""The compiled multi-seed program: jit(vmap over seeds(scan over bins(scan over steps))).

Time is cut into *bins* (the unit of reported error) and bins into *blocks* (the unit of
data generation): the stream produces a block of inputs and targets at once (one matmul
through a target network rather than one per step), and the learner is scanned over it.
All randomness of a block is derived from the seed's keys and the block's global index,
so what a seed computes depends on neither the number of seeds run beside it nor the
chunking of the run (docs/design.md §2: seeds are independent runs).

A block of ``n`` stream steps yields ``u`` learner updates: ``u = n`` for a supervised
stream, and for a stream whose data depend on the learner (``stream.reads_learner``: a
control task, whose block is one rollout of ``n`` env steps played by the current policy)
``u = stream.updates_per_block`` (epochs × minibatches). Steps — bins, ``metrics_every``,
divergence — count stream steps; the learner's own step index counts updates. A stream
may also report per-bin quantities of its own (``stream.records``: e.g. the return of the
episodes that ended in the bin), recorded beside the learner's error.

**Host-stepped streams** (``stream.hosted``) run block by block from the host:
:mod:`lopkit.engine._hosted`.

Seed state (one seed; the engine vmaps it)::

    {"learner": Learner state, "stream": stream state,
     "keys": {"stream", "learner", "probe"}: uint32[2],
     "prev_task": int32, "diverged_at": int32 (−1 while finite),
     "settings": the run's own settings (only with ``configure``)}

Runs, not only seeds. The leading axis is one of *runs*: a seed id and, for a program with
``configure``, a pytree of per-run settings (e.g. ``{"lr": 0.01, "l2.weight_decay":
1e-3}``; scalars for one run). ``configure(settings) -> Learner`` builds the learner from
them inside the compiled program, so H values × K seeds are H·K runs of one program,
batched exactly as seeds are (docs/design.md §6). The engine never looks inside the settings.

Identity. A program built with ``identity`` (a hashable description of everything it
computes, e.g. the resolved config) equals every program with the same identity, so two
equal programs built in one process share one compilation (the compiled functions are
keyed on the program); without it, a program is equal only to itself.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lopkit import _devices
from lopkit._seeds import SEED_AXIS, in_order_sum, one_run_at_a_time
from lopkit.engine import _probes
from lopkit.engine._learner import Learner
from lopkit.streams._base import Stream

# XLA:CPU's concurrency-optimized scheduler lets independent operations of one step run on
# different threads of its pool; a learner step is hundreds of operations of a few
# microseconds each, and handing them between threads cost more than it saved (measured on
# 2 cores, permuted quick, probes off: backprop 56k → 72k seed-steps/s, cbp 21k → 27k;
# slowly-changing regression at K = 1,000: 4.9M → 5.7M), and far more when another process
# competes for the cores.
COMPILER_OPTIONS = {
    "xla_cpu_copy_insertion_use_region_analysis": True,
    "xla_cpu_enable_concurrency_optimized_scheduler": False,
}
_KEY_INIT, _KEY_STREAM, _KEY_LEARNER, _KEY_PROBE = 0, 1, 2, 3


def chunk_capacity(n_bins: int) -> int:
    """The compiled size of a chunk of ``n_bins`` bins: the bin count is traced, the output
    buffers hold a power of two ≥ 64 rows, so the chunk lengths a run uses (1, time-sized
    powers of two, the remainder) share one compiled program (one more per doubling past
    64)."""
    return max(64, 1 << (max(n_bins, 1) - 1).bit_length())


def _split_host(state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A hosted run's state as (its device part, ``state["host"]``: the simulators' numpy
    state, which stays on the host)."""
    return {k: v for k, v in state.items() if k != "host"}, state["host"]


def seed_key(base_seed: int, seed: jax.Array) -> jax.Array:
    """The root key of seed ``seed``: fold_in(PRNGKey(base_seed), seed)."""
    return jax.random.fold_in(jax.random.PRNGKey(base_seed), seed)


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A stream, a learner and the run's time structure, as pure functions.

    bin_size, block_size: steps per bin / per generated block (block divides bin);
    probes: canonical probe names; probe_size: probe batch size;
    metrics_every: take probes at the end of bins whose end step is a multiple (0: never);
    seed_map: "vmap" (one batched program), "map" (``lax.map``: seeds one after another
    inside the compiled program; for conv nets this can be faster on CPU) or "split" (the
    stream's blocks batched as with "vmap", each block's learner updates one run after
    another, :func:`lopkit._seeds.one_run_at_a_time`: XLA sums a batched product's
    contraction in an order that depends on the batch — a conv filter's gradient, PPO's
    [128, 256] minibatch products — so a run's updates are the same bits alone and in a
    batch only when each run computes them with its own shapes; the RL agents).

    A stream with a data set shared by every seed exposes it as ``stream.constants`` (a
    pytree of arrays) and ``stream.bind(constants) -> stream``; the compiled functions take
    the data as an argument and run the methods of the bound stream (see
    :mod:`lopkit.streams._base`).

    configure: ``settings -> Learner`` for a program that reads continuous settings as
    traced per-run values (None: every run uses ``learner``); ``learner`` is then the
    learner of the first run's values, used for what does not depend on them (shapes,
    labels). settings: the values every run takes when :meth:`init` is given none.
    identity: a hashable description for structural equality (None: by identity).
    """

    stream: Stream
    learner: Learner
    base_seed: int
    bin_size: int
    block_size: int
    probes: tuple[str, ...]
    probe_size: int
    metrics_every: int
    seed_map: str = "vmap"
    protocol: Any = None  # the benchmark's procedure after each update (Problem.protocol)
    configure: Callable[[dict[str, Any]], Learner] | None = None  # the runs' own settings
    settings: dict[str, Any] | None = None  # with configure: what init gives every run
    identity: Hashable | None = None  # equal identities compute the same (one compile)

    def __eq__(self, other: object) -> bool:
        if self.identity is None or not isinstance(other, Program):
            return self is other
        return self.identity == other.identity

    def __hash__(self) -> int:
        return id(self) if self.identity is None else hash(("Program", self.identity))

    def configured(self, settings: Any) -> Program:
        """This program with the learner of one run's ``settings`` (traced scalars)."""
        if self.configure is None or settings is None:
            return self
        return dataclasses.replace(self, learner=self.configure(settings), configure=None)

    # ---- one seed -------------------------------------------------------------------
    def init_seed(self, seed: jax.Array, settings: Any = None) -> dict[str, Any]:
        if self.configure is not None:
            if settings is None:
                settings = {k: jnp.asarray(v) for k, v in self.settings.items()}
            state = self.configured(settings).init_seed(seed)
            return {**state, "settings": settings}
        root = seed_key(self.base_seed, seed)
        keys = {
            "stream": jax.random.fold_in(root, _KEY_STREAM),
            "learner": jax.random.fold_in(root, _KEY_LEARNER),
            "probe": jax.random.fold_in(root, _KEY_PROBE),
        }
        learner = self.learner.init(jax.random.fold_in(root, _KEY_INIT))
        if self.stream.reads_params:  # e.g. DQN's target network starts as the online one
            stream_state = self.stream.init(keys["stream"], learner["params"])
        else:
            stream_state = self.stream.init(keys["stream"])
        extra = {"params0": learner["params"]} if self.needs_params0 else {}
        if self.needs_params_prev:  # the parameters at the last probe (θ₀ before the first)
            extra["params_prev"] = learner["params"]
        if self.protocol is not None:
            extra["protocol"] = self.protocol.init(learner["params"])
        return {
            **extra,
            "learner": learner,
            "stream": stream_state,
            "keys": keys,
            "prev_task": jnp.zeros((), jnp.int32),
            "diverged_at": jnp.full((), -1, jnp.int32),
        }

    @property
    def updates_per_block(self) -> int:
        """Learner updates per block: the stream's ``updates_per_block``, else one per step."""
        return self.stream.updates_per_block or self.block_size

    @property
    def record_names(self) -> tuple[str, ...]:
        """The stream's own per-bin quantities (``stream.records``), recorded every bin."""
        return tuple(self.stream.records)

    @property
    def hosted(self) -> bool:
        """Whether the stream's environment is stepped on the host (``stream.hosted``)."""
        return bool(self.stream.hosted)

    def _stream_block(self, state: dict[str, Any], key: jax.Array, start: jax.Array, feed=None):
        if self.stream.reads_learner:
            params = self.learner.predicting(state["learner"])
            predict = functools.partial(self.learner.net.apply, params)
            if self.hosted:
                return self.stream.block(
                    state["stream"], key, start, self.block_size, predict, feed
                )
            if self.stream.reads_params:
                return self.stream.block(
                    state["stream"], key, start, self.block_size, predict, params,
                    self.learner.net.apply,
                )  # fmt: skip
            return self.stream.block(state["stream"], key, start, self.block_size, predict)
        return self.stream.block(state["stream"], key, start, self.block_size)

    def _block(
        self, state: dict[str, Any], block_index: jax.Array, feed: Any = None, base: Any = None
    ):
        """Run one block; returns (state, summed error over its updates, records or None).

        ``feed``: the block's data played on the host (hosted streams only); ``base``: the
        unconfigured program, given with seed_map "split" (the updates then run one run at
        a time, each configuring its own learner)."""
        n, u = self.block_size, self.updates_per_block
        start = block_index * n
        key = jax.random.fold_in(state["keys"]["stream"], block_index)
        stream_state, block = self._stream_block(state, key, start, feed)
        step_keys = jax.random.split(jax.random.fold_in(state["keys"]["learner"], block_index), u)
        task = block.task.astype(jnp.int32)
        prev = jnp.concatenate([state["prev_task"][None], task[:-1]])
        boundary = task != prev
        updates = block_index * u + jnp.arange(u, dtype=jnp.int32)  # the learner's step index
        steps = start + (jnp.arange(u, dtype=jnp.int32) * n) // u  # the stream step of each

        active = block.active
        inputs = (
            block.x,
            block.y,
            boundary,
            step_keys,
            updates,
            steps,
            jnp.ones((u,), bool) if active is None else active,
        )
        carry = (state["learner"], state.get("protocol"), state["diverged_at"])
        stream_before = state["stream"] if self.protocol is not None else None
        if base is None:
            learner_state, protocol_state, diverged_at, total = self._updates(
                carry, stream_before, inputs, active is not None
            )
        else:  # the updates one run at a time (seed_map "split"), each with its own settings

            def own(settings, carry, stream_before, inputs):
                run = base.configured(settings)
                *carry, total = run._updates(carry, stream_before, inputs, active is not None)
                return tuple(carry), total

            each = one_run_at_a_time(own, carry=1)  # the runs' learner states, in place
            (learner_state, protocol_state, diverged_at), total = each(
                state.get("settings"), carry, stream_before, inputs
            )
        new_state = {
            **state,
            "learner": learner_state,
            "stream": stream_state,
            "prev_task": task[-1],
            "diverged_at": diverged_at,
        }
        if self.protocol is not None:
            new_state["protocol"] = protocol_state
        return new_state, (total, block.records)

    def _updates(self, carry: tuple, stream_before: Any, inputs: tuple, gated: bool):
        """A block's updates, scanned: ``carry`` (learner state, protocol state,
        diverged_at), ``inputs`` the per-update (x, y, boundary, key, learner step, stream
        step, active); ``gated``: inactive updates change nothing and count 0. Returns
        (learner state, protocol state, diverged_at, summed error)."""

        def body(carry, inputs):
            learner_state, protocol_state, diverged_at, total = carry
            x, y, is_boundary, k, t, step, on = inputs
            before = learner_state
            learner_state, error, loss = self.learner.step(learner_state, x, y, is_boundary, k, t)
            if gated:  # an inactive update changes nothing and counts 0
                learner_state = jax.tree_util.tree_map(
                    lambda a, b: jnp.where(on, a, b), learner_state, before
                )
                error = jnp.where(on, error, 0.0)
                loss = jnp.where(on, loss, 0.0)
            if self.protocol is not None:
                protocol_state, learner_state = self.protocol.after_step(
                    protocol_state, learner_state, self.stream, stream_before, t
                )
            bad = ~jnp.isfinite(loss) & (diverged_at < 0)
            diverged_at = jnp.where(bad, step, diverged_at)
            return (learner_state, protocol_state, diverged_at, total + error), None

        (learner_state, protocol_state, diverged_at, total), _ = jax.lax.scan(
            body, (*carry, jnp.zeros((), jnp.float32)), inputs
        )
        return learner_state, protocol_state, diverged_at, total

    @functools.cached_property
    def labels(self) -> list[tuple[str, str]]:
        """The (metric, layer) label of each probe value, in order."""
        state = jax.eval_shape(self.init_seed, jnp.zeros((), jnp.int32))
        labels = []

        def fn(s):
            labels.extend(self._probe_values(s, jnp.zeros((), jnp.int32))[0])
            return 0

        jax.eval_shape(fn, state)
        return labels

    @property
    def needs_params0(self) -> bool:
        return any(_probes.PROBES[n].needs_params0 for n in self.probes)

    @property
    def needs_params_prev(self) -> bool:
        return any(_probes.PROBES[n].needs_params_prev for n in self.probes)

    def _probe_values(self, state: dict[str, Any], bin_index: jax.Array):
        self = self.configured(state.get("settings"))
        key = jax.random.fold_in(state["keys"]["probe"], bin_index)
        k_batch, k_probe = jax.random.split(key)
        x, y = self.stream.probe(state["stream"], k_batch, self.probe_size)
        params = self.learner.predicting(state["learner"])  # the params that predict
        _, trace = self.learner.net.apply(params, x)
        inputs = _probes.ProbeInputs(
            params=params,
            params0=state.get("params0"),
            params_prev=state.get("params_prev"),
            opt_state=state["learner"]["opt_state"],
            pre=trace.pre,
            hidden=trace.hidden,
            x=x,
            y=y,
            layers=tuple(layer.name for layer in self.learner.net.unit_layers),
            learner=self.learner,
            stream=self.stream,
            stream_state=state["stream"],
            key=k_probe,
        )
        return _probes.evaluate(self.probes, inputs)

    def run_bins(self, state: dict[str, Any], first_bin: jax.Array, n_bins: Any, capacity: int):
        """Run bins first_bin … first_bin+n_bins−1 for one seed; ``n_bins`` may be traced
        (≤ the static ``capacity``), so one compiled program runs every chunk length up to
        ``capacity`` (:func:`chunk_capacity`).

        Returns (state, errors ``[capacity]`` mean error per update in each bin, values
        ``[capacity, len(record_names) + R]``: the stream's records of each bin (NaN where
        a record counted nothing), then the probe values at the end of each bin, NaN where
        none were taken); rows past ``n_bins`` are NaN.
        """
        blocks_per_bin = self.bin_size // self.block_size
        # this run's own learner (its settings are traced); the probes configure their own
        run = self.configured(state.get("settings"))
        base = self if self.seed_map == "split" else None

        def bin_body(state, b):
            def block_body(state, j):
                return run._block(state, b * blocks_per_bin + j, base=base)

            state, (totals, records) = jax.lax.scan(block_body, state, jnp.arange(blocks_per_bin))
            return self._bin_values(state, b, totals, records)

        shapes = jax.eval_shape(lambda s: bin_body(s, first_bin)[1], state)
        out = jax.tree_util.tree_map(
            lambda a: jnp.full((capacity, *a.shape), jnp.nan, a.dtype), shapes
        )

        def body(i, carry):
            state, out = carry
            state, row = bin_body(state, first_bin + i)
            return state, jax.tree_util.tree_map(lambda o, r: o.at[i].set(r), out, row)

        state, (errors, values) = jax.lax.fori_loop(0, n_bins, body, (state, out))
        return state, errors, values

    def _bin_values(self, state: dict[str, Any], b: jax.Array, totals: jax.Array, records: Any):
        """The end of bin ``b`` for one seed: (state, (mean error per update, values: the
        records, then the probes or NaN)), from the bin's block totals ``[blocks]`` and
        records ``(totals [blocks, R], counts [blocks, R])`` or None. When probes are taken,
        ``state["params_prev"]`` (kept for probes that compare with the last probe's
        parameters) becomes the current parameters."""
        n_labels = len(self.labels) if self.probes else 0
        blocks_per_bin = self.bin_size // self.block_size
        error = in_order_sum(totals) / (blocks_per_bin * self.updates_per_block)
        if records is not None:  # summed in block order (in_order_sum: batch-independent)
            sums, counts = in_order_sum(records[0]), in_order_sum(records[1])
            recorded = jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1), jnp.nan)
        else:
            recorded = jnp.zeros((0,), jnp.float32)
        if n_labels:
            end = (b + 1) * self.bin_size
            take = (self.metrics_every > 0) & (end % max(self.metrics_every, 1) == 0)
            probe = one_run_at_a_time(lambda s, b: self._probe_values(s, b)[1])
            values = jax.lax.cond(
                take,
                lambda s: probe(s, b),
                lambda s: jnp.full((n_labels,), jnp.nan, jnp.float32),
                state,
            )
            if "params_prev" in state:
                prev = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(take, new, old),
                    state["learner"]["params"],
                    state["params_prev"],
                )
                state = {**state, "params_prev": prev}
        else:
            values = jnp.zeros((0,), jnp.float32)
        return state, (error, jnp.concatenate([recorded.astype(jnp.float32), values]))

    # ---- all seeds ------------------------------------------------------------------
    @functools.cached_property
    def constants(self) -> Any:
        """The stream's shared data (``stream.constants``) on the device, or None."""
        constants = self.stream.constants
        return None if constants is None else jax.device_put(constants)

    def bound(self, constants: Any) -> Program:
        """This program with its stream bound to ``constants`` (traced arguments)."""
        if constants is None:
            return self
        return dataclasses.replace(self, stream=self.stream.bind(constants))

    def init(self, seeds: jax.Array, settings: Any = None) -> dict[str, Any]:
        """Batched state for seed ids ``seeds`` ``[R]`` (leading axis R everywhere) and,
        with ``configure``, each run's ``settings`` (a pytree of ``[R]`` arrays); a hosted
        stream's simulators are started too (``state["host"]``)."""
        if self.configure is None:
            settings = None
        elif settings is None:
            settings = {k: np.full(len(seeds), v) for k, v in self.settings.items()}
        # strongly typed leaves, as every later state is (a weakly typed leaf, e.g. a log-std
        # filled from a Python float, would make the first call after init compile twice)
        state = jax.tree_util.tree_map(
            lambda x: jax.lax.convert_element_type(x, x.dtype) if x.weak_type else x,
            self._init(self.constants, seeds, settings),
        )
        if self.hosted:
            host = self.stream.host_init(self.base_seed, np.asarray(seeds))
            state = {**state, "host": host}
        return self.place(state)

    def place(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with its runs split across the local devices (:func:`lopkit._devices.
        place`: one CPU device per core by default), so that they compute in parallel; a
        hosted stream's host part stays on the host. Not for ``seed_map="map"`` (runs one
        after another): there, and on one device, unchanged."""
        if self.seed_map == "map":
            return state
        if self.hosted:
            device, host = _split_host(state)
            return {**_devices.place(device), "host": host}
        return _devices.place(state)

    def chunk(self, state: dict[str, Any], first_bin: jax.Array, n_bins: int):
        """All seeds, ``n_bins`` bins: (state, errors [K, n_bins], values [K, n_bins, R']):
        values as :meth:`run_bins` (records, then probes; just the probes for a stream
        without records).

        ``state`` is donated (its buffers are reused for the result)."""
        if self.hosted:
            from lopkit.engine._hosted import host_chunk

            return host_chunk(self, state, int(first_bin), n_bins)
        n_bins = int(n_bins)
        capacity = chunk_capacity(n_bins)
        state, errors, values = self._chunk(
            self.constants, state, first_bin, jnp.asarray(n_bins, jnp.int32), capacity
        )
        if capacity == n_bins:
            return state, errors, values
        return state, errors[:, :n_bins], values[:, :n_bins]

    # A stream's shared data set is an argument of the compiled functions, not a constant
    # embedded in them (an embedded 150 MB array costs seconds of compilation and several
    # copies in memory), and it carries no seed axis (never copied per seed).
    @functools.partial(jax.jit, static_argnums=0)
    def _init(self, constants: Any, seeds: jax.Array, settings: Any) -> dict[str, Any]:
        return jax.vmap(self.bound(constants).init_seed)(seeds, settings)

    # Region-analysis copy insertion stops XLA CPU from copying every weight matrix in each
    # scan step (measured: the paper's permuted-MNIST MLP 214 → 415 steps/s, bit-identical).
    @functools.partial(
        jax.jit, static_argnums=(0, 5), donate_argnums=2, compiler_options=COMPILER_OPTIONS
    )
    def _chunk(
        self, constants: Any, state: dict[str, Any], first_bin: jax.Array, n_bins: jax.Array,
        capacity: int,
    ):  # fmt: skip
        program = self.bound(constants)

        def run_bins(s):
            return program.run_bins(s, first_bin, n_bins, capacity)

        if self.seed_map == "map":
            return jax.lax.map(run_bins, state)
        return _devices.per_device(jax.vmap(run_bins, axis_name=SEED_AXIS), state)
