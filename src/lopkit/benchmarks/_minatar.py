"""MinAtar with a DQN or PPO agent: the dormant-neuron setting, stationary, permuted or a game
sequence.

gymnax's MinAtar games (Young & Tian 2019: Breakout, Asterix, Freeway, SpaceInvaders,
Seaquest; 10×10 boolean maps) and its discrete classic-control tasks (CartPole, Acrobot),
played by a DQN agent (:mod:`lopkit.rl._dqn`) through the engine: one block is one update
period (``1 / replay_ratio`` env steps, then the updates), one learner update is one TD
step on a replayed minibatch; steps, bins and ``change_every`` count env steps.

What changes (``change``):

* ``none``: one game throughout; the only non-stationarity is the agent's own (its
  policy, and the TD target that moves at every target-network copy) — the setting in
  which Sokar et al. 2023 (ICML, Fig. 2) see the dormant fraction grow;
* ``permutation``: a new fixed permutation of the observation's entries every
  ``change_every`` env steps (Juliani & Ash 2024's observation permutation);
* a game sequence (``sequence=space_invaders,asterix,breakout,freeway``): the next game
  every ``change_every`` env steps, one shared network whose outputs are the union of the
  games' minimal action sets and whose input has the widest game's channels (the others
  zero-padded) — continual MinAtar as C-CHAIN and Plasticine run it; ``per_seed_order``
  draws each seed's order.

Defaults are Dopamine's MinAtar DQN (``dopamine/labs/environments/minatar/dqn_*.gin``, see
:class:`lopkit.rl.DQNConfig`) and MinAtar's own network (conv 16 × 3×3, fc 128; Young &
Tian 2019 ``examples/dqn.py``). The classic-control tasks need ``torso=mlp`` (``auto``
picks it) — Dopamine's CartPole DQN (``dqn_cartpole.gin``) uses [512, 512] and Adam 1e-3.

Reported per bin: ``return``, ``episode_length`` (episodes that ended in the bin),
``task`` (changes so far), ``loss`` (mean TD loss over the bin's updates; 0 before
learning starts), and the probes on a batch sampled from the replay buffer, per hidden
layer of the Q-network (``q/hidden_0`` the conv channels, ``q/hidden_1`` the fc units).
The ``dormant_fraction`` probe records metric ``dormant_fraction`` at τ = 0.1 (ReDo's
recycling threshold, Sokar et al. §4) and ``dormant_fraction_0.025`` at τ = 0.025 (the
threshold of their dormancy plots); it is a default probe here.

``agent=ppo``: the control benchmark's PPO agent (:mod:`lopkit.rl._ppo`, the same rollout
blocks, loss and separate policy and value networks, :func:`lopkit.benchmarks._control.
ppo_problem`) playing the same games with the same changes as DQN (:class:`lopkit.rl.
GamePlay`: a change every ``change_every`` env steps exactly, the episode cut there), one
env per agent, its networks MinAtar's (each a conv 16 × 3×3 layer, then fc 128; ``torso``
as for DQN). Its defaults follow the MinAtar PPO of Pgx's example (``examples/minatar-ppo/
train.py``, "modified from PureJaxRL"): Adam lr 3e-4, ε 1e-5, the gradient's global norm
clipped to 0.5, γ 0.99, λ 0.95, clip 0.2, entropy coefficient 0.01, value coefficient 0.5
on ½·MSE (0.25 on lopkit's MSE), 3 epochs per rollout. The batch is lopkit's scale, not
Pgx's (4,096 envs × 128 steps, minibatches of 4,096): a rollout of 1,024 steps of the one
env, 8 minibatches of 128. Left out: Pgx's shared torso (conv 32 × 2×2, average pooling,
fc 64; here each network has its own MinAtar torso), its value clipping and its advantage
normalization per minibatch (here per rollout).

ReDo's defaults on this benchmark (``redo``): τ 0.1, recycling every 1,000 updates
(Sokar et al. Algorithm 1, F = 1,000 gradient steps), scores on the update's own batch
(``decay_rate 0``), Adam moments of the recycled weights reset (the remedy always does).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

from lopkit import _config
from lopkit._config import field, to_dict
from lopkit._errors import ConfigError
from lopkit.benchmarks._base import (
    Benchmark,
    OptimizerConfig,
    Problem,
    make_optimizer,
    optimizer_settings,
)
from lopkit.nets._activations import ACTIVATIONS
from lopkit.rl._dqn import DQNConfig, DQNStream, Games, QNetwork, QNetworkConfig, dqn_loss
from lopkit.rl._ppo import PPOConfig
from lopkit.rl._rollout import GamesRolloutStream

GAMES = {
    "breakout": "Breakout-MinAtar",
    "asterix": "Asterix-MinAtar",
    "freeway": "Freeway-MinAtar",
    "space_invaders": "SpaceInvaders-MinAtar",
    "seaquest": "Seaquest-MinAtar",
}
CONTROL = {"cartpole": "CartPole-v1", "acrobot": "Acrobot-v1"}
ENVS = {**GAMES, **CONTROL}
DEFAULT_PROBES = (
    "dormant_fraction",
    "dead_fraction",
    "effective_rank",
    "weight_magnitude",
)


@dataclasses.dataclass(frozen=True)
class MinAtarConfig(DQNConfig, PPOConfig, OptimizerConfig):
    """A MinAtar game (or game sequence, or classic-control task) and a DQN agent with
    Dopamine's MinAtar settings, or lopkit's PPO agent (``agent=ppo``: the control
    benchmark's actor-critic with MinAtar's networks, Pgx's MinAtar PPO settings; module
    docstring)."""

    agent: str = field(
        "dqn", "dqn, or ppo (the control benchmark's PPO agent)", choices=("dqn", "ppo")
    )
    # PPO's own settings (agent=ppo): Pgx's MinAtar PPO at lopkit's scale (module docstring)
    rollout_steps: int = field(1024, "PPO: env steps per rollout", positive=True)
    epochs: int = field(3, "PPO: passes over each rollout (Pgx: 3)", positive=True)
    minibatches: int = field(8, "PPO: minibatches per epoch", positive=True)
    entropy_coef: float = field(0.01, "PPO: weight of the entropy bonus (Pgx: 0.01)",
                                nonnegative=True)  # fmt: skip
    value_coef: float = field(
        0.25, "PPO: weight of the mean squared value error (Pgx: 0.5 × ½)", nonnegative=True
    )
    env: str = field("breakout", "game or control task", choices=tuple(ENVS))
    change: str = field(
        "none", "none, permutation, or sequence (the games of `sequence` in turn)",
        choices=("none", "permutation", "sequence"),
    )  # fmt: skip
    sequence: tuple[str, ...] = field(
        (), "games played in turn (empty: env alone)", may_be_empty=True, choices=tuple(GAMES)
    )
    change_every: int = field(
        500_000, "env steps between changes (a new permutation or the next game)", positive=True
    )
    per_seed_order: bool = field(False, "each seed plays the sequence in its own order")
    torso: str = field(
        "auto", "network torso: conv (MinAtar's), mlp, or auto (conv for images)",
        choices=("auto", "conv", "mlp"),
    )  # fmt: skip
    channels: int = field(16, "conv channels (MinAtar: 16)", positive=True)
    hidden: tuple[int, ...] = field((128,), "fc hidden widths (MinAtar: 128)", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    optimizer: str = field("adam", "sgd or adam", choices=("sgd", "adam"))
    lr: float = field(
        2.5e-4, "step size α (Dopamine MinAtar; agent=ppo: 3e-4, Pgx)", positive=True, axis=True
    )
    eps: float = field(
        3.125e-4, "Adam ε (Dopamine MinAtar; agent=ppo: 1e-5, Pgx)", positive=True, axis=True
    )
    max_grad_norm: float = field(
        0.0, "clip the gradient's global norm (0: no clipping; agent=ppo: 0.5, Pgx)",
        nonnegative=True,
    )  # fmt: skip

    def check(self) -> None:
        DQNConfig.check(self)
        if self.agent == "ppo":
            ppo_settings(self).check()
            if self.envs_per_agent != 1:
                raise ConfigError(
                    f"agent=ppo plays one env per agent on minatar (envs_per_agent=1), got "
                    f"{self.envs_per_agent}"
                )
        if self.sequence:
            if len(self.sequence) < 2 or len(set(self.sequence)) != len(self.sequence):
                raise ConfigError(
                    f"sequence takes two or more different games, got {self.sequence}"
                )
            if self.change == "permutation":
                raise ConfigError("a game sequence changes game; change must be sequence (or none)")
        elif self.change == "sequence":
            raise ConfigError(
                "change=sequence needs the games: set sequence=GAME,GAME,… (e.g. "
                "space_invaders,asterix,breakout,freeway)"
            )
        elif self.per_seed_order:
            raise ConfigError("per_seed_order applies to a game sequence (set sequence)")
        if self.env in CONTROL and self.torso == "conv" and not self.sequence:
            raise ConfigError(f"{self.env} has vector observations; use torso=mlp (or auto)")

    @property
    def games(self) -> tuple[str, ...]:
        return self.sequence or (self.env,)


def dqn_settings(c: MinAtarConfig) -> DQNConfig:
    d = to_dict(c)
    return _config.build(DQNConfig, {f.name: d[f.name] for f in dataclasses.fields(DQNConfig)})


def ppo_settings(c: MinAtarConfig) -> PPOConfig:
    d = to_dict(c)
    return _config.build(PPOConfig, {f.name: d[f.name] for f in dataclasses.fields(PPOConfig)})


# Pgx's MinAtar PPO (examples/minatar-ppo/train.py): the settings PPO shares with DQN
PPO_DEFAULTS = {"lr": 3e-4, "eps": 1e-5, "max_grad_norm": 0.5}


def setting_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """The PPO agent's own defaults of the settings it shares with DQN."""
    return dict(PPO_DEFAULTS) if str(settings.get("agent", "dqn")) == "ppo" else {}


