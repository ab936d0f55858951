"""Reinforcement learning: PPO agents on non-stationary control tasks, through the engine."""

from lopkit.rl._agent import ActorCritic, ActorCriticConfig
from lopkit.rl._envs import ENVS, changes_of
from lopkit.rl._ppo import (
    PPOConfig,
    categorical_entropy,
    categorical_log_prob,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    normalize,
    ppo_loss,
    sample,
    shuffled_minibatches,
)
from lopkit.rl._rollout import RolloutStream, running_stats, update_stats

__all__ = [
    "ENVS",
    "ActorCritic",
    "ActorCriticConfig",
    "PPOConfig",
    "RolloutStream",
    "categorical_entropy",
    "categorical_log_prob",
    "changes_of",
    "gae",
    "gaussian_entropy",
    "gaussian_log_prob",
    "normalize",
    "ppo_loss",
    "running_stats",
    "sample",
    "shuffled_minibatches",
    "update_stats",
]
