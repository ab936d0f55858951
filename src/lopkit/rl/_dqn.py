"""Deep Q-learning for one seed: settings, the Q-network, TD targets, the loss, the stream.

DQN (Mnih et al. 2015) as a stream whose data depend on the learner, run by the same engine
as PPO and the supervised benchmarks (:mod:`lopkit.engine._program`): one engine *block* is
one update period — ``block_steps`` env steps played ε-greedily by the learner's current
Q-network and stored in the replay buffer, then ``updates_per_block`` minibatches sampled
from it with their TD targets. The learner's update (the remedies' parts included) is the
engine's: a step on the TD loss of one minibatch, then the unit rules on the online
network. Before the buffer holds ``min_replay`` transitions the block's updates are
inactive (``Block.active``): the learner state, remedies included, is left as it was.

The target network lives in the stream state (``reads_params``: the engine hands the
stream the learner's parameters and forward function): copied from the online network at
the start of the block after every ``target_update_period`` updates (hard copy, the
default), or moved toward it by Polyak averaging (τ > 0). The TD target of a minibatch is
computed when the block is drawn, with the target network of that block:

* plain:   y = R⁽ⁿ⁾ + γⁿ (1 − d) max_a Q_target(s', a)
* Double:  y = R⁽ⁿ⁾ + γⁿ (1 − d) Q_target(s', argmax_a Q_online(s', a))  (van Hasselt 2016)

with R⁽ⁿ⁾ the n-step return (:class:`lopkit.rl._replay.Replay`). With several updates per
block (replay ratio > 1) Double DQN's argmax uses the online network at the block's start
for all of them (exact at replay ratio ≤ 1, one update per block).

Defaults (:class:`DQNConfig`) are Dopamine's MinAtar DQN (``dopamine/labs/environments/
minatar/dqn_breakout.gin``, and the ``JaxDQNAgent`` defaults it does not override in
``dopamine/jax/agents/dqn/dqn_agent.py``): γ 0.99, 1-step, replay 100,000, batch 32,
minimum replay 1,000, update period 4 (replay ratio 0.25), target period 1,000 agent steps
(= 250 updates at period 4), ε linear from 1 to 0.01 over 250,000 steps after the minimum
replay (``linearly_decaying_epsilon``), MSE loss (``loss_type='mse'``), Adam lr 2.5e-4,
ε_Adam 3.125e-4, no gradient clipping, no Double DQN.

The Q-network (:class:`QNetwork`): MinAtar's DQN of Young & Tian 2019 (``examples/dqn.py``:
conv 16 × 3×3 stride 1 unpadded, ReLU, fc 128, ReLU, linear Q head) or an MLP; its hidden
layers are units named ``q/hidden_0`` (the conv channels), ``q/hidden_1``, …, so unit rules
and probes reach them by name.

References:
  Mnih et al. Human-level control through deep reinforcement learning. Nature 2015.
  van Hasselt, Guez & Silver. Deep reinforcement learning with double Q-learning. AAAI 2016.
  Castro et al. Dopamine: a research framework for deep RL. 2018 (the configs above).
  Young & Tian. MinAtar: an Atari-inspired testbed. 2019.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lopkit._config import field
from lopkit._errors import ConfigError
from lopkit._seeds import any_seed
from lopkit.nets._activations import ACTIVATIONS, kaiming_uniform_bound
from lopkit.nets._base import Network
from lopkit.nets._convnet import conv2d
from lopkit.nets._mlp import MLP, MLPConfig, Trace
from lopkit.nets._units import UnitLayer
from lopkit.rl._replay import Replay
from lopkit.streams._base import Block, Stream


# ---- settings ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """DQN with Dopamine's MinAtar settings (module docstring: sources per default)."""

    gamma: float = field(0.99, "γ: discount", unit_interval=True)
    n_step: int = field(1, "n of n-step returns (Dopamine's update_horizon)", positive=True)
    double: bool = field(False, "Double DQN: the online net picks the bootstrap action")
    loss: str = field(
        "mse", "TD loss: mse (Dopamine JAX) or huber (δ = 1)", choices=("mse", "huber")
    )
    batch: int = field(32, "transitions per update", positive=True)
    replay_capacity: int = field(100_000, "replay buffer size (transitions)", positive=True)
    min_replay: int = field(1_000, "transitions stored before learning starts", positive=True)
    replay_ratio: float = field(
        0.25, "updates per env step: 1/k (one update every k steps) or an integer", positive=True
    )
    target_update_period: int = field(
        250, "updates between target-network copies (Dopamine: 1,000 agent steps / 4)",
        positive=True,
    )  # fmt: skip
    tau: float = field(
        0.0, "Polyak τ: target ← τ·online + (1 − τ)·target each update (0: hard copies)",
        unit_interval=True,
    )  # fmt: skip
    epsilon_start: float = field(1.0, "ε at the start (and during the minimum replay)",
                                 unit_interval=True)  # fmt: skip
    epsilon_end: float = field(0.01, "ε after the decay (Dopamine's epsilon_train)",
                               unit_interval=True)  # fmt: skip
    epsilon_decay: int = field(250_000, "env steps of the linear ε decay", positive=True)
    max_grad_norm: float = field(
        0.0, "clip the gradient's global norm (0: no clipping)", nonnegative=True
    )

    @property
    def block_steps(self) -> int:
        return 1 if self.replay_ratio >= 1 else round(1 / self.replay_ratio)

    @property
    def updates(self) -> int:
        """Learner updates per block."""
        return round(self.replay_ratio) if self.replay_ratio >= 1 else 1

    def check(self) -> None:
        r = self.replay_ratio
        whole = r if r >= 1 else 1 / r
        if abs(whole - round(whole)) > 1e-9:
            raise ConfigError(
                f"replay_ratio must be an integer or 1/k for an integer k (e.g. 0.25, 1, 2), "
                f"got {r}"
            )
        if self.target_update_period % self.updates:
            raise ConfigError(
                f"target_update_period ({self.target_update_period}) must be a multiple of "
                f"the updates per env step ({self.updates})"
            )
        if self.batch > self.replay_capacity or self.min_replay > self.replay_capacity:
            raise ConfigError(
                f"batch ({self.batch}) and min_replay ({self.min_replay}) must be at most "
                f"replay_capacity ({self.replay_capacity})"
            )
        if self.epsilon_end > self.epsilon_start:
            raise ConfigError("epsilon_end must be at most epsilon_start")


