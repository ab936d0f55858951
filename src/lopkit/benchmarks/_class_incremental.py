"""Class-incremental learning (class-incremental CIFAR-100) as a benchmark.

Defaults are the paper's (Dohare et al. 2024, Methods "Class-incremental CIFAR-100";
official ``lop/incremental_cifar``): ResNet-18 (:mod:`lopkit.nets._resnet`), 5 classes at
first and 5 more every 200 epochs (20 tasks), 450 / 50 / 100 train / validation / test images
per class, batch 90, SGD with step size 0.1, momentum 0.9 and weight decay 5e-4 (added to
the gradient, as PyTorch's SGD does), the step size × 0.2 at epochs 60, 120 and 160 of
every task; flips, 4-pixel reflect-pad crops and rotations up to 15°; cross-entropy over
the classes seen so far.

Model selection (:class:`BestValidation`, the benchmark's protocol): at the end of every
epoch the validation accuracy on the classes seen so far is measured; the weights (and
BatchNorm statistics) of the best epoch of the task are kept, and restored at the task's
end, before the next classes arrive. The optimizer state is not restored (as the official
code). The "retrained network" baseline of the paper is ``--method reset_all`` (a fresh
network and optimizer at each new task); its "head reset" is ``reset_head``.

Reported: the online training accuracy (``train_accuracy``), and ``test_accuracy`` on the
test images of the classes seen so far every ``metrics_every`` steps: by default the
greatest common divisor of the task lengths, so that every task's end is a snapshot (the
paper's curve: test accuracy at the end of each task).

The step-size schedule reads the global step (the learner passes it to the optimizer as the
extra argument ``step``): it depends on the epoch within the task, whatever a remedy does to
the optimizer's own counters (``reset_all`` zeroes them at every task).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from lopkit import _config
from lopkit._config import field, to_dict
from lopkit._errors import ConfigError
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem, optimizer_settings
from lopkit.engine import _probes
from lopkit.nets._resnet import ResNet, ResNetConfig
from lopkit.streams._class_incremental import ClassIncremental, ClassIncrementalStreamConfig

BLOCK_FLOATS = 4_000_000  # at most this many input floats generated at once per seed


@dataclasses.dataclass(frozen=True)
class ClassIncrementalConfig(ClassIncrementalStreamConfig, OptimizerConfig):
    """Class-incremental CIFAR-100 (Dohare et al. 2024): stream, ResNet-18, SGD with
    momentum, weight decay and a step-size schedule within each task."""

    lr: float = field(0.1, "step size α at the start of every task", positive=True)
    momentum: float = field(0.9, "SGD momentum", open_unit=True)
    weight_decay: float = field(5e-4, "λ: λθ added to the gradient (PyTorch SGD)", nonnegative=True)
    lr_milestones: tuple[int, ...] = field(
        (60, 120, 160),
        "epochs of a task at which the step size is multiplied by lr_decay",
        nonnegative=True,
        may_be_empty=True,
    )
    lr_decay: float = field(0.2, "step-size factor at each milestone", positive=True)
    widths: tuple[int, ...] = field((64, 128, 256, 512), "ResNet stage widths", positive=True)
    blocks: tuple[int, ...] = field((2, 2, 2, 2), "ResNet blocks per stage", positive=True)
    conv: str = field("im2col", "convolution: im2col (CPU) or xla (GPU)", choices=("im2col", "xla"))


def _stream_config(c: ClassIncrementalConfig) -> ClassIncrementalStreamConfig:
    d = to_dict(c)
    names = [f.name for f in dataclasses.fields(ClassIncrementalStreamConfig)]
    return _config.build(ClassIncrementalStreamConfig, {k: d[k] for k in names})


def masked_logits(out: jax.Array, live: jax.Array) -> jax.Array:
    """Logits with outputs ≥ ``live`` (classes not seen yet) at −∞. out ``[B, C]``."""
    return jnp.where(jnp.arange(out.shape[-1]) < live, out, -jnp.inf)


def cross_entropy(out: jax.Array, y: jax.Array) -> jax.Array:
    """mean −log softmax over the live outputs; y int32 ``[B, 2]`` (label, live outputs)."""
    logits = masked_logits(out, y[:, 1:2])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y[:, 0]))


def accuracy(out: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of the batch whose arg-max among the live outputs is the label."""
    return jnp.mean(jnp.argmax(masked_logits(out, y[:, 1:2]), -1) == y[:, 0])


