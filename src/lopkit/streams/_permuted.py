"""Online permuted inputs (permuted MNIST) of Dohare et al. (2024).

Each task is a fixed random permutation of the input pixels applied to every image of the
training set; the learner sees ``examples_per_task`` examples of a task once each (one
pass), ``batch_size`` at a time, then the next task begins with a new permutation.

Per seed, the stream state is the seed's stream key, the number of steps done and the
example order of the next step's task. Task t's permutation is ``permutation(fold_in(k_perm,
t), D)`` and its example order ``permutation(fold_in(fold_in(k_order, t), p), n)[:…]`` for
pass p (``examples_per_task ≤ n``: a single pass, examples drawn without replacement; more
examples than the training set: consecutive passes, each a fresh shuffle). The order is a
function of the key and the task alone; it is kept in the state only because computing it
is a sort of n keys (XLA:CPU's sort: ~50 ms per seed for n = 60,000) — done once per task
instead of in every block (at 2,000-step blocks that sort was half of the small net's step
time). The images
are the stream's :attr:`constants` (uint8 ``[n, D]`` and int32 labels, shared by every
seed; the engine passes them to the compiled program as an argument), converted to
float32 in [0, 1] per batch.

Step s belongs to task ``s // S`` with ``S = examples_per_task / batch_size`` steps per
task, and uses positions ``(s mod S)·B … (s mod S)·B + B − 1`` of that task's order; a
block may straddle a task boundary.

Which task a snapshot sees: ``probe`` draws from the task of the *next* step. With
``metrics_every = S`` (the benchmark's default) the snapshot after the last step of task t
is therefore taken on 2,000 examples of task t+1 before any training on it — the paper's
"at the start of each task, on examples of the new task". ``evaluate`` (the test split)
uses the permutation of the task of the *last* step done, so ``test_accuracy`` at the end
of task t is the accuracy on task t's held-out images.

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. Loss of plasticity in deep
  continual learning. Nature 632, 768–774 (2024), Methods "Online permuted MNIST".
  Goodfellow, Mirza, Xiao, Courville, Bengio. An empirical investigation of catastrophic
  forgetting in gradient-based neural networks. arXiv:1312.6211 (2013).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.streams._base import Block, Stream
from lopkit.streams._labeled import LABELED_DATA, LabeledArrays, load_labeled

_PERM, _ORDER = 0, 1


@dataclasses.dataclass(frozen=True)
class PermutedStreamConfig:
    """Permuted inputs; defaults are the paper's online permuted MNIST (Dohare et al. 2024)."""

    data: str = field("mnist", "labeled set whose pixels are permuted", choices=LABELED_DATA)
    data_dir: str | None = field(None, "data root (default $LOPKIT_DATA, else ~/.lopkit/data)")
    examples_per_task: int = field(60_000, "examples seen per task (one pass)", positive=True)
    batch_size: int = field(1, "examples per step (1: online)", positive=True)

    def check(self) -> None:
        if self.examples_per_task % self.batch_size:
            raise ConfigError(
                f"examples_per_task ({self.examples_per_task}) must be a multiple of "
                f"batch_size ({self.batch_size})"
            )

    @property
    def steps_per_task(self) -> int:
        return self.examples_per_task // self.batch_size