def epsilon(config: DQNConfig, step: jax.Array) -> jax.Array:
    """ε at env step ``step``: ``epsilon_start`` during the minimum replay, then linear to
    ``epsilon_end`` over ``epsilon_decay`` steps (Dopamine's linearly_decaying_epsilon)."""
    span = config.epsilon_start - config.epsilon_end
    left = config.epsilon_decay + config.min_replay - step.astype(jnp.float32)
    return config.epsilon_end + jnp.clip(span * left / config.epsilon_decay, 0.0, span)


# ---- TD targets and the loss ------------------------------------------------------------
def td_target(
    returns: jax.Array,
    discounts: jax.Array,
    q_next_target: jax.Array,
    q_next_online: jax.Array | None = None,
) -> jax.Array:
    """y = R + discount · Q_target(s', a*): a* = argmax Q_target (plain DQN) or argmax of
    ``q_next_online`` (Double DQN). returns, discounts ``[B]`` (discount γⁿ, 0 after a
    terminal step); q_next_* ``[B, A]``."""
    if q_next_online is None:
        value = q_next_target.max(-1)
    else:
        best = jnp.argmax(q_next_online, axis=-1)
        value = jnp.take_along_axis(q_next_target, best[:, None], axis=-1)[:, 0]
    return returns + discounts * jax.lax.stop_gradient(value)


def huber(x: jax.Array, delta: float = 1.0) -> jax.Array:
    a = jnp.abs(x)
    return jnp.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))


def dqn_loss(q: jax.Array, batch: dict[str, jax.Array], loss: str = "mse") -> jax.Array:
    """Mean TD loss of a minibatch: q ``[B, A]``; batch ``action`` ``[B]``, ``target`` ``[B]``.
    ``mse``: mean (Q(s, a) − y)² (Dopamine's JAX agent); ``huber``: mean Huber(Q(s, a) − y)."""
    chosen = jnp.take_along_axis(q, batch["action"][:, None].astype(jnp.int32), axis=-1)[:, 0]
    td = chosen - batch["target"]
    return jnp.mean(huber(td) if loss == "huber" else td**2)


