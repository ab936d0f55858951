"""The stream protocol: a continual problem, generated or indexed inside the compiled program.

A stream is pure. The engine calls, for one seed (the seed axis never appears here):

* ``init(key) -> state``: the seed's problem (target network, permutations, class order…).
* ``block(state, key, start, n) -> (state, Block)``: the data of steps ``start … start+n−1``.
  ``key`` is derived from the seed and the block's index, so the data of a step depend
  only on the seed and the step, never on how the run is chunked.
* ``probe(state, key, size) -> (x, y)``: a probe batch of the current task, for
  diagnostics: ``x`` ``[size, *input_shape]``, ``y`` ``[size, *target_shape]``.

Every stream derives from :class:`Stream`, which declares each optional capability below
once, with its default. Optionally, ``evaluate(state) -> (x, labels)``
(``has_test_set = True``): the current task's held-out examples (``x`` ``[n,
*input_shape]``, int ``labels`` ``[n]``; label −1 marks padding, ignored), for the
``test_accuracy`` probe; ``train_set(state) -> (x, labels)`` (``has_train_set = True``):
the current task's training examples under its current labels, for the ``train_accuracy``
probe (random-label memorization); and ``output_mask(state) -> bool [outputs]`` (``masks_outputs =
True``): the outputs a prediction may choose among (the classes seen so far, in
class-incremental learning).
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
``reads_params = True`` (its state holds a copy of the learner's parameters, e.g. DQN's
target network: ``init(key, params)`` receives the initial parameters and ``block(state,
key, start, n, predict, params, apply)`` the current ones and the network's forward
function ``apply(params, x)``),
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

from typing import Any, NamedTuple

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
    active: optional bool ``[u]``: the updates that happen; an inactive update leaves the
    learner state as it was (remedies included) and counts 0 error (DQN before its replay
    buffer holds the minimum; None: every update happens).
    """

    x: jax.Array
    y: Any
    task: jax.Array
    records: Any = None
    active: Any = None


class Stream:
    """The base of every stream: the three required methods, and every optional capability
    the engine reads, declared once with its default (a stream overrides what it has).

    Required: :meth:`init`, :meth:`block`, :meth:`probe` and ``batch_size``.

    Capabilities (defaults: a supervised stream generated inside the program):

    * ``reads_learner``: its data depend on the learner (``block`` gets ``predict``);
    * ``reads_params``: its state holds a copy of the learner's parameters (``init`` gets
      the initial ones, ``block`` the current ones and the forward function);
    * ``hosted``: stepped on the host (``host_init``, ``act_noise``, ``act``, ``play``);
    * ``updates_per_block``: learner updates per block (None: one per step);
    * ``block_steps``: the block length it requires (None: any);
    * ``records``: names of its per-bin quantities (``Block.records``);
    * ``probe_targets``: whether its probe batch has targets;
    * ``max_probe_size``: the largest probe batch it can give (None: any);
    * ``step_unit``: what the progress bar counts;
    * ``steps_per_task`` / ``task_starts``: its tasks' length, or their first steps when
      they differ (None: not task-based; config.yaml's ``report``);
    * ``constants`` and :meth:`bind`: a data set shared by every seed (None: none);
    * :meth:`evaluate`: the current task's held-out set (``has_test_set``);
      :meth:`train_set`: its training examples as currently labeled (``has_train_set``);
      :meth:`output_mask`: the outputs a prediction may choose among (``masks_outputs``).
    """

    batch_size: int
    reads_learner: bool = False
    reads_params: bool = False
    hosted: bool = False
    updates_per_block: int | None = None
    block_steps: int | None = None
    records: tuple[str, ...] = ()
    probe_targets: bool = True
    max_probe_size: int | None = None
    step_unit: str = "seed-step"
    steps_per_task: int | None = None
    task_starts: Any = None
    constants: Any = None
    has_test_set: bool = False
    has_train_set: bool = False
    masks_outputs: bool = False

    def init(self, key: jax.Array) -> Any:
        raise NotImplementedError

    def block(self, state: Any, key: jax.Array, start: jax.Array, n: int, *args: Any):
        """``(state, Block)``; ``*args``: ``predict`` (``reads_learner``), then ``feed``
        (``hosted``)."""
        raise NotImplementedError

    def probe(self, state: Any, key: jax.Array, size: int) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def bind(self, constants: Any) -> Stream:
        """This stream reading its shared data from ``constants`` (traced arrays)."""
        return self

    def evaluate(self, state: Any) -> tuple[jax.Array, jax.Array]:
        """(x ``[n, *input_shape]``, int labels ``[n]``, −1 for padding): held-out examples."""
        raise NotImplementedError(f"{type(self).__name__} has no held-out set")

    def train_set(self, state: Any) -> tuple[jax.Array, jax.Array]:
        """(x ``[n, *input_shape]``, int labels ``[n]``, −1 for padding): the current task's
        training examples under its current labels."""
        raise NotImplementedError(f"{type(self).__name__} has no training set to evaluate")

    def output_mask(self, state: Any) -> jax.Array:
        """bool ``[outputs]``: the outputs a prediction may choose among."""
        raise NotImplementedError(f"{type(self).__name__} does not mask outputs")
