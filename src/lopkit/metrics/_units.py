"""Per-unit activity diagnostics: dead, dormant, inactive, linearized and saturated units.

Every function takes the activations of ONE hidden layer on a fixed probe batch, for one
seed (the engine vmaps over seeds):

* dense layers: ``h: [batch, units]``;
* conv layers: ``h: [batch, height, width, channels]`` -- a channel is a unit, and every
  statistic averages over batch x height x width (docs/design.md §11).

:func:`as_units` flattens the leading axes so both cases become ``[n, units]``.
Fractions are returned as float scalars in [0, 1]; all functions are jit- and vmap-able
(no Python branching on array values; thresholds are static Python floats).
"""

from __future__ import annotations

import jax.numpy as jnp

# Tolerance that turns "s_i <= 0" into "s_i ~ 0" for ``dormant_fraction(tau=0)``.
DORMANT_ATOL = 1e-6

# Default saturation threshold per activation (see :func:`saturated_fraction`).
SATURATION_THRESHOLDS = {"tanh": 0.99, "sigmoid": 0.99}


def as_units(h) -> jnp.ndarray:
    """Flattens activations to ``[n, units]``: the last axis is the unit (channel) axis.

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]`` (any leading axes), any
        array ``jnp.asarray`` accepts.

    Returns:
      ``[n, units]`` with ``n = prod(leading axes)`` (e.g. ``batch * height * width``).
    """
    h = jnp.asarray(h)
    if h.ndim < 2:
        raise ValueError(f"activations need at least 2 axes [..., units], got shape {h.shape}")
    return h.reshape(-1, h.shape[-1])


def dead_fraction(h) -> jnp.ndarray:
    """Fraction of dead units: ``h_i = 0`` on every probe input.

    ``dead_i = all_n (h_{n,i} = 0)``; returns ``mean_i dead_i``. Conv: a channel is dead if
    it is zero at every position of every probe image.

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]`` (post-activation).

    Returns:
      Scalar in [0, 1].

    References:
      Dohare et al., "Loss of plasticity in deep continual learning", Nature 632 (2024),
      Methods ("dead units", permuted MNIST).
    """
    u = as_units(h)
    return jnp.mean(jnp.all(u == 0, axis=0).astype(jnp.float32))


def dormant_scores(h) -> jnp.ndarray:
    """ReDo dormancy scores ``s_i = E|h_i| / ((1/U) sum_k E|h_k|)``.

    The expectation is over the probe inputs (and spatial positions for conv layers); the
    normalizer is the layer MEAN of ``E|h_k|``, so an evenly active layer has every
    ``s_i = 1`` (variant: some code normalizes by the layer SUM, which divides every score
    by the width U -- see docs/metrics.md). A layer whose activations are all zero gets
    every score 0 (instead of 0/0).

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]``.

    Returns:
      ``[units]`` non-negative scores.

    References:
      Sokar et al., "The dormant neuron phenomenon in deep reinforcement learning",
      ICML 2023, Definition 3.1.
    """
    u = as_units(h)
    mean_abs = jnp.mean(jnp.abs(u), axis=0)
    layer_mean = jnp.mean(mean_abs)
    safe = jnp.where(layer_mean > 0, layer_mean, 1.0)
    return jnp.where(layer_mean > 0, mean_abs / safe, 0.0)


def dormant_fraction(h, tau: float = 0.1) -> jnp.ndarray:
    """Fraction of tau-dormant units: ``s_i <= tau`` with ``s_i`` from :func:`dormant_scores`.

    Compared as ``s_i <= tau + DORMANT_ATOL`` (1e-6), so ``tau = 0`` means ``s_i ~ 0`` and a
    score that is tau up to float rounding counts as dormant.

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]``.
      tau: dormancy threshold; 0.1 (Sokar 2023 default for ReDo), 0.025 also used; 0 for
        "completely dormant".

    Returns:
      Scalar in [0, 1]. An all-zero layer is entirely dormant (1.0).

    References:
      Sokar et al., ICML 2023, Definition 3.1 and section 4 (tau = 0.1 / 0.025).
    """
    s = dormant_scores(h)
    return jnp.mean((s <= tau + DORMANT_ATOL).astype(jnp.float32))


