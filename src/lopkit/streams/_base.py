"""The stream protocol: a continual problem, generated or indexed inside the compiled program.

A stream is pure. The engine calls, for one seed (the seed axis never appears here):

* ``init(key) -> state``: the seed's problem (target network, permutations, class order…).
* ``block(state, key, start, n) -> (state, Block)``: the data of steps ``start … start+n−1``.
  ``key`` is derived from the seed and the block's index, so the data of a step depend
  only on the seed and the step, never on how the run is chunked.
* ``probe(state, key, size) -> (x, y)``: a probe batch of the current task, for
  diagnostics: ``x`` ``[size, *input_shape]``, ``y`` ``[size, *target_shape]``.

Optionally, ``evaluate(state) -> (x, labels)``: the current task's held-out examples
(``x`` ``[n, *input_shape]``, int ``labels`` ``[n]``; label −1 marks padding, ignored), for
the ``test_accuracy`` probe; and ``output_mask(state) -> bool [outputs]``: the outputs a
prediction may choose among (the classes seen so far, in class-incremental learning).
Optionally, ``steps_per_task`` (tasks of equal length) or ``task_starts`` (the first step
of every task): the task structure written to config.yaml's ``report`` (figures' task axis).

Optionally, a data set shared by every seed: ``constants`` (a pytree of arrays) and
``bind(constants) -> stream`` (the same stream reading its data from ``constants``). The
engine passes ``constants`` to its compiled functions as an argument (never embedded in the
program, never copied per seed) and calls the methods of the bound stream inside them.

``start`` is a traced int scalar (the same for all seeds); ``n`` and ``size`` are static.

**Data that depend on the learner.** A stream with ``reads_learner = True`` (a control
task: its data are what the current policy experiences) is called as
``block(state, key, start, n, predict)`` with ``predict(x) -> (out, trace)`` the learner's
network at its current parameters. Such a stream also declares ``updates_per_block`` (the
learner updates one block yields), ``block_steps`` (the block length ``n`` it requires),
``records`` (names of its per-bin quantities, see :class:`Block`), and may set
``probe_targets = False`` (its probe batch has no targets: probes that need a loss are
refused), ``max_probe_size`` and ``step_unit`` (what the progress bar counts).

**Environments stepped on the host.** A stream that reads the learner may also be
``hosted = True`` (MuJoCo's C simulator, which cannot run inside ``jit``). It then provides
``host_init(base_seed, seeds) -> host`` (the simulators' state, numpy arrays with a leading
seed axis: part of the run state, so checkpoints hold it), ``act_noise(key)`` (the
randomness of one seed's action at one env step; the engine draws a whole block's at once),
``act(state, predict, x, noise) -> dict`` (one seed's action at one env step, traced; the
engine calls it vmapped over the seeds, jitted, once per env step) and ``play(host, act,
n) -> (host, feed)`` (``n`` env steps of every seed on the host, ``act(obs [K, …], t)``
giving the actions); its
``block(state, key, start, n, predict, feed)`` receives one seed's ``feed`` and returns the
block as any stream does (:mod:`lopkit.engine._program`, :mod:`lopkit.rl._host`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import jax


class Block(NamedTuple):
    """The data for ``n`` consecutive steps.

    x: ``[u, batch, *input_shape]`` inputs; y: ``[u, batch, *target_shape]`` targets (or
    a pytree of such arrays); task: int ``[u]`` the task each update belongs to (a change
    of task is a task boundary). ``u`` is the number of learner updates the block yields:
    ``n`` for a supervised stream (one update per step), ``stream.updates_per_block`` for a
    stream whose block is a rollout (epochs × minibatches).
    records: optional ``(totals [R], counts [R])`` of the stream's own per-bin quantities
    (names ``stream.records``): a bin reports Σ totals / Σ counts over its blocks (NaN where
    Σ counts = 0), e.g. the mean return of the episodes that ended in the bin.
    """

    x: jax.Array
    y: Any
    task: jax.Array
    records: Any = None


class Stream(Protocol):
    batch_size: int

    def init(self, key: jax.Array) -> Any: ...

    def block(self, state: Any, key: jax.Array, start: jax.Array, n: int) -> tuple[Any, Block]: ...

    def probe(self, state: Any, key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]: ...