class PermutedInputs(Stream):
    has_test_set = True

    """The stream of :class:`PermutedStreamConfig` (see the module docstring).

    State (one seed): ``{"key": uint32[2] the seed's stream key, "step": int32 steps done,
    "order": int32 [passes · n] the example order of the task of step "step"}``.
    """

    def __init__(self, config: PermutedStreamConfig, arrays: LabeledArrays | None = None):
        self.config = config
        arrays = arrays if arrays is not None else load_labeled(config.data, config.data_dir)
        self.num_classes = arrays.num_classes
        self.data = {k: getattr(arrays, k) for k in ("x_train", "y_train", "x_test", "y_test")}
        self.batch_size = config.batch_size
        self.steps_per_task = config.steps_per_task
        self.num_train, self.input_size = arrays.x_train.shape
        self.passes = -(-config.examples_per_task // self.num_train)

    # ---- the shared data set -------------------------------------------------------
    @property
    def constants(self) -> dict[str, Any]:
        return self.data

    def bind(self, constants: dict[str, Any]) -> PermutedInputs:
        bound = copy.copy(self)
        bound.data = constants
        return bound

    # ---- derived per task ----------------------------------------------------------
    def permutation(self, state: dict[str, Any], task: jax.Array) -> jax.Array:
        """Task ``task``'s pixel permutation, int32 ``[D]``: input j is pixel ``perm[j]``."""
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _PERM), task)
        return jax.random.permutation(key, self.input_size).astype(jnp.int32)

    def order(self, state: dict[str, Any], task: jax.Array) -> jax.Array:
        """Task ``task``'s example order, int32 ``[passes · n]``: a fresh shuffle per pass."""
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _ORDER), task)
        keys = jax.random.split(key, self.passes)
        shuffles = jax.vmap(lambda k: jax.random.permutation(k, self.num_train))(keys)
        return shuffles.reshape(-1).astype(jnp.int32)

    def _images(self, idx: jax.Array, perm: jax.Array) -> jax.Array:
        """float32 ``[..., D]`` images ``idx`` ``[...]`` under ``perm`` ``[..., D]``."""
        x = jnp.asarray(self.data["x_train"])[idx]
        return jnp.take_along_axis(x, perm, axis=-1).astype(jnp.float32) / 255.0

    # ---- the protocol --------------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        state = {"key": key, "step": jnp.zeros((), jnp.int32)}
        return {**state, "order": self.order(state, jnp.zeros((), jnp.int32))}

    def block(
        self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int
    ) -> tuple[dict[str, Any], Block]:
        del key  # the data of a step are fixed by the seed and the step alone
        s_per_task, b = self.steps_per_task, self.batch_size
        steps = start + jnp.arange(n, dtype=jnp.int32)
        task = steps // s_per_task
        first = start // s_per_task
        spanned = (n - 1 + s_per_task - 1) // s_per_task + 1  # most tasks n steps can touch
        tasks = first + jnp.arange(spanned, dtype=jnp.int32)
        perms = jax.vmap(lambda t: self.permutation(state, t))(tasks)  # [spanned, D]
        after = (start + n) // s_per_task  # the task of the step after the block
        if spanned <= 2:  # the state's order is task `first`'s; sort only for the next task
            nxt = jax.lax.cond(
                after > first,
                lambda: self.order(state, first + 1),
                lambda: state["order"],
            )
            orders = jnp.stack([state["order"], nxt])  # [2, passes·n]
            new_order = nxt
        else:  # blocks longer than a task (small test configurations)
            orders = jax.vmap(lambda t: self.order(state, t))(tasks)  # [spanned, passes·n]
            new_order = self.order(state, after)
        rel = task - first
        positions = (steps % s_per_task)[:, None] * b + jnp.arange(b)  # [n, B]
        idx = orders[rel[:, None], positions]
        x = self._images(idx, perms[rel][:, None, :])
        y = jnp.asarray(self.data["y_train"])[idx]
        return {**state, "step": start + n, "order": new_order}, Block(x, y, task)

    def probe(
        self, state: dict[str, Any], key: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``([size, D], [size])``: training images of the next step's task (at a task
        boundary: the new task), drawn without replacement when ``size ≤ n``."""
        task = state["step"] // self.steps_per_task
        idx = jax.random.choice(key, self.num_train, (size,), replace=size > self.num_train)
        perm = self.permutation(state, task)
        return self._images(idx, perm[None, :]), jnp.asarray(self.data["y_train"])[idx]

    def evaluate(self, state: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The test split under the permutation of the last step's task (the task just
        trained on): ``([n_test, D], int [n_test])``."""
        task = jnp.maximum(state["step"] - 1, 0) // self.steps_per_task
        perm = self.permutation(state, task)
        x = jnp.asarray(self.data["x_test"])[:, perm].astype(jnp.float32) / 255.0
        return x, jnp.asarray(self.data["y_test"])
