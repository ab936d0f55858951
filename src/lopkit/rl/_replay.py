"""A circular replay buffer of fixed capacity, held in one seed's state (pure JAX).

The buffer is a dict of arrays with a leading capacity axis and two counters::

    {"obs": [C, P], "next_obs": [C, P], "action": int32 [C], "reward": float32 [C],
     "terminal": bool [C] (no bootstrap after this step), "end": bool [C] (the episode, or
     the stretch of one environment, ends after this step: an n-step return stops here),
     "ptr": int32 (the next slot to write), "size": int32 (slots written, ≤ C)}

Observations are stored compactly: boolean observations (MinAtar's ``[10, 10, C]`` maps)
are bit-packed (``jnp.packbits`` of the flattened map, ⌈H·W·C / 8⌉ bytes: 88 for a 7-channel
map instead of 700 bools or 2,800 float bytes); other observations as float32. Each slot
holds its next observation too (a time limit or a change of game cuts an episode without
ending it, and the value of the observation after the cut is bootstrapped, so the next
slot's observation, a reset's, cannot stand in for it).

Insertion overwrites the oldest slot once the buffer is full. Sampling draws start slots
uniformly among the written slots whose next ``n − 1`` slots were written after them (the
newest ``n − 1`` transitions cannot start an n-step return yet), so an empty slot is never
read. The n-step return from slot i sums γ^k r_{i+k} up to the first slot that ends
(terminal or cut), and bootstraps from that slot's next observation with discount γ^m
(m steps taken), or 0 after a terminal step.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Replay:
    """The buffer's static shape: ``capacity`` transitions of observations ``obs_shape``;
    ``packed``: boolean observations stored as bits."""

    capacity: int
    obs_shape: tuple[int, ...]
    packed: bool

    @property
    def obs_size(self) -> int:
        return math.prod(self.obs_shape)

    @property
    def stored_size(self) -> int:
        """Entries of one stored observation (bytes when packed, float32s otherwise)."""
        return -(-self.obs_size // 8) if self.packed else self.obs_size

    @property
    def bytes_per_seed(self) -> int:
        """Memory of one seed's buffer."""
        obs = self.stored_size * (1 if self.packed else 4)
        return self.capacity * (2 * obs + 4 + 4 + 1 + 1) + 8

    def encode(self, obs: jax.Array) -> jax.Array:
        """Observations ``[…, *obs_shape]`` → stored form ``[…, stored_size]``."""
        lead = obs.shape[: obs.ndim - len(self.obs_shape)]
        flat = obs.reshape((*lead, self.obs_size))
        if self.packed:
            return jnp.packbits(flat.astype(bool), axis=-1)
        return flat.astype(jnp.float32)

    def decode(self, stored: jax.Array) -> jax.Array:
        """Stored form ``[…, stored_size]`` → float32 observations ``[…, *obs_shape]``."""
        lead = stored.shape[:-1]
        if self.packed:
            flat = jnp.unpackbits(stored, axis=-1, count=self.obs_size).astype(jnp.float32)
        else:
            flat = stored
        return flat.reshape((*lead, *self.obs_shape))

    def init(self) -> dict[str, Any]:
        c, p = self.capacity, self.stored_size
        dtype = jnp.uint8 if self.packed else jnp.float32
        return {
            "obs": jnp.zeros((c, p), dtype),
            "next_obs": jnp.zeros((c, p), dtype),
            "action": jnp.zeros((c,), jnp.int32),
            "reward": jnp.zeros((c,), jnp.float32),
            "terminal": jnp.zeros((c,), bool),
            "end": jnp.zeros((c,), bool),
            "ptr": jnp.zeros((), jnp.int32),
            "size": jnp.zeros((), jnp.int32),
        }

    def add(
        self,
        buf: dict[str, Any],
        obs: jax.Array,
        action: jax.Array,
        reward: jax.Array,
        terminal: jax.Array,
        end: jax.Array,
        next_obs: jax.Array,
    ) -> dict[str, Any]:
        """One transition written at ``ptr`` (the oldest slot once full)."""
        i = buf["ptr"]
        new = {
            "obs": buf["obs"].at[i].set(self.encode(obs)),
            "next_obs": buf["next_obs"].at[i].set(self.encode(next_obs)),
            "action": buf["action"].at[i].set(jnp.asarray(action, jnp.int32)),
            "reward": buf["reward"].at[i].set(jnp.asarray(reward, jnp.float32)),
            "terminal": buf["terminal"].at[i].set(jnp.asarray(terminal, bool)),
            "end": buf["end"].at[i].set(jnp.asarray(end, bool) | jnp.asarray(terminal, bool)),
            "ptr": (i + 1) % self.capacity,
            "size": jnp.minimum(buf["size"] + 1, self.capacity),
        }
        return new

    def oldest(self, buf: dict[str, Any]) -> jax.Array:
        """The slot of the oldest transition."""
        return (buf["ptr"] - buf["size"]) % self.capacity

    def sample_indices(
        self, buf: dict[str, Any], key: jax.Array, shape: tuple[int, ...], n: int = 1
    ) -> jax.Array:
        """Start slots ``shape``, uniform over the written slots that can start an n-step
        return (all written slots but the newest n − 1)."""
        valid = jnp.maximum(buf["size"] - (n - 1), 1)
        offset = jax.random.randint(key, shape, 0, valid)
        return (self.oldest(buf) + offset) % self.capacity

    def n_step(self, buf: dict[str, Any], idx: jax.Array, n: int, gamma: Any):
        """From start slots ``idx``: (obs, action, n-step return, bootstrap discount,
        bootstrap observation), observations decoded to float32."""
        ret = jnp.zeros(idx.shape, jnp.float32)
        discount = jnp.ones(idx.shape, jnp.float32)
        alive = jnp.ones(idx.shape, bool)  # no end among the slots taken so far
        last = idx
        for k in range(n):
            j = (idx + k) % self.capacity
            ret = ret + jnp.where(alive, discount * buf["reward"][j], 0.0)
            last = jnp.where(alive, j, last)
            discount = jnp.where(alive, discount * gamma, discount)
            alive = alive & ~buf["end"][j]
        discount = jnp.where(buf["terminal"][last], 0.0, discount)
        return (
            self.decode(buf["obs"][idx]),
            buf["action"][idx],
            ret,
            discount,
            self.decode(buf["next_obs"][last]),
        )
