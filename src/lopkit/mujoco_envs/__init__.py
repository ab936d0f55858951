"""MuJoCo environments for the paper's RL benchmark (Slippery Ant; DESIGN §7).

The host back-end (:class:`AntEnvs`, gymnasium's Ant on the ``mujoco`` bindings, K envs in
lockstep) and the friction schedule (:func:`friction_sequence`, :func:`advance`).
"""

from lopkit.mujoco_envs._ant import VERSIONS, AntConfig, AntEnvs, ant_xml_path
from lopkit.mujoco_envs._friction import (
    SCHEDULES,
    FrictionConfig,
    ScheduleState,
    advance,
    check_friction,
    friction_sequence,
    seed_sequence,
)

__all__ = [
    "SCHEDULES",
    "VERSIONS",
    "AntConfig",
    "AntEnvs",
    "FrictionConfig",
    "ScheduleState",
    "advance",
    "ant_xml_path",
    "check_friction",
    "friction_sequence",
    "seed_sequence",
]
