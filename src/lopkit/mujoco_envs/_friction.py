"""Slippery Ant's friction schedule: a per-seed sequence and the rule for when it advances.

Dohare et al. (Nature 2024), Methods "Reinforcement learning" and the official code
(``lop/rl/run_ppo.py``, ``lop/rl/cfg/frictions``; docs/design.md §13): every seed has its own
sequence of sliding-friction values, log-uniform on [0.02, 2] (flat in log10); the agent
starts on the first value, and the next one takes effect at the first episode end more than
``change_every`` (2M) env steps after the previous change (``step - previous_change_time >
change_time``, steps counted from 0, the previous change time starting at 0). The
``constant`` variant ("Ant, constant friction") keeps the model's own friction, 1.0.

The official sequences are a fixed file (100 seeds × 50 values); lopkit derives them from
``(base_seed, seed)`` instead, so any number of seeds is available and each is reproducible
and independent of the others. Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from lopkit._config import field, validate
from lopkit._errors import ConfigError

SCHEDULES = ("slippery", "constant")

# A stream tag keeps the friction draws apart from every other use of (base_seed, seed).
_FRICTION_STREAM = 0x5A17


@dataclasses.dataclass(frozen=True)
class FrictionConfig:
    """The friction schedule of Slippery Ant (defaults: docs/design.md §13; official
    ``run_ppo.py``).

    ``slippery``: per-seed log-uniform values on [``low``, ``high``] = [0.02, 2] (official
    ``cfg['friction']``), changed at the first episode end more than ``change_every`` = 2M
    steps after the previous change (official ``change_time``). ``constant``: the friction
    is ``constant_value`` = 1.0 (the Ant XML's default geom friction) for the whole run.
    """

    schedule: str = field("slippery", "slippery (per-seed changes) or constant", choices=SCHEDULES)
    low: float = field(0.02, "smallest sliding friction of the log-uniform range", positive=True)
    high: float = field(2.0, "largest sliding friction of the log-uniform range", positive=True)
    change_every: int = field(
        2_000_000, "env steps after the previous change before the next one is due", positive=True
    )
    constant_value: float = field(1.0, "the friction of the constant schedule", positive=True)

    def check(self) -> None:
        if not self.low <= self.high:
            raise ConfigError(
                f"FrictionConfig.low must be <= high, got low={self.low!r}, high={self.high!r}"
            )

    def __post_init__(self) -> None:
        validate(self)


def check_friction(value: float | np.ndarray, where: str = "friction") -> None:
    """Raise ConfigError unless every value is a finite number > 0 (MuJoCo needs μ > 0)."""
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ConfigError(f"{where} must be finite and > 0, got {value!r}")


def friction_sequence(config: FrictionConfig, base_seed: int, seed: int, length: int) -> np.ndarray:
    """The first ``length`` friction values of ``seed``: ``[length]`` float64.

    ``slippery``: ``10 ** u``, ``u`` uniform on [log10 low, log10 high], drawn from a PCG64
    stream keyed by ``(base_seed, seed)`` (numpy's ``SeedSequence`` spawn key, so streams of
    different seeds are independent). A longer sequence extends a shorter one (same prefix).
    ``constant``: ``constant_value`` repeated.
    """
    if length < 0:
        raise ConfigError(f"length must be >= 0, got {length!r}")
    if config.schedule == "constant":
        return np.full(length, config.constant_value, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed_sequence(base_seed, seed, _FRICTION_STREAM)))
    exponents = rng.uniform(math.log10(config.low), math.log10(config.high), size=length)
    return np.clip(10.0**exponents, config.low, config.high)


def seed_sequence(base_seed: int, seed: int, stream: int) -> np.random.SeedSequence:
    """numpy's independent stream ``stream`` of ``seed`` under ``base_seed``."""
    for name, v in (("base_seed", base_seed), ("seed", seed), ("stream", stream)):
        if int(v) != v or v < 0:
            raise ConfigError(f"{name} must be a whole number >= 0, got {v!r}")
    return np.random.SeedSequence(int(base_seed), spawn_key=(int(seed), int(stream)))


class ScheduleState(NamedTuple):
    """Where one seed is in its friction sequence.

    index: which value of the sequence is in effect; last_change: the step (0-based) of the
    episode end at which it took effect (0 before the first change).
    """

    index: int = 0
    last_change: int = 0


def advance(
    config: FrictionConfig, state: ScheduleState, step: int, episode_ended: bool
) -> ScheduleState:
    """The schedule after env step ``step`` (0-based); a change takes effect for the next episode.

    Rule (official ``run_ppo.py``): at an episode end with ``step - last_change >
    change_every`` the index advances and ``last_change = step``. Nothing changes between
    episode ends, so a change that is due waits for the episode to end; the constant
    schedule never advances.
    """
    if config.schedule == "constant" or not episode_ended:
        return state
    if step - state.last_change > config.change_every:
        return ScheduleState(state.index + 1, step)
    return state


def max_changes(config: FrictionConfig, total_steps: int) -> int:
    """The most changes :func:`advance` can make in ``total_steps`` env steps.

    A change needs an episode end more than ``change_every`` steps after the previous one,
    so changes come at steps > c, > 2c + 1, …: at most ``(total_steps - 1) // (c + 1)``.
    """
    if config.schedule == "constant" or total_steps <= 0:
        return 0
    return (total_steps - 1) // (config.change_every + 1)


def friction_table(
    config: FrictionConfig, base_seed: int, seeds: list[int] | tuple[int, ...], total_steps: int
) -> np.ndarray:
    """``[K, max_changes + 1]``: every value seed k can reach in ``total_steps`` steps.

    For a compiled back-end (MJX): the table is data, indexed by the traced schedule index
    of :func:`advance_traced`, so a change is a lookup, never a recompile.
    """
    n = max_changes(config, total_steps) + 1
    return np.stack([friction_sequence(config, base_seed, s, n) for s in seeds])


def advance_traced(config: FrictionConfig, index, last_change, step, episode_ended):
    """:func:`advance` on (possibly traced, batched) arrays: ``(index, last_change)``.

    Same rule, as ``jnp.where`` so it runs inside ``jit`` / ``vmap``; ``config`` is static.
    """
    import jax.numpy as jnp

    if config.schedule == "constant":
        return jnp.asarray(index), jnp.asarray(last_change)
    due = jnp.asarray(episode_ended) & (step - last_change > config.change_every)
    return jnp.where(due, index + 1, index), jnp.where(due, step, last_change)
