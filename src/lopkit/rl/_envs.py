"""Control tasks (gymnax's classic control) and the ways they change.

An environment follows gymnax's protocol (``reset(key, params)``, ``step(key, state, action,
params)``, its physical constants an explicit ``EnvParams`` pytree), so non-stationarity is
data: a per-seed schedule of params values, traced, never a recompilation (docs/design.md §13).

A *change* says what differs between one task (stretch of constant environment) and the
next:

* a physics change sets one physical constant to a value drawn per seed and per task,
  log-uniformly (or uniformly) on a range — by default [½, 2] × gymnax's default value;
  CartPole's derived constants (``total_mass``, ``polemass_length``) follow their inputs;
* ``permutation``: a new fixed permutation of the observation's entries (Juliani & Ash,
  "A study of plasticity loss in on-policy deep RL", 2024);
* ``none``: a constant environment (the extended-training result of Dohare et al. 2024).

Task 0 is gymnax's default environment (identity permutation); task k ≥ 1 draws from
``fold_in(change key, k)``, so a seed's sequence is reproducible and independent of every
other seed's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class PhysicsChange:
    """A physical constant of the env: its ``EnvParams`` field and how dependents follow."""

    param: str  # the gymnax EnvParams field
    derived: Callable[[Any], dict[str, Any]] | None = None  # params -> dependent fields


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    name: str
    gymnax_id: str
    discrete: bool
    changes: dict[str, PhysicsChange]
    summary: str

    def make(self) -> tuple[Any, Any]:
        import gymnax  # here: importing gymnax starts JAX's backend (docs/design.md §7)

        env, params = gymnax.make(self.gymnax_id)
        return env, params


def _cartpole_derived(p: Any) -> dict[str, Any]:
    # gymnax's CartPole reads these products instead of recomputing them.
    return {"total_mass": p.masscart + p.masspole, "polemass_length": p.masspole * p.length}


_CARTPOLE = PhysicsChange("", _cartpole_derived)

ENVS: dict[str, EnvSpec] = {
    "cartpole": EnvSpec(
        "cartpole",
        "CartPole-v1",
        True,
        {
            name: dataclasses.replace(_CARTPOLE, param=name)
            for name in ("gravity", "masscart", "masspole", "length", "force_mag")
        },
        "CartPole-v1: balance a pole on a cart, 2 actions, ≤ 500 steps",
    ),
    "pendulum": EnvSpec(
        "pendulum",
        "Pendulum-v1",
        False,
        {"gravity": PhysicsChange("g"), "mass": PhysicsChange("m"), "length": PhysicsChange("l")},
        "Pendulum-v1: swing up and hold, 1 continuous torque, 200 steps",
    ),
    "mountaincar": EnvSpec(
        "mountaincar",
        "MountainCarContinuous-v0",
        False,
        {"gravity": PhysicsChange("gravity"), "power": PhysicsChange("power")},
        "MountainCarContinuous-v0: drive up the hill, 1 continuous force, ≤ 999 steps",
    ),
    "acrobot": EnvSpec(
        "acrobot",
        "Acrobot-v1",
        True,
        {
            name: PhysicsChange(name)
            for name in ("link_mass_1", "link_mass_2", "link_length_1", "link_length_2")
        },
        "Acrobot-v1: swing the tip above the bar, 3 actions, ≤ 500 steps",
    ),
}
GENERIC_CHANGES = ("none", "permutation")


def changes_of(env: str) -> tuple[str, ...]:
    return GENERIC_CHANGES + tuple(ENVS[env].changes)


def default_value(env: str, change: str) -> float:
    _, params = ENVS[env].make()
    return float(getattr(params, ENVS[env].changes[change].param))


def with_value(env: str, change: str, params: Any, value: jax.Array) -> Any:
    """``params`` with the changed constant set to ``value`` (and its dependents updated)."""
    spec = ENVS[env].changes[change]
    params = params.replace(**{spec.param: value})
    if spec.derived is not None:
        params = params.replace(**spec.derived(params))
    return params


def draw_value(key: jax.Array, low: float, high: float, scale: str) -> jax.Array:
    """One value on [low, high]: log-uniform (``scale="log"``) or uniform."""
    u = jax.random.uniform(key, (), jnp.float32)
    if scale == "log":
        return jnp.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


def traced_params(params: Any) -> Any:
    """gymnax's default params with float leaves as float32 arrays (so a value can be traced
    into them); integer leaves (the time limit) stay as they are."""

    def leaf(x):
        if isinstance(x, float):
            return jnp.asarray(x, jnp.float32)
        return x

    return jax.tree_util.tree_map(leaf, params)