# ---- the Q-network ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class QNetworkConfig:
    """A Q-network: MinAtar's conv torso (Young & Tian 2019) or an MLP, then fc layers."""

    input_shape: tuple[int, ...] = field((10, 10, 4), "observation shape", positive=True)
    actions: int = field(3, "number of actions (Q outputs)", positive=True)
    torso: str = field("conv", "conv (one 3×3 conv layer first) or mlp", choices=("conv", "mlp"))
    channels: int = field(16, "conv channels", positive=True)
    kernel: int = field(3, "conv kernel size (stride 1, unpadded)", positive=True)
    hidden: tuple[int, ...] = field((128,), "fc hidden widths", positive=True, may_be_empty=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    init: str = field("kaiming", "weight init (see MLPConfig.init)", choices=("kaiming", "lecun"))
    layernorm: bool = field(False, "LayerNorm before each hidden activation (mlp torso)")
    crelu: bool = field(False, "concatenated ReLU (mlp torso)")
    dropout: float = field(0.0, "dropout rate on fc hidden features in training", open_unit=True)

    def check(self) -> None:
        if self.torso == "conv":
            if len(self.input_shape) != 3:
                raise ConfigError(
                    f"the conv torso needs image observations (H, W, C), got {self.input_shape}; "
                    "use torso=mlp"
                )
            if min(self.input_shape[:2]) < self.kernel:
                raise ConfigError(f"a {self.kernel}×{self.kernel} kernel exceeds the image")
            if self.layernorm or self.crelu:
                raise ConfigError(
                    "layernorm and crelu act on MLP Q-networks only here; use torso=mlp "
                    "(the conv torso has no LayerNorm or CReLU variant)"
                )


def _rename(path: tuple, names: dict[str, str]) -> tuple:
    return (names[path[0]], *path[1:])


class QNetwork(Network):
    """Q-values ``[B, actions]`` of observations ``[B, *input_shape]``. Parameters::

    {"q/hidden_0": {"w": [k, k, C, channels], "b"} (conv torso), "q/hidden_i": {"w", "b"},
     "q/output": {"w", "b"}}

    ``prefix`` (``"q/"``) starts every layer name; the PPO agent's conv networks
    (:class:`lopkit.rl.ActorCritic`, ``torso="conv"``) are this network without one.
    """

    def __init__(self, config: QNetworkConfig, prefix: str = "q/"):
        self.config = c = config
        self.prefix = prefix
        self.activation = ACTIVATIONS[c.activation]
        gain = "linear" if c.init == "lecun" else c.activation
        if c.torso == "conv":
            h, w, ch = c.input_shape
            self.map_shape = (h - c.kernel + 1, w - c.kernel + 1)
            positions = self.map_shape[0] * self.map_shape[1]
            self.conv_shape = (c.kernel, c.kernel, ch, c.channels)
            features, offset = positions * c.channels, 1
            self.conv_bound = kaiming_uniform_bound(c.kernel * c.kernel * ch, gain)
        else:
            features, offset = math.prod(c.input_shape), 0
        self.mlp = MLP(
            MLPConfig(
                sizes=(features, *c.hidden, c.actions),
                activation=c.activation,
                layernorm=c.layernorm,
                crelu=c.crelu,
                dropout=c.dropout,
                init=c.init,
            )
        )
        self.mlp_names = {
            n: (f"{prefix}output" if n == "output" else f"{prefix}hidden_{i + offset}")
            for i, n in enumerate(self.mlp.names)
        }
        self.names = ([f"{prefix}hidden_0"] if offset else []) + list(self.mlp_names.values())
        self.bounds = ([self.conv_bound] if offset else []) + list(self.mlp.bounds)
        units = []
        if offset:
            units.append(
                UnitLayer(
                    name=self.names[0],
                    units=c.channels,
                    incoming=(self.names[0], "w"),
                    bias=(self.names[0], "b"),
                    outgoing=(self.names[1], "w"),
                    init_bound=self.conv_bound,
                    out_group=positions,
                    out_axis=0,
                )
            )
        for u in self.mlp.unit_layers:
            units.append(
                u._replace(
                    name=self.mlp_names[u.name],
                    incoming=_rename(u.incoming, self.mlp_names),
                    bias=_rename(u.bias, self.mlp_names),
                    outgoing=_rename(u.outgoing, self.mlp_names),
                    extra=tuple(_rename(p, self.mlp_names) for p in u.extra),
                )
            )
        self.unit_layers = tuple(units)
        self.conv = bool(offset)

    def __hash__(self) -> int:
        return hash((self.config, self.prefix))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, QNetwork)
            and other.config == self.config
            and other.prefix == self.prefix
        )

    @property
    def output_layer(self) -> str:
        return f"{self.prefix}output"

    def init_layer(self, key: jax.Array, index: int) -> dict[str, jax.Array]:
        if self.conv and index == 0:
            b = self.conv_bound
            return {
                "w": jax.random.uniform(key, self.conv_shape, jnp.float32, -b, b),
                "b": jnp.zeros((self.config.channels,), jnp.float32),
            }
        return self.mlp.init_layer(key, index - int(self.conv))

    def init(self, key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, len(self.names))
        pairs = enumerate(zip(self.names, keys, strict=True))
        return {n: self.init_layer(k, i) for i, (n, k) in pairs}

    def apply(
        self, params: dict[str, Any], x: jax.Array, key: jax.Array | None = None
    ) -> tuple[jax.Array, Trace]:
        """obs ``[B, *input_shape]`` → (Q ``[B, actions]``, Trace: the conv layer's
        ``[B, H', W', channels]`` maps, then the fc hidden layers)."""
        pre, hidden = [], []
        h = x.astype(jnp.float32)
        if self.conv:
            layer = params[self.names[0]]
            z = conv2d(h, layer["w"], 1, ((0, 0), (0, 0))) + layer["b"]
            h = self.activation(z)
            pre.append(z)
            hidden.append(h)
        h = h.reshape(h.shape[0], -1)
        inner = {n: params[q] for n, q in self.mlp_names.items()}
        out, trace = self.mlp.apply(inner, h, key)
        return out, Trace(pre + trace.pre, hidden + trace.hidden)


