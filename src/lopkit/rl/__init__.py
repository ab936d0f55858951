"""Reinforcement learning through the engine: PPO agents on non-stationary control tasks, DQN
and PPO agents on MinAtar (and its game sequence) and control tasks."""

from lopkit.rl._agent import ActorCritic, ActorCriticConfig
from lopkit.rl._dqn import (
    DQNConfig,
    DQNStream,
    GamePlay,
    Games,
    QNetwork,
    QNetworkConfig,
    td_target,
)
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
from lopkit.rl._replay import Replay
from lopkit.rl._rollout import GamesRolloutStream, RolloutStream, running_stats, update_stats

__all__ = [
    "ENVS",
    "ActorCritic",
    "ActorCriticConfig",
    "DQNConfig",
    "DQNStream",
    "GamePlay",
    "Games",
    "GamesRolloutStream",
    "PPOConfig",
    "QNetwork",
    "QNetworkConfig",
    "Replay",
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
    "td_target",
    "update_stats",
]
