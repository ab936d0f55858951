"""Continual binary tasks from a labeled image set (continual ImageNet) of Dohare et al. (2024).

Classes. Each seed has its own class order, a permutation of the C classes drawn from its
stream key. Task t is the pair of classes at positions (2t, 2t+1) of the order, relabeled
0 and 1. A pass over the classes holds ⌊C/2⌋ tasks; later tasks either reuse the same order
(``class_order="repeat"``, as the official code does by concatenating copies of it) or a
fresh permutation per pass (``"redraw"``: more distinct pairs on small label sets).

Examples. Per class ``train_per_class`` training and ``test_per_class`` test images:
ImageNet 32×32 600 / 100 (its first 600 / last 100 images of the class, as the official
code), the other sets the first images of each class in their own train / test split, by
default as many as the smallest class has (so every class holds the same number and every
task has the same shape). A task is ``epochs_per_task`` passes over its 2·n training images
in minibatches of ``batch_size``, shuffled afresh each epoch; an epoch has ⌊2n / batch⌋
steps (a remainder, if any, is left out of that epoch — a different remainder each epoch).

Randomness (nothing stored per step): with ``k`` the seed's stream key, the class order of
pass r is ``permutation(fold_in(fold_in(k, 0), r), C)`` (r = 0 for ``repeat``) and the
example order of epoch e of task t is ``permutation(fold_in(fold_in(fold_in(k, 1), t), e),
2n)``; step s belongs to task ⌊s / S⌋ (S = epochs · steps per epoch) and reads its batch
from positions given by s alone, so a block may start or end anywhere.

Data. The images are the stream's :attr:`constants` (uint8 ``[C, n, H, W, ch]``, shared by
every seed; the engine passes them to the compiled program as an argument) and are
converted per batch: ``x = pixels · pixel_scale`` (1/255: inputs in [0, 1]; the official
code feeds the raw 0–255 values, ``pixel_scale=1``). Targets are int labels 0/1.

Which task a snapshot sees: ``probe`` and ``evaluate`` use the task of the last step done,
so with one bin per task the snapshot at the end of task t measures task t (its test
accuracy: the paper's "test accuracy at the end of each task").

References:
  Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton. Loss of plasticity in deep
  continual learning. Nature 632, 768–774 (2024), Methods "Continual ImageNet"; official
  code ``lop/imagenet/online_batch_expr.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lopkit import data as _data
from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.streams._base import Block, Stream

BINARY_DATA = ("imagenet32", "cifar100", "fashion_mnist", "mnist", "digits")
IMAGENET_TRAIN, IMAGENET_TEST = 600, 100  # images 0–599 / 600–699 of each class
_ORDER, _SHUFFLE = 0, 1


@dataclasses.dataclass(frozen=True)
class BinaryStreamConfig:
    """Continual binary tasks; defaults are continual ImageNet (Dohare et al. 2024)."""

    data: str = field("imagenet32", "labeled image set", choices=BINARY_DATA)
    data_dir: str | None = field(None, "data root (default $LOPKIT_DATA, else ~/.lopkit/data)")
    num_classes: int = field(0, "classes used: the first k of the set (0: all)", nonnegative=True)
    train_per_class: int = field(
        0, "training images per class (0: ImageNet 600, else the smallest class)", nonnegative=True
    )
    test_per_class: int = field(
        0, "test images per class (0: ImageNet 100, else the smallest class)", nonnegative=True
    )
    epochs_per_task: int = field(250, "passes over a task's training images", positive=True)
    batch_size: int = field(100, "images per step", positive=True)
    class_order: str = field(
        "repeat",
        "after ⌊C/2⌋ tasks: repeat the seed's class order (official code) or redraw it",
        choices=("repeat", "redraw"),
    )
    pixel_scale: float = field(1 / 255, "input = pixel value × pixel_scale", positive=True)

    def check(self) -> None:
        if self.num_classes == 1:
            raise ConfigError("num_classes must be 0 (all) or at least 2 for binary tasks")


@dataclasses.dataclass(frozen=True, eq=False)
class ClassImages:
    """Images grouped by class: ``x_train`` uint8 ``[C, n_train, H, W, ch]``, ``x_test``
    uint8 ``[C, n_test, H, W, ch]``; class ``c`` of the set is row ``c``."""

    name: str
    x_train: np.ndarray
    x_test: np.ndarray

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[2:])  # type: ignore[return-value]


def _per_class(x: np.ndarray, y: np.ndarray, classes: int, n: int, what: str) -> np.ndarray:
    """The first ``n`` images of each class (n = 0: as many as the smallest class has)."""
    index = [np.flatnonzero(y == c) for c in range(classes)]
    smallest = min(len(i) for i in index)
    if n > smallest:
        raise ConfigError(
            f"{what}_per_class={n} exceeds the smallest class ({smallest} {what} images)"
        )
    n = n or smallest
    return np.stack([x[i[:n]] for i in index])


@functools.lru_cache(maxsize=2)
def _load(name: str, root: str, num_classes: int, n_train: int, n_test: int) -> ClassImages:
    if name == "imagenet32":
        if n_train > IMAGENET_TRAIN or n_test > IMAGENET_TEST:
            raise ConfigError(
                f"ImageNet 32×32 has {IMAGENET_TRAIN} training and {IMAGENET_TEST} test images "
                f"per class; got train_per_class={n_train}, test_per_class={n_test}"
            )
        classes = list(range(num_classes)) if num_classes else None
        images = _data.load_imagenet32_classes(classes, root)
        x_train = images[:, : n_train or IMAGENET_TRAIN]
        x_test = images[:, IMAGENET_TRAIN : IMAGENET_TRAIN + (n_test or IMAGENET_TEST)]
    else:
        ds = _data.load(name, root)
        k = num_classes or ds.num_classes
        if k > ds.num_classes:
            raise ConfigError(f"num_classes={k} but {name} has {ds.num_classes} classes")
        x_train = _per_class(ds.x_train, ds.y_train, k, n_train, "train")
        x_test = _per_class(ds.x_test, ds.y_test, k, n_test, "test")
    arrays = ClassImages(name, x_train, x_test)
    for a in (arrays.x_train, arrays.x_test):
        a.flags.writeable = False  # shared by every stream built from the cache
    return arrays


def load_class_images(c: BinaryStreamConfig) -> ClassImages:
    """The images of ``c.data`` grouped by class (cached). Missing or corrupt files raise
    :class:`lopkit.data.DataError`; impossible sizes raise ConfigError."""
    root = str(_data.resolve_data_dir(c.data_dir))
    return _load(c.data, root, c.num_classes, c.train_per_class, c.test_per_class)


class BinaryTasks(Stream):
    has_test_set = True

    """The stream of :class:`BinaryStreamConfig` (see the module docstring).

    State (one seed): ``{"key": uint32[2] the seed's stream key, "task": int32 the task of
    the last step done (0 before any)}``.
    """

    def __init__(self, config: BinaryStreamConfig, images: ClassImages | None = None):
        self.config = config
        images = images if images is not None else load_class_images(config)
        self.image_shape = images.image_shape
        self.data = {"x_train": images.x_train, "x_test": images.x_test}
        self.num_classes, self.train_per_class = images.x_train.shape[:2]
        self.test_per_class = images.x_test.shape[1]
        if self.num_classes < 2:
            raise ConfigError(f"{images.name} has {self.num_classes} class: need at least 2")
        self.batch_size = config.batch_size
        self.steps_per_epoch = 2 * self.train_per_class // config.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"batch_size={config.batch_size} exceeds a task's "
                f"{2 * self.train_per_class} training images"
            )
        self.steps_per_task = config.epochs_per_task * self.steps_per_epoch
        self.tasks_per_pass = self.num_classes // 2

    # ---- the shared data set ----------------------------------------------------------
    @property
    def constants(self) -> dict[str, Any]:
        return self.data

    def bind(self, constants: dict[str, Any]) -> BinaryTasks:
        bound = copy.copy(self)
        bound.data = constants
        return bound

    # ---- classes and examples -----------------------------------------------------------
    def class_order(self, state: dict[str, Any], round_: jax.Array | int = 0) -> jax.Array:
        """The seed's class order for pass ``round_`` over the classes: int32 ``[C]``."""
        r = round_ if self.config.class_order == "redraw" else 0
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _ORDER), r)
        return jax.random.permutation(key, self.num_classes).astype(jnp.int32)

    def task_classes(self, state: dict[str, Any], task: jax.Array | int) -> jax.Array:
        """The classes (label 0, label 1) of task ``task``: int32 ``[2]``."""
        order = self.class_order(state, task // self.tasks_per_pass)
        return jax.lax.dynamic_slice(order, (2 * (task % self.tasks_per_pass),), (2,))

    def _positions(self, state: dict[str, Any], step: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(task, positions int32 ``[batch]`` in the task's 2n training images) of a step."""
        task = step // self.steps_per_task
        within = step % self.steps_per_task
        epoch, b = within // self.steps_per_epoch, within % self.steps_per_epoch
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _SHUFFLE), task)
        order = jax.random.permutation(jax.random.fold_in(key, epoch), 2 * self.train_per_class)
        return task, jax.lax.dynamic_slice(order, (b * self.batch_size,), (self.batch_size,))

    def _images(self, split: str, classes: jax.Array, pos: jax.Array, n: int) -> tuple:
        """Images and 0/1 labels at positions ``pos`` (``[..., m]``) of a task with classes
        ``classes`` (``[..., 2]``): position p is image p mod n of class slot ⌊p / n⌋."""
        slot = pos // n
        cls = jnp.take_along_axis(classes, slot, axis=-1)
        pixels = jnp.asarray(self.data[split])[cls, pos % n]
        return pixels.astype(jnp.float32) * self.config.pixel_scale, slot.astype(jnp.int32)

    # ---- the stream protocol ------------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        return {"key": key, "task": jnp.zeros((), jnp.int32)}

    def block(
        self, state: dict[str, Any], key: jax.Array, start: jax.Array, n: int
    ) -> tuple[dict[str, Any], Block]:
        """Steps start … start+n−1: x ``[n, batch, H, W, ch]`` float32, y int32 ``[n, batch]``.

        ``key`` is unused: every step's data follow from the seed's stream key and the step.
        """
        del key
        steps = start + jnp.arange(n, dtype=jnp.int32)
        task, pos = jax.vmap(lambda s: self._positions(state, s))(steps)
        classes = jax.vmap(lambda t: self.task_classes(state, t))(task)
        x, y = self._images("x_train", classes, pos, self.train_per_class)
        return {**state, "task": task[-1]}, Block(x, y, task)

    def probe(
        self, state: dict[str, Any], key: jax.Array, size: int
    ) -> tuple[jax.Array, jax.Array]:
        """``size`` training images of the current task (without replacement when the task
        has that many) and their labels: ``([size, H, W, ch], int32 [size])``."""
        total = 2 * self.train_per_class
        if size <= total:
            pos = jax.random.permutation(key, total)[:size]
        else:
            pos = jax.random.randint(key, (size,), 0, total)
        classes = self.task_classes(state, state["task"])
        return self._images("x_train", classes, pos, self.train_per_class)

    def evaluate(self, state: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """The current task's test images (class 0's, then class 1's) and their labels:
        ``([2·n_test, H, W, ch], int32 [2·n_test])``."""
        classes = self.task_classes(state, state["task"])
        pos = jnp.arange(2 * self.test_per_class, dtype=jnp.int32)
        return self._images("x_test", classes, pos, self.test_per_class)
