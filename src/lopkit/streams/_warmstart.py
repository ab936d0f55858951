"""Warm-starting and transient non-stationarity: a first phase of modified data, then clean.

A labeled set is learned by minibatch SGD in two phases. Steps ``0 … N1−1`` (phase 1) see
the data modified by the ``variant``; from step N1 on (phase 2) every step draws from the
whole clean training set. Phase 2 is task 1 and phase 1 task 0, so the switch is a task
boundary (remedies with a boundary event, e.g. ``shrink_perturb_boundary``, fire there).

Variants (phase 1):

* ``none`` — the fresh-start baseline: clean, whole training set from the first step (a
  single task; the run has the same length as the others).
* ``fraction`` — a fixed random subset of ``fraction`` of the training set (Ash & Adams
  2020: 50%, then 100%).
* ``growing`` — the available subset grows linearly from ``fraction`` of the training set
  at step 0 to all of it at step N1 (data arriving over time; Ash & Adams 2020, §5).
* ``noisy_labels`` — each label drawn is replaced, with probability ``label_noise``,
  by a label uniform over all classes, afresh at every draw (Igl et al. 2021).
* ``wrong_labels`` — a fixed random ``label_noise`` share of the training examples carry
  a fixed wrong label (uniform over the other classes), drawn once per seed (Igl et al.
  2021; memorizing random labels first, Achille et al. 2017).
* ``blur`` — inputs blurred: mean over ``blur_factor`` × ``blur_factor`` pixel blocks,
  upsampled back by repetition (Achille et al. 2017's critical-period deficit).

Sampling: each step draws ``batch_size`` examples uniformly with replacement from the
examples available at that step (an ordering of the training set per seed; the first m
are available). ``subset`` > 0 makes the first ``subset`` examples of that ordering the
whole training set (phase 2 and ``none`` draw from them; ``fraction`` and ``growing``
take their share of them), so both phases can train to convergence on a small set. The
randomness of step s is ``fold_in(fold_in(k, 2), s)`` for the seed's stream key k, so a
step's data depend on the seed and the step only. The images and
labels are the stream's :attr:`constants` (shared by every seed).

``probe`` draws a batch as the next step would (phase-1 data during phase 1);
``evaluate`` returns the clean test split, for ``test_accuracy``.

References:
  Ash, Adams. On warm-starting neural network training. NeurIPS 2020.
  Igl, Farquhar, Luketina, Boehmer, Whiteson. Transient non-stationarity and
  generalisation in deep reinforcement learning. ICLR 2021.
  Achille, Rovere, Soatto. Critical learning periods in deep networks. ICLR 2019
  (arXiv:1711.08856, 2017).
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

VARIANTS = ("none", "fraction", "growing", "noisy_labels", "wrong_labels", "blur")
_ORDER, _RELABEL, _STEP = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class WarmstartStreamConfig:
    """Two-phase training data (Ash & Adams 2020; Igl et al. 2021; Achille et al. 2017)."""

    data: str = field("digits", "labeled set", choices=LABELED_DATA)
    data_dir: str | None = field(None, "data root (default $LOPKIT_DATA, else ~/.lopkit/data)")
    variant: str = field("fraction", "what phase 1 changes", choices=VARIANTS)
    phase1_steps: int = field(2_000, "N1: steps of the first (modified) phase", positive=True)
    fraction: float = field(
        0.5, "fraction: share of the training set in phase 1; growing: its share at step 0"
    )
    label_noise: float = field(
        0.5,
        "noisy_labels: probability a label is redrawn; wrong_labels: share of examples relabeled",
        unit_interval=True,
    )
    blur_factor: int = field(4, "blur: side of the averaged pixel blocks", positive=True)
    batch_size: int = field(64, "examples per step", positive=True)
    subset: int = field(
        0,
        "the training set: the first `subset` examples of the seed's ordering (0: all of it)",
        nonnegative=True,
    )

    def check(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction!r}")


class WarmstartData(Stream):
    has_test_set = True

    """The stream of :class:`WarmstartStreamConfig` (see the module docstring).

    State (one seed): ``{"key": uint32[2], "step": int32 steps done, "order": int32 [n] the
    seed's ordering of the training set, ("labels": int32 [n] phase-1 labels,
    wrong_labels only)}``.
    """

    def __init__(self, config: WarmstartStreamConfig, arrays: LabeledArrays | None = None):
        self.config = config
        arrays = arrays if arrays is not None else load_labeled(config.data, config.data_dir)
        self.data = {k: getattr(arrays, k) for k in ("x_train", "y_train", "x_test", "y_test")}
        self.num_classes = arrays.num_classes
        self.image_shape = arrays.image_shape
        self.num_train, self.input_size = arrays.x_train.shape
        if config.subset > self.num_train:
            raise ConfigError(
                f"subset ({config.subset:,}) exceeds the {self.num_train:,} training examples "
                f"of {arrays.name}; use at most {self.num_train:,} (0: all)"
            )
        self.size = config.subset or self.num_train  # n: the training set the phases draw from
        self.batch_size = config.batch_size
        f = config.blur_factor
        if config.variant == "blur" and (arrays.image_shape[0] % f or arrays.image_shape[1] % f):
            raise ConfigError(
                f"blur_factor {f} must divide the image sides {arrays.image_shape[:2]} "
                f"of {arrays.name}"
            )

    # ---- the shared data set -------------------------------------------------------
    @property
    def constants(self) -> dict[str, Any]:
        return self.data

    def bind(self, constants: dict[str, Any]) -> WarmstartData:
        bound = copy.copy(self)
        bound.data = constants
        return bound

    # ---- the schedule --------------------------------------------------------------
    def available(self, step: jax.Array) -> jax.Array:
        """How many examples (the first m of the seed's order) step ``step`` draws from."""
        c, n = self.config, self.size
        start = max(1, round(c.fraction * n))
        if c.variant == "fraction":
            m = jnp.full_like(step, start)
        elif c.variant == "growing":
            m = start + (n - start) * step.astype(jnp.float32) / c.phase1_steps
            m = jnp.floor(m).astype(step.dtype)
        else:
            return jnp.full_like(step, n)
        return jnp.where(step < c.phase1_steps, m, n)

    def blur(self, x: jax.Array) -> jax.Array:
        """Block-mean downsampling by ``blur_factor``, then upsampling by repetition.

        x: ``[..., D]`` flat images (row-major H, W, C) → the same shape.
        """
        f = self.config.blur_factor
        h, w, ch = self.image_shape
        lead = x.shape[:-1]
        blocks = x.reshape(*lead, h // f, f, w // f, f, ch).mean(axis=(-4, -2), keepdims=True)
        return jnp.broadcast_to(blocks, (*lead, h // f, f, w // f, f, ch)).reshape(x.shape)

    def _batch(
        self, state: dict[str, Any], key: jax.Array, step: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``size`` examples as drawn at step ``step``: (float32 ``[size, D]``, int ``[size]``)."""
        c = self.config
        k_pick, k_flip, k_label = jax.random.split(key, 3)
        u = jax.random.uniform(k_pick, (size,))
        m = self.available(step)
        idx = state["order"][jnp.minimum((u * m).astype(jnp.int32), m - 1)]
        x = jnp.asarray(self.data["x_train"])[idx].astype(jnp.float32) / 255.0
        y = jnp.asarray(self.data["y_train"])[idx]
        phase1 = step < c.phase1_steps
        if c.variant == "blur":
            x = jnp.where(phase1, self.blur(x), x)
        elif c.variant == "noisy_labels":
            redraw = jax.random.bernoulli(k_flip, c.label_noise, (size,)) & phase1
            y = jnp.where(redraw, jax.random.randint(k_label, (size,), 0, self.num_classes), y)
        elif c.variant == "wrong_labels":
            y = jnp.where(phase1, state["labels"][idx], y)
        return x, y

    def task(self, step: jax.Array) -> jax.Array:
        """0 in phase 1, 1 in phase 2 (always 0 for the ``none`` baseline)."""
        if self.config.variant == "none":
            return jnp.zeros_like(step)
        return (step >= self.config.phase1_steps).astype(step.dtype)

    # ---- the protocol --------------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        order = jax.random.permutation(jax.random.fold_in(key, _ORDER), self.num_train)
        state = {"key": key, "step": jnp.zeros((), jnp.int32), "order": order.astype(jnp.int32)}
        if self.config.variant == "wrong_labels":
            k_pick, k_shift = jax.random.split(jax.random.fold_in(key, _RELABEL))
            y = jnp.asarray(self.data["y_train"])
            wrong = jax.random.bernoulli(k_pick, self.config.label_noise, y.shape)
            shift = jax.random.randint(k_shift, y.shape, 1, self.num_classes)
            state["labels"] = jnp.where(wrong, (y + shift) % self.num_classes, y)
        return state

    def block(
        self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int
    ) -> tuple[dict[str, Any], Block]:
        del key  # a step's data depend on the seed and the step alone
        steps = start + jnp.arange(n, dtype=jnp.int32)
        base = jax.random.fold_in(state["key"], _STEP)
        keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(steps)
        x, y = jax.vmap(lambda k, s: self._batch(state, k, s, self.batch_size))(keys, steps)
        return {**state, "step": start + n}, Block(x, y, self.task(steps))

    def probe(
        self, state: dict[str, Any], key: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``([size, D], [size])`` drawn as the next step would draw them."""
        return self._batch(state, key, state["step"], size)

    def evaluate(self, state: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The clean test split: ``([n_test, D], int [n_test])``."""
        x = jnp.asarray(self.data["x_test"]).astype(jnp.float32) / 255.0
        return x, jnp.asarray(self.data["y_test"])
