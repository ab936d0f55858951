"""Non-stationary control: PPO agents on gymnax classic-control tasks that change.

The reinforcement-learning demonstration of Dohare et al. 2024 (Methods "Reinforcement
learning"; docs/design.md §13) at the scale of 2 CPU cores: K agents (seeds) as one compiled
program, each with its own schedule of environment changes (:mod:`lopkit.rl._envs`). One
engine block is one rollout (:class:`lopkit.rl.RolloutStream`, a stream whose data depend
on the learner); one learner update is one PPO minibatch step; steps, bins and
``change_every`` count env steps.

Defaults are the official PPO settings (``lop/rl/cfg/ant/std.yml``; docs/design.md §13): separate
policy-mean and value MLPs [256, 256] ReLU, LeCun-uniform, state-independent log-std 0;
Adam lr 1e-4, β (0.9, 0.999), ε 1e-8; rollout 2,048, 10 epochs × 16 minibatches; γ 0.99,
λ 0.95, clip 0.2, value coefficient 1, no entropy term, no gradient clipping, no
normalization, truncation as terminal (:class:`lopkit.rl.PPOConfig`). The official
variants are methods: ``backprop`` (std), ``adam_equal_betas`` (ns), ``adam_equal_betas+l2``
(l2, λ 1e-3), ``adam_equal_betas+cbp+l2`` (cbp: ρ 1e-4, maturity 10,000, moments not reset,
next-layer bias corrected; its λ 1e-4 with ``--set l2.weight_decay=1e-4``),
``adam_equal_betas+redo+l2``.

Reported per bin of env steps: ``return`` and ``episode_length`` (mean over the episodes that
ended in the bin), ``task`` (changes so far), the changed constant's value, ``loss`` (mean
PPO loss over the bin's updates), and the probes on the last rollout's observations, per
hidden layer of both networks (``policy/hidden_0``, ``value/hidden_1``, …).
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
from lopkit.rl import _envs
from lopkit.rl._agent import ActorCritic, ActorCriticConfig
from lopkit.rl._ppo import PPOConfig, ppo_loss
from lopkit.rl._rollout import RolloutStream

DEFAULT_PROBES = (
    "dormant_fraction",
    "dead_fraction",
    "effective_rank",
    "srank",
    "weight_magnitude",
)
RANGE_FACTOR = 2.0  # default range of a physics change: [default / 2, default × 2]


@dataclasses.dataclass(frozen=True)
class ControlConfig(PPOConfig, OptimizerConfig):
    """A gymnax control task with a per-seed schedule of changes, and a PPO agent with the
    official settings of Dohare et al. 2024 (docs/design.md §13)."""

    env: str = field("cartpole", "control task", choices=tuple(_envs.ENVS))
    change: str = field(
        "none", "what changes: none, permutation, or a physical constant of the env"
    )
    change_every: int = field(
        200_000, "env steps between changes (at the next episode end)", positive=True
    )
    change_range: tuple[float, ...] = field(
        (),
        "low, high of a physics change's values (empty: ½ and 2 × gymnax's)",
        positive=True,
        may_be_empty=True,
    )
    change_scale: str = field(
        "log", "values log-uniform or uniform on the range", choices=("log", "linear")
    )
    hidden: tuple[int, ...] = field((256, 256), "hidden widths of each network", positive=True)
    activation: str = field("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    optimizer: str = field("adam", "sgd or adam", choices=("sgd", "adam"))
    lr: float = field(1e-4, "step size α", positive=True, axis=True)

    def check(self) -> None:
        PPOConfig.check(self)
        valid = _envs.changes_of(self.env)
        if self.change not in valid:
            raise _config.unknown_name(f"change for env {self.env!r}", self.change, valid)
        if self.change_range:
            if len(self.change_range) != 2 or not self.change_range[0] < self.change_range[1]:
                raise ConfigError(
                    f"change_range takes two values low < high, got {self.change_range}"
                )
            if self.change not in _envs.ENVS[self.env].changes:
                raise ConfigError(f"change_range applies to a physics change, not {self.change!r}")

    def resolved_range(self) -> tuple[float, float]:
        if self.change_range:
            return (float(self.change_range[0]), float(self.change_range[1]))
        if self.change in _envs.GENERIC_CHANGES:
            return (1.0, 1.0)
        value = _envs.default_value(self.env, self.change)
        return (value / RANGE_FACTOR, value * RANGE_FACTOR)


def ppo_settings(c: ControlConfig) -> PPOConfig:
    d = to_dict(c)
    return _config.build(PPOConfig, {f.name: d[f.name] for f in dataclasses.fields(PPOConfig)})


def make_agent(network: dict[str, Any]) -> ActorCritic:
    """The agent of a network dict (unknown keys, e.g. an MLP-only remedy's, are errors)."""
    return ActorCritic(_config.build(ActorCriticConfig, network))


def build(c: ControlConfig) -> Problem:
    ppo = ppo_settings(c)
    stream = RolloutStream(
        env_name=c.env,
        change=c.change,
        change_every=c.change_every,
        change_range=c.resolved_range(),
        change_scale=c.change_scale,
        ppo=ppo,
    )
    return ppo_problem(c, stream, ppo, stream.observations, stream.actions, stream.discrete)


def run_defaults(c: ControlConfig) -> dict[str, Any]:
    """Bins of 5 rollouts, probes every bin on the last 1,000 observations (the official
    probe window), 100 bins; one block per rollout."""
    rollout = c.rollout_steps * c.envs_per_agent
    bin_size = 5 * rollout
    return {
        "steps": 100 * bin_size,
        "bin_size": bin_size,
        "block_size": rollout,
        "metrics_every": bin_size,
        "metrics": DEFAULT_PROBES,
        "probe_size": min(1_000, rollout),
        "chunk_bins": max(1, 200_000 // bin_size),
    }


def describe() -> str:
    """The envs and their changes (for ``lopkit list benchmarks``)."""
    return "; ".join(f"{e}: {', '.join(_envs.changes_of(e))}" for e in _envs.ENVS)


# The official PPO configs (lop/rl/cfg/{sant,ant}/{l2,cbp,redo}.yml; docs/design.md §13), for every
# PPO benchmark (control, ant).
PPO_REMEDY_DEFAULTS = {
    "l2": {"weight_decay": 1e-3},
    "cbp": {
        "replacement_rate": 1e-4,
        "maturity_threshold": 10_000,
        "decay_rate": 0.99,
        "utility": "contribution",
        "accumulate": False,  # GnT's default (ppo.py does not pass it): a draw per step
        "reset_optimizer_moments": False,
        "next_bias_correction": False,  # gnt.py adds 0 (its running mean is zeroed first)
    },
    "redo": {"threshold": 0.1, "reset_every": 100, "decay_rate": 0.0},
}

CONTROL = Benchmark(
    name="control",
    summary="PPO on non-stationary gymnax control (" + describe() + ")",
    source="Dohare et al. 2024 (Nature), Methods 'Reinforcement learning'; gymnax",
    config=ControlConfig,
    build=build,
    remedy_defaults=PPO_REMEDY_DEFAULTS,
    run_defaults=run_defaults,
)


def ppo_problem(
    c: Any,
    stream: Any,
    ppo: PPOConfig,
    observations: int,
    actions: int,
    discrete: bool,
    zero_inputs: int = 0,
) -> Problem:
    """The PPO agent's problem (control and ant): separate policy and value MLPs of
    ``c.hidden`` (LeCun init, state-independent log-std; ``zero_inputs`` first-layer rows
    for always-zero inputs after the ``observations``, :class:`lopkit.rl.ActorCriticConfig`),
    the clipped PPO loss as both loss and reported error, the optimizer of ``c``'s optimizer
    fields after clipping the gradient's global norm to ``c.max_grad_norm`` (0: none).
    Rollouts batched over the runs, each run's updates computed one run at a time
    (``seed_map="split"``): a run's minibatch products then sum in the same order alone and
    in a batch, bit for bit (docs/design.md §2)."""
    network = {
        "observations": observations,
        "actions": actions,
        "discrete": discrete,
        "hidden": c.hidden,
        "activation": c.activation,
        "init": "lecun",
        "log_std_init": c.log_std_init,
    }
    if zero_inputs:  # only then: the network dicts of other runs stay as they were
        network["zero_inputs"] = zero_inputs

    def loss(out, batch):
        return ppo_loss(out, batch, ppo, discrete)[0]

    def optimizer_fn(o: dict[str, Any]) -> optax.GradientTransformation:
        base = make_optimizer(o)
        if c.max_grad_norm > 0:
            return optax.chain(optax.clip_by_global_norm(c.max_grad_norm), base)
        return base

    return Problem(
        stream=stream,
        network=network,
        make_network=make_agent,
        loss_fn=loss,
        error_fn=loss,
        error_name="loss",
        optimizer=optimizer_settings(c),
        optimizer_fn=optimizer_fn,
        seed_map="split",
    )