def inactive_fraction(h, p: float = 0.01) -> jnp.ndarray:
    """Fraction of units nonzero on fewer than a fraction ``p`` of probe inputs.

    ``active_rate_i = mean_n (h_{n,i} != 0)``; inactive if ``active_rate_i < p``. Conv: the
    rate is over batch x height x width. Dead units are inactive for every ``p > 0``.

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]`` (post-activation).
      p: activity-rate threshold; 0.01 (1%, Dohare 2024 class-incremental CIFAR-100, where
        the paper calls these units "dormant").

    Returns:
      Scalar in [0, 1].

    References:
      Dohare et al., Nature 632 (2024), Methods (class-incremental CIFAR-100).
    """
    u = as_units(h)
    active_rate = jnp.mean((u != 0).astype(jnp.float32), axis=0)
    return jnp.mean((active_rate < p).astype(jnp.float32))


def linear_fraction(pre) -> jnp.ndarray:
    """Fraction of linearized ReLU units: PRE-activation ``> 0`` on every probe input.

    Such a unit never uses its nonlinearity on the probe data, so it acts as a linear unit
    (the mirror image of a dead unit, whose pre-activation is ``<= 0`` everywhere).

    Args:
      pre: pre-activations ``[batch, units]`` or ``[batch, height, width, channels]``.

    Returns:
      Scalar in [0, 1].

    References:
      Lyle et al., "Disentangling the causes of plasticity loss in neural networks",
      2024 (linearized units).
    """
    u = as_units(pre)
    return jnp.mean(jnp.all(u > 0, axis=0).astype(jnp.float32))


def saturated_fraction(h, activation: str, threshold: float | None = None) -> jnp.ndarray:
    """Fraction of units saturated on every probe input.

    * ``tanh``: saturated on input n if ``|h_{n,i}| > threshold``;
    * ``sigmoid``: saturated on input n if ``h_{n,i} > threshold`` or
      ``h_{n,i} < 1 - threshold``.

    A unit counts if it is saturated on every input (either side; both sides have a
    near-zero derivative). ``threshold`` is how close to the asymptote, on the
    activation's own scale: default 0.99 for both (tanh ``|h| > 0.99``; sigmoid
    ``h < 0.01 or h > 0.99``). Named variant ``tanh@0.9``: ``threshold=0.9``.

    Args:
      h: post-activations ``[batch, units]`` or ``[batch, height, width, channels]``.
      activation: ``"tanh"`` or ``"sigmoid"``.
      threshold: ``None`` for the activation's default (:data:`SATURATION_THRESHOLDS`).

    Returns:
      Scalar in [0, 1].

    References:
      Dohare et al., Nature 632 (2024), slowly-changing regression (tanh, sigmoid);
      Yuan et al., "Plasticine: Accelerating research in plasticity-motivated deep
      reinforcement learning", 2025 (saturated-unit ratio).
    """
    if activation not in SATURATION_THRESHOLDS:
        raise ValueError(
            f"saturated_fraction: unknown activation {activation!r}; "
            f"known: {sorted(SATURATION_THRESHOLDS)}"
        )
    t = SATURATION_THRESHOLDS[activation] if threshold is None else float(threshold)
    u = as_units(h)
    if activation == "tanh":
        saturated = jnp.abs(u) > t
    else:
        saturated = (u > t) | (u < 1.0 - t)
    return jnp.mean(jnp.all(saturated, axis=0).astype(jnp.float32))


