"""Continual DMC: PPO agents on a sequence of DeepMind Control Suite tasks of one body.

The continual DMC of C-CHAIN (Tang et al., "Mitigating Plasticity Loss in Continual
Reinforcement Learning by Reducing Churn", ICML 2025, §5 and its README "Continual DMC";
public code ``crl_dmc/crl_run_ppo_dmc.py``, ``crl_dmc/utils/basic_utils.py``) and
Plasticine (Yuan et al. 2025, "Plasticine: Accelerating Research in Plasticity-Motivated
Deep RL"; ``plasticine/ppo_continual_dmc_plasticine.py``, ``plasticine_envs/dmc_wrappers.py``):
one agent learns the tasks of one body in turn, ``switch_every`` env steps each —

* ``walker``: stand → walk → run (C-CHAIN; Plasticine runs the sequence twice);
* ``quadruped``: walk → run → walk (C-CHAIN; Plasticine walk ↔ run three times).

``--set sequence=…`` gives any order of the body's tasks (cycled when the run is longer).
A cheetah run ↔ backward sequence is not offered: dm-control has no backward cheetah task
(``suite.ALL_TASKS``: cheetah has ``run`` only), and neither source runs cheetah (their
bodies are walker, quadruped and dog), so a sign-flipped run reward would be lopkit's own
benchmark, not theirs. The dog (stand, walk, run, trot in both sources) is not offered yet:
its 38-actuator body was not sized or tested here (adding it: its lines in the tables of
:mod:`lopkit.dmc_envs._suite`).

The envs are ``dm_control``'s own (:mod:`lopkit.dmc_envs`), K seeds stepped on the host in
lockstep through the general hosted path (:class:`lopkit.rl._host.HostRolloutStream`, as
the ``ant`` benchmark's MuJoCo Ant), the agent the existing PPO agent through the one
engine: remedies, probes, bins, checkpoints (the simulators' state included) as for every
benchmark.

Settings (defaults: the sources' CleanRL PPO, ``ppo_continuous_action.py`` settings as both
sources run them): one env per agent; rollout 2,048; 10 epochs × 32 minibatches (64);
γ 0.99, λ 0.95, clip 0.2; advantages normalized per minibatch there, per rollout here
(lopkit's PPO); value loss weight 0.25 (CleanRL: ``vf_coef`` 0.5 × its ``0.5·MSE``; its
value clipping is not in lopkit's PPO); no entropy; gradient global norm clipped at 0.5;
Adam lr 3e-4, ε 1e-5; observations and rewards normalized by the gymnasium wrappers
(running statistics per env, reset at each task switch as the sources rebuild their envs);
actions clipped to [-1, 1]; truncation treated as terminal (CleanRL: ``done = terminated or
truncated``). Networks: separate policy-mean and value MLPs [256, 256] ReLU as the
sources', initialized LeCun-uniform (lopkit's agent; the sources use orthogonal init, gain
√2, policy output 0.01). Each task runs 999,424 env steps (the sources' ``1e6 // 2048`` =
488 rollouts), so switches fall on rollout boundaries.

Recorded per bin: ``return`` and ``episode_length`` of the episodes that ended (raw rewards:
each task's return is in [0, 1000]), ``task`` (switches so far), ``task_id`` (the current
task's index in the body's tasks: walker stand 0, walk 1, run 2; quadruped walk 0, run 1),
``loss``; probes on the last 1,000 observations as for ``ant``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lopkit import _config
from lopkit._config import field, to_dict
from lopkit._errors import ConfigError
from lopkit.benchmarks._base import Benchmark, OptimizerConfig, Problem
from lopkit.benchmarks._control import PPO_REMEDY_DEFAULTS, ppo_problem
from lopkit.nets._activations import ACTIVATIONS
from lopkit.rl._ppo import PPOConfig

DOMAINS = ("walker", "quadruped")  # lopkit.dmc_envs.TASKS (imported lazily: dm-control)
DEFAULT_PROBES = (
    "inactive_fraction",
    "dormant_fraction",
    "srank_fraction",
    "srank",
    "weight_magnitude",
)
TASK_STEPS = (1_000_000 // 2048) * 2048  # the sources' num_iterations × num_steps: 999,424


@dataclasses.dataclass(frozen=True)
class DMCBenchmarkConfig(PPOConfig, OptimizerConfig):
    """A DMC task sequence on one body and a PPO agent with the sources' CleanRL settings
    (C-CHAIN ``crl_run_ppo_dmc.py``; Plasticine ``ppo_continual_dmc_plasticine.py``)."""

    domain: str = field("walker", "the body: walker or quadruped", choices=DOMAINS)
    sequence: tuple[str, ...] = field(
        (),
        "its tasks in order, cycled (empty: C-CHAIN's: walker stand,walk,run; quadruped "
        "walk,run,walk)",
        may_be_empty=True,
    )
    switch_every: int = field(TASK_STEPS, "env steps per task", positive=True)
    hidden: tuple[int, ...] = field((256, 256), "hidden widths of each network", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    optimizer: str = field("adam", "sgd or adam", choices=("sgd", "adam"))
    lr: float = field(3e-4, "step size α", positive=True, axis=True)
    eps: float = field(1e-5, "Adam ε", positive=True, axis=True)
    # the sources' CleanRL PPO where it differs from lopkit's (ant's official) defaults
    minibatches: int = field(32, "minibatches per epoch", positive=True)
    value_coef: float = field(
        0.25, "weight of the mean squared value error (CleanRL: 0.5 × 0.5·MSE)", nonnegative=True
    )
    max_grad_norm: float = field(
        0.5, "clip the gradient's global norm (0: no clipping)", nonnegative=True
    )
    normalize_observations: bool = field(
        True, "observations scaled by each env's running mean and std (gymnasium wrapper)"
    )
    normalize_rewards: bool = field(
        True, "rewards scaled by the running std of each env's discounted return"
    )

    def check(self) -> None:
        PPOConfig.check(self)
        if self.envs_per_agent != 1:
            raise ConfigError("dmc runs one env per agent (envs_per_agent = 1, as the sources)")
        if self.bootstrap_truncation:
            raise ConfigError(
                "dmc treats truncation as terminal (the sources' CleanRL PPO); "
                "bootstrap_truncation is not implemented on the host"
            )
        from lopkit.dmc_envs._suite import TASKS

        tasks = tuple(t.strip() for t in self.sequence)
        bad = [t for t in tasks if t not in TASKS[self.domain]]
        if bad:
            raise ConfigError(
                f"{self.domain} has no task {', '.join(map(repr, bad))} in dm-control; "
                f"its tasks: {', '.join(TASKS[self.domain])}"
            )

    @property
    def order(self) -> tuple[str, ...]:
        from lopkit.dmc_envs._suite import SEQUENCES

        return tuple(t.strip() for t in self.sequence) or SEQUENCES[self.domain]


def ppo_settings(c: DMCBenchmarkConfig) -> PPOConfig:
    d = to_dict(c)
    return _config.build(PPOConfig, {f.name: d[f.name] for f in dataclasses.fields(PPOConfig)})


def env_config(c: DMCBenchmarkConfig):
    from lopkit.dmc_envs import DMCConfig

    return DMCConfig(
        domain=c.domain,
        sequence=c.order,
        switch_every=c.switch_every,
        normalize_observations=c.normalize_observations,
        normalize_rewards=c.normalize_rewards,
        gamma=c.gamma,
    )


def build(c: DMCBenchmarkConfig) -> Problem:
    try:
        from lopkit.dmc_envs import ACTIONS, OBSERVATIONS, DMCEnvs
        from lopkit.rl._host import HostEnvFamily, HostRolloutStream
    except ImportError as err:
        raise ConfigError(
            f"the dmc benchmark needs dm-control ({err}); pip install -e '.[rl]'"
        ) from None
    config = env_config(c)

    def make_envs(base_seed: int, seeds: list[int]) -> DMCEnvs:
        return DMCEnvs(seeds, base_seed, config)

    obs, actions = OBSERVATIONS[c.domain], ACTIONS[c.domain]
    family = HostEnvFamily(f"dmc-{c.domain}", obs, actions, "task_id", make_envs)
    stream = HostRolloutStream(family, ppo_settings(c))
    return ppo_problem(c, stream, ppo_settings(c), obs, actions, False)


def run_defaults(c: DMCBenchmarkConfig) -> dict[str, Any]:
    """The sources' run: every task of the sequence once (C-CHAIN: 3 × 999,424 env steps),
    bins of 8 rollouts (16,384 steps: 61 bins per task; C-CHAIN evaluates every 20,000),
    probes every 5 bins on the last 1,000 observations."""
    rollout = c.rollout_steps
    bin_size = 8 * rollout
    tasks = len(c.order)
    steps = max(bin_size, -(-tasks * c.switch_every // bin_size) * bin_size)
    return {
        "steps": steps,
        "bin_size": bin_size,
        "block_size": rollout,
        "metrics_every": 5 * bin_size,
        "metrics": DEFAULT_PROBES,
        "probe_size": min(1_000, rollout),
    }


DMC = Benchmark(
    name="dmc",
    summary="PPO on a DeepMind Control Suite task sequence of one body (walker stand→walk→"
    "run, quadruped walk→run→walk), dm-control stepped on the host",
    source="Tang et al. 2025 (ICML, C-CHAIN) continual DMC; Yuan et al. 2025 (Plasticine); "
    "dm-control (Tassa et al. 2018)",
    config=DMCBenchmarkConfig,
    build=build,
    remedy_defaults=PPO_REMEDY_DEFAULTS,
    run_defaults=run_defaults,
)