# ---- environments -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Games:
    """One gymnax env, or a sequence of them behind one observation and action space.

    ids: gymnax ids. With one id the env keeps its own (minimal) action set. With several
    (a game sequence) every env is made with its full action set and the agent acts in the
    *union* of the games' minimal action sets (sorted full-set ids), so one network serves
    every game; a union action a game does not use acts as in that game's full action set
    (MinAtar: no effect beyond a no-op). Image observations are padded with zero channels
    to the widest game's. ``boolean``: the observations are 0/1 maps (MinAtar's), which the
    replay buffer stores as bits.
    """

    ids: tuple[str, ...]

    def __post_init__(self):
        several = len(self.ids) > 1
        kwargs = {"use_minimal_action_set": False} if several else {}
        import gymnax  # here: importing gymnax starts JAX's backend (docs/design.md §7)

        made = [gymnax.make(i, **kwargs) for i in self.ids]
        envs = tuple(e for e, _ in made)
        params = tuple(p for _, p in made)
        shapes = [tuple(e.reset(jax.random.PRNGKey(0), p)[0].shape) for e, p in made]
        if len({len(s) for s in shapes}) != 1 or len({s[:-1] for s in shapes}) != 1:
            raise ConfigError(f"games {self.ids} have incompatible observation shapes {shapes}")
        obs_shape = (*shapes[0][:-1], max(s[-1] for s in shapes))
        if several:
            minimal = [gymnax.make(i)[0] for i in self.ids]
            union = sorted({int(a) for e in minimal for a in np.asarray(e.action_set)})
            action_maps = tuple(jnp.asarray(union, jnp.int32) for _ in self.ids)
            minimal_sets = tuple(tuple(int(a) for a in np.asarray(e.action_set)) for e in minimal)
            actions = len(union)
        else:
            union = list(range(int(envs[0].action_space(params[0]).n)))
            action_maps = (jnp.arange(len(union), dtype=jnp.int32),)
            minimal_sets = (tuple(union),)
            actions = len(union)
        # MinAtar's maps are 0/1 (gymnax returns them as float32): stored as bits
        binary = all(i.endswith("-MinAtar") for i in self.ids)
        for name, value in (
            ("envs", envs), ("params", params), ("obs_shape", obs_shape),
            ("channels", tuple(s[-1] for s in shapes)), ("actions", actions),
            ("union", tuple(union)), ("action_maps", action_maps),
            ("minimal_sets", minimal_sets), ("boolean", binary),
        ):  # fmt: skip
            object.__setattr__(self, name, value)

    def float_params(self) -> tuple[jax.Array, ...]:
        """Each game's float env params as one array: a run carries them in its state and
        steps with them traced (XLA folded a constant physics parameter, CartPole's mass,
        into the expressions around it differently alone and in a batch of runs)."""
        return tuple(
            jnp.asarray(
                [x for x in jax.tree_util.tree_leaves(p) if isinstance(x, float)], jnp.float32
            )
            for p in self.params
        )

    def _params(self, g: int, floats: tuple | None):
        if floats is None:
            return self.params[g]
        leaves, tree = jax.tree_util.tree_flatten(self.params[g])
        where = [i for i, x in enumerate(leaves) if isinstance(x, float)]
        for j, i in enumerate(where):
            leaves[i] = floats[g][j]
        return jax.tree_util.tree_unflatten(tree, leaves)

    def _pad(self, g: int, obs: jax.Array) -> jax.Array:
        obs = obs.astype(jnp.float32)
        extra = self.obs_shape[-1] - obs.shape[-1]
        if extra:
            obs = jnp.pad(obs, [(0, 0)] * (obs.ndim - 1) + [(0, extra)])
        return obs

    def reset_all(self, key: jax.Array) -> tuple[tuple[Any, ...], jax.Array]:
        """Every game's env state, and game 0's padded observation."""
        states, first = [], None
        for g, (env, p) in enumerate(zip(self.envs, self.params, strict=True)):
            obs, s = env.reset(jax.random.fold_in(key, g), p)
            states.append(s)
            first = self._pad(g, obs) if first is None else first
        return tuple(states), first

    def reset(
        self, game: jax.Array, key: jax.Array, states: tuple, floats: tuple | None = None
    ) -> tuple[tuple, jax.Array]:
        """Game ``game``'s env reset: (states, its padded observation); ``floats``: the
        games' float params (:meth:`float_params`; None: the defaults as constants)."""

        def branch(g):
            def f(states):
                obs, s = self.envs[g].reset(key, self._params(g, floats))
                return (*states[:g], s, *states[g + 1 :]), self._pad(g, obs)

            return f

        if len(self.envs) == 1:
            return branch(0)(states)
        return jax.lax.switch(game, [branch(g) for g in range(len(self.envs))], states)

    def step(
        self, game: jax.Array, key: jax.Array, states: tuple, action: jax.Array,
        floats: tuple | None = None,
    ):  # fmt: skip
        """One step of game ``game`` with union action ``action``: (states, obs, reward,
        terminated, truncated, the observation before any auto-reset), obs padded."""

        def branch(g):
            def f(states):
                a = self.action_maps[g][action]
                p = self._params(g, floats)
                obs, s, r, term, trunc, info = self.envs[g].step(key, states[g], a, p)
                new = (*states[:g], s, *states[g + 1 :])
                final = self._pad(g, info["final_observation"])
                return new, self._pad(g, obs), r.astype(jnp.float32), term, trunc, final

            return f

        if len(self.envs) == 1:
            return branch(0)(states)
        return jax.lax.switch(game, [branch(g) for g in range(len(self.envs))], states)