def duplicate_fraction(h, threshold: float = 0.95, std_eps: float = 1e-6) -> jnp.ndarray:
    """Fraction of duplicate units: ``|ρ(h_i, h_j)| > threshold`` for some other unit ``j``.

    ``ρ`` is the Pearson correlation of two units' activations over the probe inputs (and
    positions, for conv layers). A *constant* unit (standard deviation ``≤ std_eps`` times
    the layer's largest one, or exactly 0: dead units, units saturated on every input) has
    no correlation and is never a duplicate, nor does it make another unit one; it stays in
    the denominator (the fraction is over all units of the layer). Two units that are
    copies or negated copies of each other are both duplicates. An all-constant layer has
    fraction 0.

    Args:
      h: ``[batch, units]`` or ``[batch, height, width, channels]``.
      threshold: the correlation above which two units are duplicates; 0.95.
      std_eps: relative standard deviation under which a unit counts as constant.

    Returns:
      Scalar in [0, 1].

    No paper fixes this test: it is lopkit's count of redundant units (a unit that another
    one already represents up to scale and sign adds no capacity), threshold 0.95.
    """
    u = as_units(h)
    u = u.astype(jnp.promote_types(u.dtype, jnp.float32))
    centered = u - jnp.mean(u, axis=0)
    std = jnp.sqrt(jnp.mean(centered * centered, axis=0))
    live = std > std_eps * jnp.max(std)
    z = centered / jnp.where(live, std, 1.0)
    rho = (z.T @ z) / u.shape[0]
    pair = live[:, None] & live[None, :] & ~jnp.eye(u.shape[1], dtype=bool)
    dup = jnp.any(pair & (jnp.abs(rho) > threshold), axis=1)
    return jnp.mean(dup.astype(jnp.float32))


def grama_scores(g) -> jnp.ndarray:
    """GraMa scores ``s_i = E|g_i| / ((1/U) Σ_k E|g_k|)`` of the loss gradients ``g`` at a
    layer's units: ReDo's normalized score (:func:`dormant_scores`) computed on gradients
    instead of activations.

    Which gradient: the probes pass ``g = ∂L/∂z``, the gradient at each unit's
    PRE-activation ``z`` (per example), which is what reaches the unit's parameters
    (``∂L/∂b_i = Σ_n g_{n,i}``, ``∂L/∂W_{ji} = Σ_n x_{n,j} g_{n,i}``): a dead ReLU unit has
    ``g_i = 0`` and the score 0. The gradient at its OUTPUT ``h`` would not show it:
    ``∂L/∂h_i = Σ_j δ_j W_{ij}`` is whatever the next layer sends back, dead or not.
    (A weight-gradient reading, ``mean_j |∂L/∂W_{ji}|``, is a third variant; see
    docs/metrics.md.) The expectation is over the probe inputs (and positions for conv
    layers); a layer whose gradients are all zero gets every score 0.

    Args:
      g: per-example gradients of the probe loss at the layer's units, ``[batch, units]``
        or ``[batch, height, width, channels]`` (of the batch-mean loss: the common factor
        ``1/batch`` cancels in the ratio).

    Returns:
      ``[units]`` non-negative scores.

    References:
      Liu, Wu, Obando-Ceron, Castro, Courville & Pan, "Measure gradients not activations!
      Enhancing neuronal activity in deep reinforcement learning", 2025 (arXiv 2505.24061),
      the GraMa metric (a unit's learning capacity: the gradient magnitude it receives).
    """
    return dormant_scores(g)


def grama_dormant_fraction(g, tau: float = 0.1) -> jnp.ndarray:
    """Fraction of units whose GraMa score :func:`grama_scores` is ``≤ tau`` (compared as
    ``s_i ≤ tau + 1e-6``, as :func:`dormant_fraction`). An all-zero gradient layer is
    entirely dormant (1.0).

    Args:
      g: gradients at the units, ``[batch, units]`` or ``[batch, height, width, channels]``.
      tau: threshold; 0.1 (ReDo's, whose activation score GraMa replaces; the reset rule's
        own τ is a setting of the ``regrama`` remedy).

    Returns:
      Scalar in [0, 1].

    References:
      Liu et al. 2025 (arXiv 2505.24061), GraMa / ReGraMa.
    """
    return dormant_fraction(g, tau)
