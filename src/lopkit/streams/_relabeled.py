"""Relabeled streams: the same inputs, labels that change every ``change_every`` steps.

A labeled set (or a fixed subset of it) is learned by (minibatch) SGD while its labels are
remade at every task; the inputs never change. Task t covers steps ``t·N … (t+1)·N − 1``
for ``N = change_every`` (``0``: never, a single task). The rule that makes task t's
labels from the true ones (``relabel``):

* ``none`` — the true labels (fixed targets);
* ``permute`` — a permutation π_t of the classes: an example of class c is labeled π_t(c)
  (label-permuted streams; Elsayed & Mahmood 2024, UPGD §4.3);
* ``random`` — every example a label drawn uniformly over the classes, afresh per task
  (random-label memorization; Lyle et al. 2023 §3, Kumar et al. 2024; labels "re-drawn"
  in Sokar et al. 2023 §3);
* ``shuffle`` — the labels of the subset shuffled among its examples by a permutation σ_t
  (class counts kept; Sokar et al. 2023 §3, Fig. 3).

With ``relabel_first_task`` False, task 0 keeps the true labels and the rule applies from
task 1 on (targets that *change*, starting from the real ones).

Examples: the ``subset`` (``0``: all) first examples of a per-seed ordering of the training
set. They are visited in epochs: the stream is an endless sequence of shuffles of the subset,
epoch e's shuffle ``permutation(fold_in(k_epoch, e), m)``, and step s takes positions
``s·B … s·B + B − 1`` of it — every example once per epoch, without replacement (the
sources' data loaders with ``shuffle=True``). A step's data and labels are functions of the
seed's key and the step alone, so the stream is pure and chunking changes nothing. Epochs
do not align with tasks (UPGD's stream changes labels every 2,500 samples in mid-epoch).

``probe``: a batch of the subset under the labels of the next step's task. ``evaluate``
(``relabel`` none or permute, where a test example's label is defined): the test split
under the labels of the task of the last step done. ``train_set``: the whole subset under
those labels — the ``train_accuracy`` probe, the measure of random-label memorization
("training accuracy reached after a fixed budget per task").

References:
  Elsayed, Mahmood. Addressing loss of plasticity and catastrophic forgetting in continual
  learning. ICLR 2024, §4.3 (label-permuted EMNIST, CIFAR-10, mini-ImageNet); official
  code github.com/mohmdelsayed/upgd core/task/label_permuted_emnist.py (labels permuted
  every 2,500 samples, batch 1, 47 classes).
  Lyle, Zheng, Nikishin, Avila Pires, Pascanu, Dabney. Understanding plasticity in neural
  networks. ICML 2023, §3.
  Kumar, Marklund, Van Roy. Maintaining plasticity in continual learning via regenerative
  regularization. CoLLAs 2024 (Random Label MNIST / CIFAR).
  Sokar, Agarwal, Castro, Evci. The dormant neuron phenomenon in deep reinforcement
  learning. ICML 2023, §3 and Fig. 3.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._errors import ConfigError
from lopkit.streams._base import Block, Stream
from lopkit.streams._labeled import LabeledArrays, load_labeled

RELABELS = ("none", "permute", "random", "shuffle")
_ORDER, _EPOCH, _LABEL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class RelabeledStreamConfig:
    """What a relabeled stream is (see the module docstring); the benchmarks
    (:mod:`lopkit.benchmarks._relabeled`) fill it from their settings."""

    data: str = "digits"
    data_dir: str | None = None
    relabel: str = "permute"
    change_every: int = 2_500
    subset: int = 0
    batch_size: int = 1
    relabel_first_task: bool = True


class RelabeledData(Stream):
    """The stream of :class:`RelabeledStreamConfig`.

    State (one seed): ``{"key": uint32[2], "step": int32 steps done, "order": int32 [m]
    the seed's subset (indices into the training set), "epoch": int32 [m] the shuffle of
    the epoch of the next step (a function of the key and the step, kept to sort once per
    epoch)}``.
    """

    has_train_set = True

    def __init__(self, config: RelabeledStreamConfig, arrays: LabeledArrays | None = None):
        if config.relabel not in RELABELS:
            raise ConfigError(
                f"relabel must be one of {', '.join(RELABELS)}; got {config.relabel!r}"
            )
        self.config = config
        arrays = arrays if arrays is not None else load_labeled(config.data, config.data_dir)
        self.data = {k: getattr(arrays, k) for k in ("x_train", "y_train", "x_test", "y_test")}
        self.num_classes = arrays.num_classes
        self.num_train, self.input_size = arrays.x_train.shape
        if config.subset > self.num_train:
            raise ConfigError(
                f"subset ({config.subset:,}) exceeds the {self.num_train:,} training examples "
                f"of {arrays.name}; use at most {self.num_train:,} (0: all)"
            )
        self.size = config.subset or self.num_train  # m: examples in the stream
        self.batch_size = config.batch_size
        if self.size * self.batch_size >= 2**31:  # positions() multiplies them in int32
            raise ConfigError(
                f"subset × batch_size ({self.size:,} × {self.batch_size:,}) must be below 2^31; "
                "use a smaller subset or batch"
            )
        self.steps_per_task = config.change_every or None
        self.has_test_set = config.relabel in ("none", "permute")

    # ---- the shared data set -------------------------------------------------------
    @property
    def constants(self) -> dict[str, Any]:
        return self.data

    def bind(self, constants: dict[str, Any]) -> RelabeledData:
        bound = copy.copy(self)
        bound.data = constants
        return bound

    # ---- tasks and their labels ----------------------------------------------------
    def task_of(self, step: jax.Array) -> jax.Array:
        """The task of step(s) ``step``: ``step // change_every`` (0 when it is 0)."""
        every = self.config.change_every
        return step // every if every else jnp.zeros_like(step)

    def _tables(self, state: dict[str, Any], tasks: jax.Array) -> jax.Array | None:
        """Per task of ``tasks`` [T]: π_t int32 [T, C] (permute), σ_t int32 [T, m]
        (shuffle), else None."""
        rule = self.config.relabel
        if rule not in ("permute", "shuffle"):
            return None
        n = self.num_classes if rule == "permute" else self.size
        base = jax.random.fold_in(state["key"], _LABEL)
        keys = jax.vmap(lambda t: jax.random.fold_in(base, t))(tasks)
        return jax.vmap(lambda k: jax.random.permutation(k, n))(keys).astype(jnp.int32)

    def _labels(self, state, q, task, rel, tables, true) -> jax.Array:
        """Labels of subset positions ``q`` in tasks ``task`` (same shape; ``rel``: the row
        of ``tables`` of each task), ``true`` the true labels of the examples at ``q``."""
        rule = self.config.relabel
        if rule == "none":
            return true
        if rule == "permute":
            out = tables[rel, true]
        elif rule == "shuffle":
            out = jnp.asarray(self.data["y_train"])[state["order"][tables[rel, q]]]
        else:  # random: a fresh uniform label per (task, example)
            base = jax.random.fold_in(state["key"], _LABEL)
            draw = lambda t, i: jax.random.randint(
                jax.random.fold_in(jax.random.fold_in(base, t), i), (), 0, self.num_classes
            )
            out = jax.vmap(draw)(task.ravel(), q.ravel()).reshape(q.shape)
        if not self.config.relabel_first_task:
            out = jnp.where(task > 0, out, true)
        return out.astype(jnp.int32)

    def _example(self, state: dict[str, Any], q: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(float32 images ``[..., D]``, true labels ``[...]``) at subset positions ``q``."""
        idx = state["order"][q]
        x = jnp.asarray(self.data["x_train"])[idx].astype(jnp.float32) / 255.0
        return x, jnp.asarray(self.data["y_train"])[idx]

    def shuffle(self, state: dict[str, Any], epoch: jax.Array) -> jax.Array:
        """Epoch ``epoch``'s order of the subset positions, int32 ``[m]``."""
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _EPOCH), epoch)
        return jax.random.permutation(key, self.size).astype(jnp.int32)

    def positions(
        self, state: dict[str, Any], start: jax.Array, n: int
    ) -> tuple[jax.Array, jax.Array]:
        """(subset positions int32 ``[n, B]`` of steps ``start … start+n−1``, the shuffle of
        the epoch of step ``start+n``'s first position).

        The state keeps the shuffle of the current epoch (a sort of m keys; for EMNIST's
        112,800 examples ~0.1 s, which at 500-step blocks would cost more than the
        training), so a block no longer than an epoch sorts at most once, for the next."""
        b, m = self.batch_size, self.size
        # step s's first draw is number s·B of the endless sequence, which passes 2^31 (int32)
        # in long runs (s > 21M at B = 100): with s = a·m + c it is a·B·m + c·B, so its epoch
        # is a·B + ⌊c·B / m⌋ and its place in that epoch (c·B) mod m, all below 2^31
        a, c = start // m, start % m
        first = a * b + (c * b) // m  # the epoch of step start's first draw
        rel = (c * b) % m + jnp.arange(n * b, dtype=jnp.int32).reshape(n, b)  # from its start
        after = first + ((c * b) % m + n * b) // m  # the epoch of step start+n's first draw
        if n * b <= m:  # the block touches epochs first and first + 1 at most
            nxt = jax.lax.cond(
                after > first, lambda: self.shuffle(state, first + 1), lambda: state["epoch"]
            )
            table = jnp.stack([state["epoch"], nxt])
            new = nxt
        else:  # blocks longer than an epoch (small subsets)
            epochs = first + jnp.arange((n * b - 1) // m + 2, dtype=jnp.int32)
            table = jax.vmap(lambda e: self.shuffle(state, e))(epochs)
            new = self.shuffle(state, after)
        return table[rel // m, rel % m], new

    # ---- the protocol --------------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        order = jax.random.permutation(jax.random.fold_in(key, _ORDER), self.num_train)
        state = {
            "key": key,
            "step": jnp.zeros((), jnp.int32),
            "order": order[: self.size].astype(jnp.int32),
        }
        return {**state, "epoch": self.shuffle(state, jnp.zeros((), jnp.int32))}

    def block(
        self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int
    ) -> tuple[dict[str, Any], Block]:
        del key  # a step's data depend on the seed and the step alone
        steps = start + jnp.arange(n, dtype=jnp.int32)
        task = self.task_of(steps)
        first = self.task_of(start)
        every = self.config.change_every
        spanned = (n - 1) // every + 2 if every else 1  # most tasks n steps can touch
        tables = self._tables(state, first + jnp.arange(spanned, dtype=jnp.int32))
        q, epoch = self.positions(state, start, n)
        x, true = self._example(state, q)
        tasks = jnp.broadcast_to(task[:, None], q.shape)
        y = self._labels(state, q, tasks, tasks - first, tables, true)
        return {**state, "step": start + n, "epoch": epoch}, Block(x, y, task)

    def _current(self, state: dict[str, Any], step: jax.Array, q: jax.Array):
        """(x, labels) of subset positions ``q`` under the labels of step ``step``'s task."""
        task = self.task_of(step)
        x, true = self._example(state, q)
        tables = self._tables(state, task[None])
        tasks = jnp.broadcast_to(task, q.shape)
        return x, self._labels(state, q, tasks, jnp.zeros_like(q), tables, true)

    def probe(
        self, state: dict[str, Any], key: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``([size, D], [size])``: examples of the subset (without replacement when
        ``size ≤ m``) under the labels of the next step's task."""
        q = jax.random.choice(key, self.size, (size,), replace=size > self.size)
        return self._current(state, state["step"], q.astype(jnp.int32))

    def train_set(self, state: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The whole subset, ``([m, D], int [m])``, under the labels of the task of the last
        step done (the task just trained on)."""
        last = jnp.maximum(state["step"] - 1, 0)
        return self._current(state, last, jnp.arange(self.size, dtype=jnp.int32))

    def evaluate(self, state: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The test split, ``([n_test, D], int [n_test])``, under the labels of the task of
        the last step done (``relabel`` none or permute only)."""
        if not self.has_test_set:
            raise NotImplementedError(f"relabel={self.config.relabel} defines no test labels")
        task = self.task_of(jnp.maximum(state["step"] - 1, 0))
        x = jnp.asarray(self.data["x_test"]).astype(jnp.float32) / 255.0
        true = jnp.asarray(self.data["y_test"])
        if self.config.relabel == "none":
            return x, true
        pi = self._tables(state, task[None])[0]
        y = pi[true]
        if not self.config.relabel_first_task:
            y = jnp.where(task > 0, y, true)
        return x, y.astype(jnp.int32)