# ---- play: the env side of a MinAtar agent, shared by DQN and PPO -------------------------
CHANGES = ("none", "permutation", "sequence")


class GamePlay:
    """One agent's play of :class:`Games` with its changes, for a stream with fields
    ``games``, ``change``, ``change_every``, ``per_seed_order`` (DQN's and PPO's MinAtar
    streams): ``none``; ``permutation`` (a new fixed permutation of the observation's
    entries every ``change_every`` env steps); ``sequence`` (the next game every
    ``change_every`` env steps: task k plays game ``order[k mod G]``, ``order`` the given
    order or, with ``per_seed_order``, a permutation drawn per seed). A change cuts the
    current episode and starts the next one at once.

    Play state::

        {"env": every game's env state, "env_params": every game's float env params
         (traced), "obs": [*obs_shape] the current raw observation, "task": int32 changes
         so far, "game": int32, "order": int32 [G], "perm": int32 [obs size],
         "since_change": int32, "episode_return", "episode_length", "change_key"}
    """

    @property
    def obs_size(self) -> int:
        return math.prod(self.games.obs_shape)

    @property
    def steps_per_task(self) -> int | None:
        """Env steps per task (a permutation or a game), for figures' task axis."""
        return None if self.change == "none" else self.change_every

    def play_init(self, key: jax.Array) -> dict[str, Any]:
        n_games = len(self.games.ids)
        change_key = jax.random.fold_in(key, 1)
        if self.per_seed_order:
            order = jax.random.permutation(jax.random.fold_in(change_key, 0), n_games)
        else:
            order = jnp.arange(n_games)
        order = order.astype(jnp.int32)
        states, _ = self.games.reset_all(jax.random.fold_in(key, 0))
        game = order[0]
        floats = self.games.float_params()
        states, obs = self.games.reset(game, jax.random.fold_in(key, 2), states, floats)
        return {
            "env": states,
            "env_params": floats,
            "obs": obs,
            "task": jnp.zeros((), jnp.int32),
            "game": game,
            "order": order,
            "perm": jnp.arange(self.obs_size, dtype=jnp.int32),
            "since_change": jnp.zeros((), jnp.int32),
            "episode_return": jnp.zeros((), jnp.float32),
            "episode_length": jnp.zeros((), jnp.int32),
            "change_key": change_key,
        }

    def present(self, state: dict[str, Any], obs: jax.Array) -> jax.Array:
        """What the learner sees of a raw observation: its entries permuted."""
        if self.change != "permutation":
            return obs
        return obs.reshape(-1)[state["perm"]].reshape(obs.shape)

    def _apply_change(self, state: dict[str, Any], due: jax.Array, key: jax.Array):
        def changed(s):
            task = s["task"] + 1
            new = {**s, "task": task, "since_change": jnp.zeros((), jnp.int32)}
            if self.change == "permutation":
                k = jax.random.fold_in(s["change_key"], task)
                new["perm"] = jax.random.permutation(k, self.obs_size).astype(jnp.int32)
            else:
                game = s["order"][task % len(self.games.ids)]
                new["game"] = game
                new["env"], new["obs"] = self.games.reset(game, key, s["env"], s["env_params"])
            return jax.tree_util.tree_map(lambda a, b: jnp.where(due, a, b), new, s)

        return jax.lax.cond(any_seed(due), changed, lambda s: s, state)

    def play_step(self, state: dict[str, Any], k_env: jax.Array, k_change: jax.Array, action):
        """One env step with union action ``action``, then the change when due. Returns
        (state, step): ``reward``, ``terminated``, ``done`` (the episode ended), ``cut``
        (ended or cut by a change), ``final`` (the observation after the step, before any
        reset, as the learner saw it), ``ended`` (return, length, count) of an ended
        episode."""
        states, obs, reward, terminated, truncated, final = self.games.step(
            state["game"], k_env, state["env"], action, state["env_params"]
        )
        done = terminated | truncated
        since = state["since_change"] + 1
        due = (since >= self.change_every) if self.change != "none" else jnp.zeros((), bool)
        ep_return = state["episode_return"] + reward
        ep_length = state["episode_length"] + 1
        ended = (
            jnp.where(done, ep_return, 0.0),
            jnp.where(done, ep_length, 0).astype(jnp.float32),
            done.astype(jnp.float32),
        )
        cut = done | due
        step = {
            "reward": reward, "terminated": terminated, "done": done, "cut": cut,
            "final": self.present(state, final), "ended": ended,
        }  # fmt: skip
        state = {
            **state,
            "env": states,
            "obs": obs,
            "since_change": since,
            "episode_return": jnp.where(cut, 0.0, ep_return),
            "episode_length": jnp.where(cut, 0, ep_length),
        }
        if self.change != "none":
            state = self._apply_change(state, due, k_change)
        return state, step


