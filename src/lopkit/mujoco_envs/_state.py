"""What a host-stepped MuJoCo env needs to continue exactly, as numpy arrays.

Shared by every host env family (:class:`lopkit.mujoco_envs.AntEnvs`,
:class:`lopkit.dmc_envs.DMCEnvs`; docs/design.md §8): the simulator's integration state and
the random generators' states, each as a flat array that ``np.savez`` and the run state's
pytree hold.
"""

from __future__ import annotations

import mujoco
import numpy as np

STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION  # physics + warm start + controls + time


def physics_size(model) -> int:
    """Length of :func:`get_physics` of a model."""
    return mujoco.mj_stateSize(model, STATE_SPEC)


def get_physics(model, data, out: np.ndarray | None = None) -> np.ndarray:
    """``mj_getState`` with ``mjSTATE_INTEGRATION``: time, qpos, qvel, act, the constraint
    solver's warm start, ctrl, applied forces, mocap, … — all ``mj_step`` reads."""
    out = np.zeros(physics_size(model)) if out is None else out
    mujoco.mj_getState(model, data, out, STATE_SPEC)
    return out


def set_physics(model, data, state: np.ndarray) -> None:
    """Restore :func:`get_physics`'s state, then ``mj_forward`` for the derived quantities
    (positions, velocities, sensors): functions of the restored state, so the next step
    computes what it would have computed without the interruption."""
    mujoco.mj_setState(model, data, np.asarray(state, np.float64), STATE_SPEC)
    mujoco.mj_forward(model, data)


_MASK64 = (1 << 64) - 1


def pcg64_to_array(state: dict) -> np.ndarray:
    """A ``np.random.PCG64`` state as 6 uint64 words."""
    s, inc = state["state"]["state"], state["state"]["inc"]
    words = [s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, state["has_uint32"], state["uinteger"]]
    return np.array(words, dtype=np.uint64)


def pcg64_from_array(words: np.ndarray) -> dict:
    w = [int(x) for x in np.asarray(words, dtype=np.uint64)]
    return {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


def random_state_to_array(rng: np.random.RandomState) -> np.ndarray:
    """A legacy ``np.random.RandomState`` (MT19937; dm_control tasks draw from one) as 628
    float64 values: 624 key words, position, has_gauss, cached gaussian (exact: every
    word < 2^32 and the gaussian a float64)."""
    name, keys, pos, has_gauss, gauss = rng.get_state()
    assert name == "MT19937"
    return np.concatenate([keys.astype(np.float64), [pos, has_gauss, gauss]])


def random_state_from_array(rng: np.random.RandomState, words: np.ndarray) -> None:
    w = np.asarray(words, np.float64)
    rng.set_state(("MT19937", w[:624].astype(np.uint32), int(w[624]), int(w[625]), float(w[626])))
