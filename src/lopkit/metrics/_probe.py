"""Optimizer-state norms and the plasticity probe (trainability of a copy on a fresh task)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.tree_util import GetAttrKey

from lopkit.metrics._weights import param_norm

_MOMENT_FIELDS = {"mu": "adam_mu_norm", "nu": "adam_nu_norm"}


def adam_moment_norms(opt_state) -> dict[str, jnp.ndarray]:
    """Global L2 norms of Adam's first and second moments, found by NAME in ``opt_state``.

    Searches the whole optax state pytree (chains, ``inject_hyperparams``, masks, ...) for
    leaves under a field named ``mu`` (first moment, ``ScaleByAdamState.mu``) or ``nu``
    (second moment, ``ScaleByAdamState.nu``); a leaf is classified by the FIRST such
    attribute on its path, so parameter names inside the moment trees cannot confuse it.
    Never indexes the state by position (a silent source of bugs when layouts differ).
    If a chain holds several Adam-like states, their moments are pooled into one norm each.

    ``adam_mu_norm = ||m||_2``, ``adam_nu_norm = ||v||_2`` over all leaves.

    Args:
      opt_state: an optax optimizer state (one seed).

    Returns:
      ``{"adam_mu_norm", "adam_nu_norm"}`` of float scalars.

    Raises:
      ValueError: if the state has no ``mu``/``nu`` fields (e.g. plain SGD).

    References:
      Lyle et al., "Understanding plasticity in neural networks", ICML 2023 (Adam moment
      statistics); Kingma & Ba, "Adam", ICLR 2015 (m_t, v_t).
    """
    found = {name: [] for name in _MOMENT_FIELDS}
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        for key in path:
            if isinstance(key, GetAttrKey) and key.name in _MOMENT_FIELDS:
                found[key.name].append(leaf)
                break
    missing = [name for name, leaves in found.items() if not leaves]
    if missing:
        raise ValueError(f"adam_moment_norms: no {missing} fields in the optimizer state")
    return {_MOMENT_FIELDS[name]: param_norm(leaves) for name, leaves in found.items()}


def plasticity_probe(
    loss_fn: Callable,
    params,
    optimizer: optax.GradientTransformation,
    batches,
    eval_batch,
    opt_state=None,
) -> jnp.ndarray:
    """Plasticity probe ``1 - loss_after / loss_before`` after k steps on a fresh task.

    From a copy of the current parameters (``params`` is not modified; JAX is pure), take
    ``k`` optimizer steps on the fresh task's ``batches`` (``k`` = leading axis, scanned
    with ``lax.scan``): ``g = grad loss_fn(theta, batch_t)``, ``theta <- theta + update``.
    Both losses are ``loss_fn(., eval_batch)`` on the SAME evaluation batch of the fresh
    task: ``loss_before`` at the copied parameters, ``loss_after`` at the trained copy.
    By default the optimizer state is freshly initialized (``optimizer.init(params)``);
    pass ``opt_state`` to continue from the learner's state instead.

    1 means the copy fits the new task perfectly, 0 means no progress (exactly 0 with step
    size 0), < 0 means the loss went up. The caller builds the fresh task (e.g. new random
    regression targets, Lyle 2022; a new stream task, Elsayed & Mahmood 2024); losses must
    be non-negative. 0 if ``loss_before == 0``. Variant: Elsayed & Mahmood's per-sample
    plasticity takes one step (k = 1) and evaluates on the batch it stepped on
    (``eval_batch = batches[0]``), then clips at 0: ``max(probe, 0)``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: current parameters (one seed).
      optimizer: an optax gradient transformation, e.g. ``optax.sgd(1e-2)``.
      batches: pytree of training batches with a leading step axis ``[k, ...]``.
      eval_batch: the evaluation batch of the fresh task (same structure, no step axis).
      opt_state: optional starting optimizer state; ``None`` for ``optimizer.init(params)``.

    Returns:
      Float scalar.

    References:
      Lyle, Rowland & Dabney, "Understanding and preventing capacity loss in reinforcement
      learning", ICLR 2022 (training on new targets from the current network);
      Elsayed & Mahmood, "Addressing loss of plasticity and catastrophic forgetting in
      continual learning", ICLR 2024 (plasticity as the relative loss reduction).
    """
    if opt_state is None:
        opt_state = optimizer.init(params)

    def step(carry, batch):
        p, s = carry
        grads = jax.grad(loss_fn)(p, batch)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    (trained, _), _ = jax.lax.scan(step, (params, opt_state), batches)
    loss_before = loss_fn(params, eval_batch)
    loss_after = loss_fn(trained, eval_batch)
    safe = jnp.where(loss_before != 0, loss_before, 1.0)
    return jnp.where(loss_before != 0, 1.0 - loss_after / safe, 0.0)