def step_size(c: ClassIncrementalConfig, epoch: jax.Array) -> jax.Array:
    """α · decay^(number of milestones ≤ epoch): the step size at ``epoch`` of a task."""
    passed = sum((epoch >= m).astype(jnp.int32) for m in c.lr_milestones)
    return c.lr * c.lr_decay ** jnp.asarray(passed, jnp.float32)


def scale_by_task_schedule(
    c: ClassIncrementalConfig, stream: ClassIncremental
) -> optax.GradientTransformationExtraArgs:
    """Multiply updates by −α(epoch within the task at global step ``step``) (the learner
    passes ``step``; without it, −α)."""

    def update(updates, state, params=None, *, step=None, **extra):
        del params, extra
        epoch = jnp.zeros((), jnp.int32) if step is None else stream.schedule(step)["epoch"]
        scale = -step_size(c, epoch)
        return jax.tree_util.tree_map(lambda u: scale * u, updates), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def make_optimizer_fn(c: ClassIncrementalConfig, stream: ClassIncremental):
    """The base optimizer from the optimizer dict (remedies may change it): weight decay added
    to the gradient, then SGD momentum or Adam's scaling, then the scheduled step size."""

    def make(o: dict[str, Any]) -> optax.GradientTransformation:
        if o["optimizer"] == "sgd":
            if _config.static_zero(o["momentum"]):
                core = optax.identity()
            else:
                core = optax.trace(decay=o["momentum"])
        else:
            core = optax.scale_by_adam(b1=o["beta1"], b2=o["beta2"], eps=o["eps"])
        decay = optax.add_decayed_weights(c.weight_decay) if c.weight_decay else optax.identity()
        return optax.chain(decay, core, scale_by_task_schedule(c, stream))

    return make


@dataclasses.dataclass(frozen=True, eq=False)
class BestValidation:
    """Keep the best-validation weights of the current task; restore them at its end.

    State (one seed): ``{"params": the best weights so far in the task, "accuracy": their
    validation accuracy (−1 before the task's first epoch end)}``. At the end of every epoch
    (a step that ends one; the same step for every seed) the validation accuracy on the
    classes seen so far is measured on the current weights; better weights are kept. At the
    end of the task's last epoch the kept weights replace the current ones and the search
    starts afresh for the next task.
    """

    net: Any

    def check(self, method: Any) -> None:
        """Refuse a method whose predictions are not the trained params' (an ``evaluation``
        part: hare & tortoise's slow network). The selection measures the trained params
        and restores them; the predicting params live in the remedy's state, which it can
        neither measure as the params nor restore, so the kept "best" weights would be
        ones that never predict."""
        if not method.has_evaluation:
            return
        owner = next(n for n, p in zip(method.names, method.parts, strict=True) if p.evaluation)
        raise ConfigError(
            f"{owner} cannot run on class_incremental: the benchmark keeps the weights of the "
            f"epoch with the best validation accuracy and restores them at each task's end, "
            f"but those are the trained params, while {owner} predicts with other params (its "
            "slow network), which the selection can neither measure nor restore; use "
            f"{owner} on a benchmark without model selection"
        )

    def init(self, params: Any) -> dict[str, Any]:
        return {"params": params, "accuracy": jnp.full((), -1.0, jnp.float32)}

    def validation_accuracy(self, params, stream, stream_state, step) -> jax.Array:
        x, labels = stream.validation(stream_state, step)
        out = self.net.apply(params, x)[0]
        live = stream.schedule(step)["classes"]
        correct = (jnp.argmax(masked_logits(out, live), -1) == labels) & (labels >= 0)
        return jnp.sum(correct) / jnp.maximum(jnp.sum(labels >= 0), 1)

    def after_step(self, state, learner_state, stream, stream_state, step):
        s = stream.schedule(step)

        def at_epoch_end(args):
            state, learner = args
            acc = self.validation_accuracy(learner["params"], stream, stream_state, step)
            better = acc > state["accuracy"]
            pick = lambda cond: lambda a, b: jnp.where(cond, a, b)  # noqa: E731
            best = jax.tree_util.tree_map(pick(better), learner["params"], state["params"])
            accuracy = jnp.where(better, acc, state["accuracy"])
            params = jax.tree_util.tree_map(pick(s["task_end"]), best, learner["params"])
            accuracy = jnp.where(s["task_end"], -1.0, accuracy)
            return {"params": best, "accuracy": accuracy}, {**learner, "params": params}

        return jax.lax.cond(s["epoch_end"], at_epoch_end, lambda args: args, (state, learner_state))


