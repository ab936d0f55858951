"""The plain remedies: backprop (no change), coupled L2, and shrink-and-perturb."""

from __future__ import annotations

import dataclasses

import optax

from lopkit._config import field, static_zero
from lopkit.methods._base import Context, EmptyConfig, Parts, Remedy
from lopkit.methods._transforms import add_param_noise, add_scaled_params


def _backprop(config: EmptyConfig, ctx: Context) -> Parts:
    return Parts()


BACKPROP = Remedy(
    name="backprop",
    summary="plain SGD or Adam, as the benchmark configures it (the baseline)",
    source="Rumelhart, Hinton & Williams 1986",
    config=EmptyConfig,
    build=_backprop,
    parts=(),
)


@dataclasses.dataclass(frozen=True)
class L2Config:
    """Coupled L2: g ← g + λθ on every parameter (PyTorch's SGD/Adam ``weight_decay``).

    The paper swept λ for slowly-changing regression (1e-6 … 1); MNIST used 1e-4 and
    continual ImageNet 3e-6. Benchmarks set their own default.
    """

    weight_decay: float = field(1e-4, "λ, added as λθ to the gradient", nonnegative=True, axis=True)


def _l2(config: L2Config, ctx: Context) -> Parts:
    return Parts(gradient=add_scaled_params(config.weight_decay))


L2 = Remedy(
    name="l2",
    summary="L2 regularization: add λθ to the gradient",
    source="Dohare et al. 2024 (Nature), Methods",
    config=L2Config,
    build=_l2,
    parts=("gradient",),
)


@dataclasses.dataclass(frozen=True)
class ShrinkPerturbConfig:
    """Every step: coupled weight decay, then θ += N(0, σ²) (Dohare et al. 2024's variant of
    Ash & Adams 2020, applied continually rather than once at a task boundary)."""

    weight_decay: float = field(
        1e-4, "λ, added as λθ to the gradient (the shrink)", nonnegative=True, axis=True
    )
    noise_std: float = field(
        1e-5, "σ of the Gaussian noise added to every parameter", nonnegative=True, axis=True
    )


def _shrink_perturb(config: ShrinkPerturbConfig, ctx: Context) -> Parts:
    noise = config.noise_std
    update = optax.identity() if static_zero(noise) else add_param_noise(noise)
    return Parts(gradient=add_scaled_params(config.weight_decay), update=update)


SHRINK_PERTURB = Remedy(
    name="shrink_perturb",
    summary="shrink-and-perturb every step: weight decay, then Gaussian noise on the weights",
    source="Ash & Adams 2020; continual form of Dohare et al. 2024",
    config=ShrinkPerturbConfig,
    build=_shrink_perturb,
    parts=("gradient", "update"),
)