def _torso(c: MinAtarConfig, games: Games) -> str:
    image = len(games.obs_shape) == 3
    return c.torso if c.torso != "auto" else ("conv" if image else "mlp")


def _play(c: MinAtarConfig) -> dict[str, Any]:
    """What both agents' streams play: the games, the change and its schedule."""
    return {
        "games": Games(tuple(ENVS[g] for g in c.games)),
        "change": "sequence" if c.sequence else c.change,
        "change_every": c.change_every,
        "per_seed_order": c.per_seed_order,
    }


def build_ppo(c: MinAtarConfig) -> Problem:
    from lopkit.benchmarks._control import ppo_problem

    ppo = ppo_settings(c)
    play = _play(c)
    games = play["games"]
    stream = GamesRolloutStream(**play, ppo=ppo)
    problem = ppo_problem(c, stream, ppo, stream.observations, stream.actions, True)
    if _torso(c, games) == "mlp":
        return problem
    network = {
        **problem.network, "torso": "conv", "input_shape": games.obs_shape,
        "channels": c.channels,
    }  # fmt: skip
    return dataclasses.replace(problem, network=network)


def make_q_network(network: dict[str, Any]) -> QNetwork:
    """The Q-network of a network dict (unknown keys, e.g. an MLP-only remedy's, are errors)."""
    return QNetwork(_config.build(QNetworkConfig, network))


