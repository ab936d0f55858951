"""MuJoCo environments for the paper's RL benchmark (Slippery Ant; docs/design.md §13).

The host back-end (:class:`AntEnvs`, gymnasium's Ant on the ``mujoco`` bindings, K envs in
lockstep), the friction schedule (:func:`friction_sequence`, :func:`advance`) and the MJX
back-end (:class:`MjxAnt`, imported on first use: it loads ``mujoco.mjx`` and JAX).
"""

from lopkit.mujoco_envs._ant import VERSIONS, AntConfig, AntEnvs, ant_xml_path
from lopkit.mujoco_envs._friction import (
    SCHEDULES,
    FrictionConfig,
    ScheduleState,
    advance,
    advance_traced,
    check_friction,
    friction_sequence,
    friction_table,
    max_changes,
    seed_sequence,
)

__all__ = [
    "SCHEDULES",
    "VERSIONS",
    "AntConfig",
    "AntEnvs",
    "MjxAnt",
    "FrictionConfig",
    "ScheduleState",
    "advance",
    "advance_traced",
    "ant_xml_path",
    "check_friction",
    "friction_sequence",
    "friction_table",
    "max_changes",
    "seed_sequence",
]


def __getattr__(name: str):
    if name in ("MjxAnt", "MjxAntState"):
        from lopkit.mujoco_envs import _mjx

        return getattr(_mjx, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
