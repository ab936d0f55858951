"""Class-incremental learning (class-incremental CIFAR-100) of Dohare et al. (2024).

Classes. Each seed has its own class order (a permutation of the C classes drawn from its
stream key). Task t trains on the first ``n_t = min(C, initial_classes + t·class_increment)``
classes of that order (5, 10, …, 100 on CIFAR-100: 20 tasks); the class at position s of the
order has label s, so the network's output s stands for it and the loss and every accuracy
restrict the logits to outputs 0 … n_t − 1 (the official code gathers the logits of the
classes seen so far; the two are the same up to a relabeling of output units).

Examples. Per class, from the data set's training split: the first ``val_per_class`` images
are the validation set and the next ``train_per_class`` the training set (CIFAR-100: 50 /
450, as the official code); from its test split the first ``test_per_class`` (100). A task is
``epochs_per_task`` epochs (200); an epoch is one pass over the n_t·n training images of the
seen classes in minibatches of ``batch_size`` (90), shuffled afresh, so epochs grow with the
classes: E_t = n_t·n / batch steps (``check`` requires it whole). Tasks follow one another
without gaps; the task lengths and starts are static tables.

Inputs are normalized per channel by the training set's mean and standard deviation, then
augmented per image (``augment``): horizontal flip with probability ½, a random
``crop_padding``-pixel reflect-pad crop, a rotation by an angle uniform in
[0, ``max_rotation``]° (bilinear, zero fill — zero is the mean colour after
normalization). Evaluation images (validation, test, probes) are not augmented.

Targets are int32 pairs ``(label, n_t)``: the label and how many outputs are live.
``evaluate`` returns the test images of all C classes, labelled −1 (padding, ignored) for
the classes not seen yet, and ``output_mask`` the live outputs, so that shapes are the same
for every task. ``validation`` does the same for the validation set (the best-validation
model selection of :mod:`lopkit.benchmarks._class_incremental`).

Randomness (nothing stored per step): with ``k`` the seed's stream key, the class order is
``permutation(fold_in(k, 0), C)``; the example order of epoch e of task t comes from
``fold_in(fold_in(fold_in(k, 1), t), e)``; the augmentation of step s from
``fold_in(fold_in(k, 2), s)``.

References:
  Dohare et al. Loss of plasticity in deep continual learning. Nature 632 (2024), Methods
  "Class-incremental CIFAR-100"; official code
  ``lop/incremental_cifar/incremental_cifar_experiment.py``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lopkit import data as _data
from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit.streams._base import Block, Stream

INCREMENTAL_DATA = ("cifar100", "fashion_mnist", "mnist", "digits")
AUGMENTATIONS = ("flip", "crop", "rotate")
_ORDER, _SHUFFLE, _AUGMENT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class ClassIncrementalStreamConfig:
    """Class-incremental learning; defaults are class-incremental CIFAR-100 (Dohare et al.
    2024)."""

    data: str = field("cifar100", "labeled image set", choices=INCREMENTAL_DATA)
    data_dir: str | None = field(None, "data root (default $LOPKIT_DATA, else ~/.lopkit/data)")
    initial_classes: int = field(5, "classes of the first task", positive=True)
    class_increment: int = field(5, "classes added at each new task", positive=True)
    epochs_per_task: int = field(200, "epochs before the next classes are added", positive=True)
    train_per_class: int = field(450, "training images per class", positive=True)
    val_per_class: int = field(
        50, "validation images per class (before the training ones)", positive=True
    )
    test_per_class: int = field(100, "test images per class", positive=True)
    batch_size: int = field(90, "images per step", positive=True)
    augment: tuple[str, ...] = field(
        AUGMENTATIONS, "training augmentations", choices=AUGMENTATIONS, may_be_empty=True
    )
    crop_padding: int = field(4, "reflect padding of the random crop (pixels)", positive=True)
    max_rotation: float = field(
        15.0, "rotations uniform in [0, max_rotation] degrees", nonnegative=True
    )

    def check(self) -> None:
        for name in ("initial_classes", "class_increment"):
            n = getattr(self, name) * self.train_per_class
            if n % self.batch_size:
                raise ConfigError(
                    f"{name} × train_per_class ({n}) must be a multiple of batch_size "
                    f"({self.batch_size}), so that every epoch is a whole number of steps"
                )


@dataclasses.dataclass(frozen=True, eq=False)
class SplitImages:
    """uint8 images by class: ``train`` ``[C, n_train, H, W, ch]``, ``val`` ``[C, n_val, …]``,
    ``test`` ``[C, n_test, …]``; per-channel ``mean`` / ``std`` of the training images."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def _by_class(x: np.ndarray, y: np.ndarray, start: int, n: int, what: str) -> np.ndarray:
    classes = int(y.max()) + 1
    index = [np.flatnonzero(y == c) for c in range(classes)]
    smallest = min(len(i) for i in index)
    if start + n > smallest:
        raise ConfigError(
            f"{what}: {start + n} images per class needed, the smallest class has {smallest}"
        )
    return np.stack([x[i[start : start + n]] for i in index])


