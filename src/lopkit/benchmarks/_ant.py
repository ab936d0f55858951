"""Slippery Ant: PPO agents on MuJoCo Ant whose friction changes, or stays constant.

The paper's RL benchmark (Dohare et al. 2024, Methods "Reinforcement learning", figures
"Slippery Ant" and "Ant, constant friction"; official ``lop/rl/``; docs/design.md §13), K agents
(seeds) through the one engine, like every other benchmark. The env is gymnasium's Ant
(v4 by default: the official SlipperyAnt-v3's dynamics and rewards; its observation is the
official one without the contact forces, which are always zero there) on the ``mujoco``
bindings (:mod:`lopkit.mujoco_envs`); the friction is the sliding friction of every geom,
per seed a sequence log-uniform on [0.02, 2] changed at the first episode end more than
``change_every`` (2M) env steps after the previous change; ``schedule=constant`` keeps it
at 1. Two back-ends (``--set backend=…``):

* ``host`` (default): MuJoCo C, all seeds' envs stepped on the host in lockstep (threads:
  ``mj_step`` releases the GIL), one jitted vmapped policy call per env step for all seeds,
  the PPO update compiled and vmapped (:class:`lopkit.rl.HostRolloutStream`);
* ``mjx``: the same XML in MuJoCo XLA inside the compiled program, the friction a traced
  per-seed value (:class:`lopkit.mujoco_envs.MjxAnt`); for accelerators.

The network's input (``network_inputs``). The official env's observation is 111 values:
gym's Ant-v3 ``_get_obs`` concatenates ``qpos[2:]`` (13), ``qvel`` (14) and the clipped
``cfrc_ext`` (14 bodies × 6 = 84), in that order; mujoco-py on MuJoCo 2.x never fills
``cfrc_ext`` (gym's Ant-v3 docstring: "contact forces always being 0"), so the last 84 are 0.
The official nets are built on ``o_dim = env.observation_space.shape[0]`` = 111
(``lop/rl/run_ppo.py``: ``MLPPolicy(o_dim, …)``, ``MLPVF(o_dim, …)``) and
``lecun_init`` (``lop/utils/miscellaneous.py``) draws every layer U(±√(3/in_features)):
the first layer's bound is √(3/111) = 0.164, not √(3/27) = 0.333. Zero inputs change
nothing in a forward pass, but they set that bound, CBP's and ReDo's re-init bound
(``lop/algos/gnt.py``: ``sqrt(3 / in_features)`` over all 111 rows), and the first layer's
logged weight magnitude (``run_ppo.py``: ``weight.data.abs().mean()`` over 256 × 111
weights: the 84 rows keep their initial values without L2 and decay towards 0 with it,
Adam's coupled ``weight_decay`` being their only gradient). ``official`` (default) gives
both nets these 84 rows as parameters that are never multiplied
(:class:`lopkit.nets.MLPConfig` ``zero_inputs``): init, resets, decay, probes and
every computed value are the official 111-input net's, at the 27-input net's cost;
``observed`` builds the first layers on the 27 observed values (fan-in 27, bound 0.333:
initial action means ~2× the official ones). v5 observes its 78 contact forces (105
inputs, not the official env) and has no zero inputs either way.

PPO and the agent are the official settings (:class:`lopkit.rl.PPOConfig` defaults:
[256, 256] ReLU policy-mean and value nets, LeCun-uniform, log-std 0, Adam 1e-4, rollout
2,048, 10 × 16 minibatches, γ 0.99, λ 0.95, clip 0.2, no entropy, no normalization,
truncation as terminal). The official variants are methods: ``backprop`` (std),
``adam_equal_betas`` (ns, β 0.99/0.99), ``adam_equal_betas+l2`` (λ 1e-3),
``adam_equal_betas+cbp+l2`` (ρ 1e-4, maturity 10,000, moments not reset, next-layer bias
corrected, λ 1e-4), ``adam_equal_betas+redo+l2`` (τ 0.1 every 100 updates, λ 1e-4).

Recorded per bin: ``return``, ``episode_length``, ``task`` (friction changes so far),
``friction`` (per seed), ``loss``; probes on the last 1,000 observations (the official
window): ``inactive_fraction`` (the paper's RL "dormant": active on < 1% of the window),
``dormant_fraction`` (ReDo's τ 0.1), ``srank_fraction`` (srank / width; the paper's stable
rank in % of 256), ``srank``, ``weight_magnitude`` (mean |W| per layer).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lopkit import _config
from lopkit._config import field, to_dict
from lopkit._errors import ConfigError
from lopkit.benchmarks._base import (
    Benchmark,
    OptimizerConfig,
    Problem,
)
from lopkit.benchmarks._control import PPO_REMEDY_DEFAULTS, ppo_problem
from lopkit.nets._activations import ACTIVATIONS
from lopkit.rl._ppo import PPOConfig

BACKENDS = ("host", "mjx")
NETWORK_INPUTS = ("official", "observed")
OFFICIAL_ZERO_INPUTS = 14 * 6  # gym Ant-v3's clipped cfrc_ext: 14 bodies × 6, all 0
SCHEDULES = ("slippery", "constant")  # lopkit.mujoco_envs.SCHEDULES (imported lazily)
DEFAULT_PROBES = (
    "inactive_fraction",
    "dormant_fraction",
    "srank_fraction",
    "srank",
    "weight_magnitude",
)
ACTIONS = 8


@dataclasses.dataclass(frozen=True)
class AntBenchmarkConfig(PPOConfig, OptimizerConfig):
    """Slippery Ant (or constant friction) and a PPO agent with the official settings of
    Dohare et al. 2024 (docs/design.md §13; ``lop/rl/cfg/{sant,ant}/*.yml``)."""

    backend: str = field(
        "host", "host (MuJoCo C on the host) or mjx (MuJoCo XLA)", choices=BACKENDS
    )
    version: str = field(
        "v4", "gymnasium Ant version: v4 (= official v3) or v5", choices=("v4", "v5")
    )
    schedule: str = field(
        "slippery", "slippery (per-seed friction changes) or constant", choices=SCHEDULES
    )
    change_every: int = field(
        2_000_000, "env steps after a change before the next is due (at an episode end)",
        positive=True,
    )  # fmt: skip
    friction_range: tuple[float, ...] = field(
        (0.02, 2.0), "low, high of the log-uniform friction values", positive=True
    )
    constant_friction: float = field(1.0, "the friction of the constant schedule", positive=True)
    max_episode_steps: int = field(1000, "episode length limit (truncation)", positive=True)
    threads: int = field(0, "host: threads stepping the envs (0: one per CPU)", nonnegative=True)
    network_inputs: str = field(
        "official",
        "official: the first layers have the official 111 inputs (v4's 27 + 84 contact "
        "forces, always 0: fan-in 111, rows never multiplied); observed: the 27 (fan-in 27)",
        choices=NETWORK_INPUTS,
    )
    hidden: tuple[int, ...] = field((256, 256), "hidden widths of each network", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    optimizer: str = field("adam", "sgd or adam", choices=("sgd", "adam"))
    lr: float = field(1e-4, "step size α", positive=True)

    def check(self) -> None:
        PPOConfig.check(self)
        if len(self.friction_range) != 2 or not self.friction_range[0] <= self.friction_range[1]:
            raise ConfigError(
                f"friction_range takes two values low <= high, got {self.friction_range}"
            )
        if self.envs_per_agent != 1:
            raise ConfigError("ant runs one env per agent (envs_per_agent = 1, as the official)")
        unsupported = [
            name
            for name in ("normalize_observations", "normalize_rewards", "bootstrap_truncation")
            if getattr(self, name)
        ]
        if unsupported:  # neither backend implements them (the official settings have none)
            raise ConfigError(f"ant does not implement {', '.join(unsupported)}; leave them off")
        if self.backend == "mjx" and self.version != "v4":
            raise ConfigError("backend=mjx implements Ant v4 only; use version=v4")

    @property
    def observations(self) -> int:
        return 27 if self.version == "v4" else 27 + 78

    @property
    def zero_inputs(self) -> int:
        """First-layer rows for the official env's always-zero contact forces (v4, official)."""
        official = self.version == "v4" and self.network_inputs == "official"
        return OFFICIAL_ZERO_INPUTS if official else 0


def friction_config(c: AntBenchmarkConfig):
    from lopkit.mujoco_envs import FrictionConfig

    return FrictionConfig(
        schedule=c.schedule,
        low=float(c.friction_range[0]),
        high=float(c.friction_range[1]),
        change_every=c.change_every,
        constant_value=c.constant_friction,
    )


def ppo_settings(c: AntBenchmarkConfig) -> PPOConfig:
    d = to_dict(c)
    return _config.build(PPOConfig, {f.name: d[f.name] for f in dataclasses.fields(PPOConfig)})


def _host_stream(c: AntBenchmarkConfig):
    from lopkit.mujoco_envs import AntConfig, AntEnvs
    from lopkit.rl._host import HostEnvFamily, HostRolloutStream

    env_config = AntConfig(
        version=c.version, threads=c.threads, max_episode_steps=c.max_episode_steps
    )
    friction = friction_config(c)

    def make_envs(base_seed: int, seeds: list[int]) -> AntEnvs:
        return AntEnvs(seeds, base_seed, env_config, friction)

    family = HostEnvFamily("ant", c.observations, ACTIONS, "friction", make_envs)
    return HostRolloutStream(family, ppo_settings(c))


def _mjx_stream(c: AntBenchmarkConfig):
    from lopkit.mujoco_envs import AntConfig
    from lopkit.rl._mjx import MjxRolloutStream

    env_config = AntConfig(max_episode_steps=c.max_episode_steps)
    return MjxRolloutStream(friction_config(c), ppo_settings(c), env_config)


def build(c: AntBenchmarkConfig) -> Problem:
    try:
        stream = _host_stream(c) if c.backend == "host" else _mjx_stream(c)
    except ImportError as err:
        raise ConfigError(
            f"the ant benchmark needs mujoco and gymnasium ({err}); pip install -e '.[rl]'"
        ) from None
    return ppo_problem(c, stream, ppo_settings(c), c.observations, ACTIONS, False, c.zero_inputs)


def run_defaults(c: AntBenchmarkConfig) -> dict[str, Any]:
    """The paper's Slippery Ant run: 20,480,000 env steps (10,000 rollouts; official 20M) in
    bins of 50 rollouts (102,400 steps; official 100k), probes every bin on the last 1,000
    observations (the official window)."""
    rollout = c.rollout_steps
    bin_size = 50 * rollout
    return {
        "steps": 200 * bin_size,
        "bin_size": bin_size,
        "block_size": rollout,
        "metrics_every": bin_size,
        "metrics": DEFAULT_PROBES,
        "probe_size": min(1_000, rollout),
    }


ANT = Benchmark(
    name="ant",
    summary="PPO on MuJoCo Ant with per-seed friction changes (slippery) or constant "
    "friction; backends host (MuJoCo C) and mjx (MuJoCo XLA)",
    source="Dohare et al. 2024 (Nature), Methods 'Reinforcement learning'; gymnasium Ant-v4",
    config=AntBenchmarkConfig,
    build=build,
    remedy_defaults=PPO_REMEDY_DEFAULTS,
    run_defaults=run_defaults,
    # official cbp.yml and redo.yml decay weights by 1e-4 (l2.yml: 1e-3)
    method_defaults={
        "cbp+l2": {"l2": {"weight_decay": 1e-4}},
        "redo+l2": {"l2": {"weight_decay": 1e-4}},
    },
)
