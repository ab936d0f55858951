"""DeepMind Control Suite task sequences stepped on the host (the ``dmc`` benchmark;
docs/design.md §8): :class:`DMCEnvs`, K dm-control envs of one body in lockstep."""

from lopkit.dmc_envs._suite import (
    ACTIONS,
    OBSERVATIONS,
    SEQUENCES,
    TASKS,
    DMCConfig,
    DMCEnvs,
)

__all__ = ["ACTIONS", "OBSERVATIONS", "SEQUENCES", "TASKS", "DMCConfig", "DMCEnvs"]