# ---- the stream -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class DQNStream(GamePlay, Stream):
    """ε-greedy play into a replay buffer, and minibatches of TD targets, for one seed.

    games: the env(s) (:class:`Games`); change, change_every, per_seed_order: what changes
    (:class:`GamePlay`; a change's last transition bootstraps, an n-step return stops
    there).

    State per seed: the play state (:class:`GamePlay`), and::

        {"buffer": the replay buffer (what the learner saw), "target": the target network,
         "updates": int32 learner updates done}
    """

    games: Games
    change: str
    change_every: int
    per_seed_order: bool
    dqn: DQNConfig

    reads_learner = True
    reads_params = True
    probe_targets = False
    step_unit = "env-step"
    records = ("return", "episode_length", "task")

    def __post_init__(self):
        g = self.games
        object.__setattr__(self, "replay", Replay(self.dqn.replay_capacity, g.obs_shape, g.boolean))

    @property
    def block_steps(self) -> int:
        return self.dqn.block_steps

    @property
    def updates_per_block(self) -> int:
        return self.dqn.updates

    @property
    def batch_size(self) -> int:
        return self.dqn.batch

    @property
    def max_probe_size(self) -> int:
        return self.dqn.replay_capacity

    # ---- state ------------------------------------------------------------------------
    def init(self, key: jax.Array, params: Any) -> dict[str, Any]:
        return {
            **self.play_init(key),
            "buffer": self.replay.init(),
            "target": params,
            "updates": jnp.zeros((), jnp.int32),
        }

    def _env_step(self, state: dict[str, Any], key: jax.Array, step: jax.Array, predict):
        k_explore, k_random, k_env, k_change = jax.random.split(key, 4)
        x = self.present(state, state["obs"])
        q = predict(x[None])[0][0]
        eps = epsilon(self.dqn, step)
        explore = jax.random.uniform(k_explore) < eps
        random_action = jax.random.randint(k_random, (), 0, self.games.actions)
        action = jnp.where(explore, random_action, jnp.argmax(q)).astype(jnp.int32)
        buffer = state["buffer"]
        state, played = self.play_step(state, k_env, k_change, action)
        buffer = self.replay.add(
            buffer, x, action, played["reward"], played["terminated"], played["cut"],
            played["final"],
        )  # fmt: skip
        return {**state, "buffer": buffer}, played["ended"]

    def block(self, state, key, start, n, predict, params, apply):
        """``n`` env steps ε-greedy with ``predict`` into the buffer, then the block's
        ``updates_per_block`` minibatches with TD targets from the target network
        (refreshed from ``params`` first when due)."""
        cfg, u = self.dqn, self.dqn.updates
        if n != cfg.block_steps:
            raise ValueError(f"a block is {cfg.block_steps} env steps, not {n}")
        k_play, k_sample = jax.random.split(key)
        if cfg.tau > 0:  # Polyak: u updates' worth of averaging at once
            rate = 1.0 - (1.0 - cfg.tau) ** u
            target = jax.tree_util.tree_map(
                lambda p, t: rate * p + (1.0 - rate) * t, params, state["target"]
            )
        else:
            sync = state["updates"] % cfg.target_update_period == 0
            target = jax.tree_util.tree_map(
                lambda p, t: jnp.where(sync, p, t), params, state["target"]
            )

        def body(carry, inputs):
            s, sums = carry
            k, i = inputs
            s, ended = self._env_step(s, k, start + i, predict)
            return (s, jax.tree_util.tree_map(jnp.add, sums, ended)), None

        zero = jnp.zeros((), jnp.float32)
        (state, (ret_sum, len_sum, count)), _ = jax.lax.scan(
            body, (state, (zero, zero, zero)), (jax.random.split(k_play, n), jnp.arange(n))
        )
        buffer = state["buffer"]
        idx = self.replay.sample_indices(buffer, k_sample, (u, cfg.batch), cfg.n_step)
        obs, action, returns, discounts, next_obs = self.replay.n_step(
            buffer, idx, cfg.n_step, cfg.gamma
        )
        flat = next_obs.reshape((u * cfg.batch, *self.games.obs_shape))
        q_target = apply(target, flat)[0]
        q_online = predict(flat)[0] if cfg.double else None
        y = td_target(returns.reshape(-1), discounts.reshape(-1), q_target, q_online)
        active = buffer["size"] >= max(cfg.min_replay, cfg.batch)
        if cfg.tau > 0:  # before learning starts the target follows the (unchanged) net
            target = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), target, params)
        state = {
            **state,
            "target": target,
            "updates": state["updates"] + jnp.where(active, u, 0),
        }
        sums = jnp.stack([ret_sum, len_sum, state["task"].astype(jnp.float32)])
        counts = jnp.stack([count, count, jnp.ones((), jnp.float32)])
        batch = {"action": action, "target": y.reshape(u, cfg.batch)}
        task = jnp.full((u,), state["task"], jnp.int32)
        return state, Block(obs, batch, task, (sums, counts), jnp.full((u,), active))

    def probe(self, state: dict[str, Any], key: jax.Array, size: int):
        """``size`` observations sampled uniformly from the replay buffer (as Sokar et al.
        measure dormancy: on a batch of replayed states)."""
        idx = self.replay.sample_indices(state["buffer"], key, (size,))
        return self.replay.decode(state["buffer"]["obs"][idx]), None