def make_resnet(network: dict[str, Any]) -> ResNet:
    """The ResNet of a network dict (unknown keys, e.g. an MLP-only remedy's, are errors)."""
    return ResNet(_config.build(ResNetConfig, network))


def build(c: ClassIncrementalConfig) -> Problem:
    stream = ClassIncremental(_stream_config(c))
    network = {
        "input_shape": stream.image_shape,
        "widths": c.widths,
        "blocks": c.blocks,
        "outputs": stream.num_classes,
        "conv": c.conv,
    }
    net = make_resnet(network)
    if c.optimizer == "adam" and c.momentum:
        raise ConfigError("momentum applies to SGD only; set momentum=0 with optimizer=adam")
    return Problem(
        stream=stream,
        network=network,
        make_network=make_resnet,
        loss_fn=cross_entropy,
        error_fn=accuracy,
        error_name="train_accuracy",
        optimizer=optimizer_settings(c),
        seed_map="map",
        optimizer_fn=make_optimizer_fn(c, stream),
        protocol=BestValidation(net),
    )


def run_defaults(c: ClassIncrementalConfig) -> dict[str, Any]:
    """Every task, to its end; bins and snapshots every gcd of the task lengths (every task's
    end is one); blocks small enough for image batches."""
    stream = ClassIncremental(_stream_config(c))
    g = stream.step_gcd
    per_step = c.batch_size * math.prod(stream.image_shape)
    block = max([d for d in range(1, g + 1) if g % d == 0 and d * per_step <= BLOCK_FLOATS] or [1])
    return {
        "steps": stream.total_steps,
        "bin_size": g,
        "metrics_every": g,
        "block_size": block,
        "metrics": ("test_accuracy", *_probes.DEFAULT_PROBES),
        "probe_size": 1_000,
    }


CLASS_INCREMENTAL = Benchmark(
    name="class_incremental",
    summary="class-incremental CIFAR-100: 5 classes, +5 every 200 epochs, ResNet-18, best-val",
    source="Dohare et al. 2024 (Nature), Methods 'Class-incremental CIFAR-100'",
    config=ClassIncrementalConfig,
    build=build,
    # Official cfg (lop/incremental_cifar/cfg): CBP ρ 1e-5, m 1000, contribution utility,
    # the fraction carried over (ResGnT always accumulates); shrink-and-perturb: weight
    # decay as the benchmark's, noise 1e-5.
    remedy_defaults={
        "cbp": {
            "replacement_rate": 1e-5,
            "maturity_threshold": 1000,
            "decay_rate": 0.99,
            "utility": "contribution",
            "accumulate": True,
        },
        "shrink_perturb": {"weight_decay": 0.0, "noise_std": 1e-5},
    },
    run_defaults=run_defaults,
)