@functools.lru_cache(maxsize=2)
def _load(name: str, root: str, n_val: int, n_train: int, n_test: int) -> SplitImages:
    ds = _data.load(name, root)
    train_split = ds.x_train, ds.y_train
    val = _by_class(*train_split, 0, n_val, "val_per_class + train_per_class")
    train = _by_class(*train_split, n_val, n_train, "val_per_class + train_per_class")
    test = _by_class(ds.x_test, ds.y_test, 0, n_test, "test_per_class")
    pixels = train.reshape(-1, train.shape[-1]).astype(np.float64) / 255.0
    std = np.maximum(pixels.std(0), 1e-3)
    images = SplitImages(
        name, train, val, test, pixels.mean(0).astype(np.float32), std.astype(np.float32)
    )
    for a in (images.train, images.val, images.test):
        a.flags.writeable = False
    return images


def load_split_images(c: ClassIncrementalStreamConfig) -> SplitImages:
    """The images of ``c.data`` split by class (cached). Missing or corrupt files raise
    :class:`lopkit.data.DataError`; impossible sizes raise ConfigError."""
    root = str(_data.resolve_data_dir(c.data_dir))
    return _load(c.data, root, c.val_per_class, c.train_per_class, c.test_per_class)


class ClassIncremental(Stream):
    has_test_set = True
    masks_outputs = True

    """The stream of :class:`ClassIncrementalStreamConfig` (see the module docstring).

    State (one seed): ``{"key": the seed's stream key, "task": int32 task of the last step}``.
    """

    def __init__(self, config: ClassIncrementalStreamConfig, images: SplitImages | None = None):
        self.config = c = config
        images = images if images is not None else load_split_images(config)
        self.data = {"train": images.train, "val": images.val, "test": images.test}
        self.mean, self.std = images.mean, images.std
        self.num_classes = images.train.shape[0]
        self.image_shape = tuple(images.train.shape[2:])
        if c.initial_classes > self.num_classes:
            raise ConfigError(f"initial_classes={c.initial_classes} > {self.num_classes} classes")
        if (self.num_classes * c.train_per_class) % c.batch_size:
            raise ConfigError(
                f"{self.num_classes} classes × train_per_class must be a multiple of batch_size"
            )
        self.batch_size = c.batch_size
        extra = math.ceil((self.num_classes - c.initial_classes) / c.class_increment)
        classes = np.minimum(
            self.num_classes, c.initial_classes + c.class_increment * np.arange(extra + 1)
        )
        self.classes_per_task = classes.astype(np.int32)
        self.epoch_steps = (classes * c.train_per_class // c.batch_size).astype(np.int32)
        lengths = c.epochs_per_task * self.epoch_steps
        self.task_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        self.total_steps = int(lengths.sum())
        self.step_gcd = int(np.gcd.reduce(lengths))

    @property
    def num_tasks(self) -> int:
        return len(self.classes_per_task)

    # ---- the shared data set ----------------------------------------------------------
    @property
    def constants(self) -> dict[str, Any]:
        return self.data

    def bind(self, constants: dict[str, Any]) -> ClassIncremental:
        bound = copy.copy(self)
        bound.data = constants
        return bound

    # ---- the schedule (a function of the step only; the same for every seed) -----------
    def schedule(self, step: jax.Array) -> dict[str, jax.Array]:
        """Task, classes seen, epoch within the task, step within the epoch, and whether the
        step ends an epoch / a task, for global step(s) ``step``."""
        starts = jnp.asarray(self.task_starts)
        task = jnp.clip(jnp.searchsorted(starts, step, side="right") - 1, 0, self.num_tasks - 1)
        epoch_steps = jnp.asarray(self.epoch_steps)[task]
        within = step - starts[task]
        epoch, b = within // epoch_steps, within % epoch_steps
        epoch_end = b == epoch_steps - 1
        return {
            "task": task.astype(jnp.int32),
            "classes": jnp.asarray(self.classes_per_task)[task],
            "epoch": epoch,
            "index": b,
            "epoch_end": epoch_end,
            "task_end": epoch_end & (epoch == self.config.epochs_per_task - 1),
        }

    def class_order(self, state: dict[str, Any]) -> jax.Array:
        """The seed's class order, int32 ``[C]``: output s stands for class ``order[s]``."""
        key = jax.random.fold_in(state["key"], _ORDER)
        return jax.random.permutation(key, self.num_classes).astype(jnp.int32)

    # ---- images ------------------------------------------------------------------------
    def _normalize(self, pixels: jax.Array) -> jax.Array:
        return (pixels.astype(jnp.float32) / 255.0 - self.mean) / self.std

    def _positions(self, state, step):
        """Positions ``[batch]`` of step ``step`` among the C·n training images (position p:
        image p mod n of the class at slot ⌊p / n⌋ of the order; valid p < n_t·n)."""
        s = self.schedule(step)
        n = self.config.train_per_class
        key = jax.random.fold_in(jax.random.fold_in(state["key"], _SHUFFLE), s["task"])
        draws = jax.random.uniform(jax.random.fold_in(key, s["epoch"]), (self.num_classes * n,))
        draws = jnp.where(jnp.arange(self.num_classes * n) < s["classes"] * n, draws, 2.0)
        order = jnp.argsort(draws)  # a uniform shuffle of the valid positions, first
        pos = jax.lax.dynamic_slice(order, (s["index"] * self.batch_size,), (self.batch_size,))
        return pos, s

    def augment(self, x: jax.Array, key: jax.Array) -> jax.Array:
        """Augment a batch ``[B, H, W, ch]`` (see the module docstring)."""
        c = self.config
        k_flip, k_crop, k_rot = jax.random.split(key, 3)
        b, h, w, _ = x.shape
        if "flip" in c.augment:
            flip = jax.random.bernoulli(k_flip, 0.5, (b,))
            x = jnp.where(flip[:, None, None, None], x[:, :, ::-1], x)
        if "crop" in c.augment:
            p = c.crop_padding
            padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
            offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
            x = jax.vmap(
                lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, im.shape[-1]))
            )(padded, offsets)
        if "rotate" in c.augment and c.max_rotation > 0:
            angles = jnp.deg2rad(jax.random.uniform(k_rot, (b,), maxval=c.max_rotation))
            x = jax.vmap(_rotate)(x, angles)
        return x

    # ---- the stream protocol ------------------------------------------------------------
    def init(self, key: jax.Array) -> dict[str, Any]:
        return {"key": key, "task": jnp.zeros((), jnp.int32)}

    def block(self, state, key, start, n):
        """Steps start … start+n−1: x ``[n, batch, H, W, ch]`` (normalized, augmented),
        y int32 ``[n, batch, 2]`` (label, live outputs). ``key`` is unused."""
        del key
        steps = start + jnp.arange(n, dtype=jnp.int32)
        pos, s = jax.vmap(lambda t: self._positions(state, t))(steps)
        order = self.class_order(state)
        n_tr = self.config.train_per_class
        slot = pos // n_tr
        x = self._normalize(jnp.asarray(self.data["train"])[order[slot], pos % n_tr])
        k_aug = jax.random.fold_in(state["key"], _AUGMENT)
        x = jax.vmap(lambda xs, t: self.augment(xs, jax.random.fold_in(k_aug, t)))(x, steps)
        live = jnp.broadcast_to(s["classes"][:, None], slot.shape)
        y = jnp.stack([slot, live], -1).astype(jnp.int32)
        return {**state, "task": s["task"][-1]}, Block(x, y, s["task"])

    def _held_out(self, state, split: str, classes: jax.Array):
        """All C classes' images of ``split`` (in order slots), labels −1 where unseen."""
        images = jnp.asarray(self.data[split])[self.class_order(state)]  # [C, n, …]
        per = images.shape[1]
        slots = jnp.repeat(jnp.arange(self.num_classes, dtype=jnp.int32), per)
        labels = jnp.where(slots < classes, slots, -1)
        return self._normalize(images.reshape(-1, *self.image_shape)), labels

    def _classes(self, state) -> jax.Array:
        return jnp.asarray(self.classes_per_task)[state["task"]]

    def evaluate(self, state):
        """The test images of every class, labels −1 for classes not seen yet."""
        return self._held_out(state, "test", self._classes(state))

    def validation(self, state, step):
        """The validation images of every class, labels −1 for classes not seen at ``step``."""
        return self._held_out(state, "val", self.schedule(step)["classes"])

    def output_mask(self, state) -> jax.Array:
        """bool ``[C]``: the outputs of the classes seen so far."""
        return jnp.arange(self.num_classes) < self._classes(state)

    def probe(self, state, key, size):
        """``size`` training images of the seen classes (not augmented) and their targets."""
        classes = self._classes(state)
        n_tr = self.config.train_per_class
        pos = jax.random.randint(key, (size,), 0, classes * n_tr)
        slot = pos // n_tr
        x = self._normalize(
            jnp.asarray(self.data["train"])[self.class_order(state)[slot], pos % n_tr]
        )
        y = jnp.stack([slot, jnp.full_like(slot, classes)], -1).astype(jnp.int32)
        return x, y


def _rotate(image: jax.Array, angle: jax.Array) -> jax.Array:
    """Rotate ``[H, W, ch]`` by ``angle`` radians about its centre (bilinear, zero fill)."""
    h, w, _ = image.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_y = cos * (yy - cy) - sin * (xx - cx) + cy  # inverse map: output pixel → source pixel
    src_x = sin * (yy - cy) + cos * (xx - cx) + cx
    channels = jnp.moveaxis(image, -1, 0)
    rotated = jax.vmap(
        lambda ch: jax.scipy.ndimage.map_coordinates(
            ch, [src_y, src_x], order=1, mode="constant", cval=0.0
        )
    )(channels)
    return jnp.moveaxis(rotated, 0, -1)