def build(c: MinAtarConfig) -> Problem:
    if c.agent == "ppo":
        return build_ppo(c)
    dqn = dqn_settings(c)
    play = _play(c)
    games = play["games"]
    stream = DQNStream(**play, dqn=dqn)
    torso = _torso(c, games)
    network = {
        "input_shape": games.obs_shape,
        "actions": games.actions,
        "torso": torso,
        "channels": c.channels,
        "hidden": c.hidden,
        "activation": c.activation,
    }

    def loss(out, batch):
        return dqn_loss(out, batch, dqn.loss)

    def optimizer_fn(o: dict[str, Any]) -> optax.GradientTransformation:
        base = make_optimizer(o)
        if c.max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), base)
        return base

    return Problem(
        stream=stream,
        network=network,
        make_network=make_q_network,
        loss_fn=loss,
        error_fn=loss,
        error_name="loss",
        optimizer=optimizer_settings(c),
        optimizer_fn=optimizer_fn,
        seed_map="split",  # exact: each run's update alone (docs/design.md §2)
    )


def run_defaults(c: MinAtarConfig) -> dict[str, Any]:
    """DQN: bins of 10,000 env steps, probes every 5 bins on 256 replayed observations (the
    ReDo code's statistics batch), 1,000,000 env steps; one block per update period. PPO:
    the control benchmark's (bins of 5 rollouts, one block per rollout)."""
    if c.agent == "ppo":
        from lopkit.benchmarks._control import run_defaults as ppo_defaults

        return {**ppo_defaults(c), "metrics": DEFAULT_PROBES}
    bin_size = 10_000 if 10_000 % c.block_steps == 0 else 10_000 * c.block_steps
    return {
        "steps": 100 * bin_size,
        "bin_size": bin_size,
        "block_size": c.block_steps,
        "metrics_every": 5 * bin_size,
        "metrics": DEFAULT_PROBES,
        "probe_size": min(256, c.replay_capacity),
        "chunk_bins": 10,
    }


def describe() -> str:
    return (
        f"games: {', '.join(GAMES)}; control: {', '.join(CONTROL)}; "
        "change: none, permutation, sequence"
    )


MINATAR = Benchmark(
    name="minatar",
    summary="DQN or PPO on gymnax MinAtar (" + describe() + ")",
    source="Sokar et al. 2023 (ICML, ReDo); Young & Tian 2019 (MinAtar); Dopamine DQN; gymnax",
    config=MinAtarConfig,
    build=build,
    remedy_defaults={"redo": {"threshold": 0.1, "reset_every": 1000, "decay_rate": 0.0}},
    run_defaults=run_defaults,
    setting_defaults=setting_defaults,
)
