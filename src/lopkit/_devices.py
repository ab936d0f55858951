"""Runs spread over a machine's devices: one JAX CPU device per core, the run axis sharded.

JAX gives a CPU one device by default, and one device runs one computation at a time: a
batched lopkit program then keeps about 1.2 of 2 cores busy (XLA:CPU parallelizes within
large operations, not across the many small ones of small nets). With one CPU device per
core and the state's run axis (seeds × swept values) split across them, each device runs
its share of the runs as its own program (:func:`per_device`) — the runs are independent,
so nothing is exchanged — and the cores work in parallel. Measured on 2 cores, 1 → 2
devices: PPO on CartPole at K = 64, 40k → 84k env-steps/s; slowly-changing regression at
K = 1,000, backprop 3.9M → 8.9M, cbp 2.9M → 5.9M seed-steps/s. ``any_seed``
(:mod:`lopkit._seeds`) then asks about the seeds of one device, which by its contract does
not change what a seed computes.

lopkit configures JAX when it first runs something, not when it is imported
(:func:`configure`, docs/design.md §7): the first experiment made or run (``lopkit.run``,
``make_experiment``, every CLI command that computes) sets JAX's CPU device count
(``jax_num_cpu_devices``) to ``$LOPKIT_CPU_DEVICES`` if set, else the number of cores this
process may use (``1`` turns it off), and caps XLA's CPU instruction set (below). Both must
happen before JAX starts its backend, and both then hold for the whole process (JAX has one
configuration per process). ``import lopkit`` changes nothing: a user's own JAX code that
runs before lopkit runs anything sees JAX as it would without lopkit. If JAX's backend has
already started when lopkit first runs, the settings cannot change any more: lopkit uses the
devices and the instruction set JAX has and warns once (:class:`DeviceConfigWarning`) where
they differ from its own. ``lopkit.configure_devices()`` at the top of a script applies
lopkit's settings before any JAX code. On an accelerator the default backend's devices are
used the same way.

**Exact arithmetic on x86-64 CPUs.** XLA:CPU contracts a multiply and an add into one fused
multiply-add (FMA: one rounding instead of two) where the CPU has FMA instructions, and
whether it does so for one run's value depends on how the *batch* of runs is vectorized.
Measured here (AVX-512 CPU, jaxlib 0.10): the bias update ``b − α·g`` of a run came out with
FMA in a batch of 8 runs and without it in a batch of 2; with the ISA capped at AVX2, CBP's
utility ``η·u + (1 − η)·y`` with η a per-run value still did, in batches of 1–7 and 9–12
runs but not 8 or 16. One ulp, which a discrete event (an LTU target at its threshold, a CBP
replacement choosing between two close utilities) turns into a different run: slowly-
changing regression with CBP, seed 2, error 0.889 in a batch of 8 and 0.810 alone in the
first 10,000 steps. So that a run computes the same bits alone, in a batch, beside other
grid values and on any number of devices (supervised MLPs: tested), lopkit (when it first
runs something) caps XLA's CPU instruction set at AVX (``--xla_cpu_max_isa=AVX`` in
``XLA_FLAGS``: 256-bit vectors, no FMA), unless ``XLA_FLAGS`` already chooses an ISA or
``LOPKIT_CPU_ISA`` says otherwise: ``LOPKIT_CPU_ISA=native`` lifts the cap (measured on this
2-core AVX-512 machine: slowly-changing regression at K = 1,000 about 20% faster, the
permuted quick preset about 16%; runs then agree across batch compositions only to rounding,
and chaotic runs drift apart), any other value is passed as the ISA. Like the device count,
it must be set before JAX starts. The cap removes one cause; another is left to the code's
shapes: XLA:CPU may also order a long sum (a reduction, a matrix–vector product) by the
batch — measured, a [100, 10] column sum differed in batches of 1–3 runs, a [784, 100] one
did not, and matrix–vector products differed more often than reductions. The probes are
therefore computed one run at a time (:func:`lopkit._seeds.one_run_at_a_time`), and so are
the RL agents' updates (``seed_map="split"``: a DQN conv filter's gradient and PPO's
[128, 256] minibatch products summed in a batch-dependent order when batched); rules prefer
reductions to products with a vector of ones, and tests/test_exact_batching.py checks every
remedy and the RL agents, bit for bit. Hosted streams (dmc) still update as one batch:
their agents agree across batch compositions to rounding.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

RUN_AXIS = "runs"  # the mesh axis of the state's leading (run) axis


def cpu_devices_wanted() -> int:
    """``$LOPKIT_CPU_DEVICES``, else the cores this process may use."""
    value = os.environ.get("LOPKIT_CPU_DEVICES", "").strip()
    if value:
        if value.isdigit() and int(value) >= 1:
            return int(value)
        warnings.warn(
            f"LOPKIT_CPU_DEVICES must be a whole number ≥ 1, got {value!r}; using one device "
            "per core",
            stacklevel=2,
        )
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


EXACT_ISA = "AVX"  # the widest x86-64 ISA level without FMA instructions


def isa_flag() -> str | None:
    """The ``--xla_cpu_max_isa`` flag lopkit adds to ``XLA_FLAGS`` (module docstring), or
    None: not on x86-64, ``LOPKIT_CPU_ISA=native``, or ``XLA_FLAGS`` already names an ISA."""
    import platform

    if "xla_cpu_max_isa" in os.environ.get("XLA_FLAGS", ""):
        return None
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    isa = os.environ.get("LOPKIT_CPU_ISA", "").strip() or EXACT_ISA
    if isa.lower() == "native":
        return None
    return f"--xla_cpu_max_isa={isa}"


class DeviceConfigWarning(UserWarning):
    """JAX's backend started before lopkit could configure it: runs use the devices and the
    instruction set JAX has (the message says which, and what that changes)."""


_configured = False


def backend_started() -> bool:
    """Whether JAX's backend has started (then its device count and XLA flags are fixed).
    Asked of JAX's ``xla_bridge``; where a JAX version lacks it, False, and
    :func:`configure` learns it from the error of setting the device count."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return False


def configure() -> None:
    """Configure JAX for lopkit's runs, once per process, before lopkit first computes:
    the CPU device count (:func:`cpu_devices_wanted`) and the CPU ISA cap
    (:func:`isa_flag`). Before JAX is imported they go into its environment variables
    (``JAX_NUM_CPU_DEVICES``, ``XLA_FLAGS``), after that into its config and ``XLA_FLAGS``
    (read when the backend starts). If the backend has already started, nothing can change:
    a :class:`DeviceConfigWarning` says what differs from lopkit's settings (not capped:
    a run may differ in its last bits from the same run in another batch; fewer devices:
    slower, the same results)."""
    global _configured
    if _configured:
        return
    _configured = True
    flag = isa_flag()
    n = cpu_devices_wanted()
    if backend_started():
        _warn_if_different(flag, n)
        return
    if flag:
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    if "jax" not in sys.modules:
        os.environ["JAX_NUM_CPU_DEVICES"] = str(n)
        return
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backend had started after all (see backend_started)
        _warn_if_different(flag, n)


def _warn_if_different(flag: str | None, n: int) -> None:
    """Warn (once, from :func:`configure`) where the running backend is not as lopkit would
    have set it up; on an accelerator only the default backend matters, and nothing does."""
    import jax

    if jax.default_backend() != "cpu":
        return
    problems = []
    if flag is not None:
        problems.append(
            f"XLA's CPU instruction set is not capped ({flag} is missing), so a run inside a "
            "batch of seeds or a grid may differ in its last bits from the same run alone "
            "(docs/design.md §2)"
        )
    have = jax.local_device_count()
    if have != n:
        problems.append(
            f"runs use {have} CPU device{'s' * (have != 1)}, not {n} (slower, the same results)"
        )
    if problems:
        warnings.warn(
            "JAX's backend started before lopkit ran anything: "
            + "; ".join(problems)
            + ". Call lopkit.configure_devices() before your own JAX code (or set XLA_FLAGS="
            "--xla_cpu_max_isa=AVX and LOPKIT_CPU_DEVICES before starting Python) to run "
            "exactly as the command line does.",
            DeviceConfigWarning,
            stacklevel=3,
        )


def _runs(state: Any) -> int:
    """The number of runs of ``state``: the leading axis of its leaves."""
    import jax
    import numpy as np

    return int(np.shape(jax.tree_util.tree_leaves(state)[0])[0])


def run_sharding(runs: int):
    """The sharding of a state of ``runs`` runs over the default backend's local devices
    (a ``NamedSharding``): the run axis split across the largest number of devices that
    divides it evenly; None when that is one device."""
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.local_devices()
    d = max(n for n in range(1, len(devices) + 1) if runs % n == 0)
    if d == 1:
        return None
    return NamedSharding(Mesh(np.asarray(devices[:d]), (RUN_AXIS,)), PartitionSpec(RUN_AXIS))


def place(state: Any) -> Any:
    """``state`` (every leaf with the leading run axis) on the devices, run axis split
    (:func:`run_sharding`), as :func:`per_device` computes on it. Unchanged on one device.
    Which device computes a run does not change what it computes."""
    import jax

    sharding = run_sharding(_runs(state))
    if sharding is None:
        return state
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, sharding), state)


def per_device(fn, state: Any):
    """``fn(state)`` (runs along the leading axis of every leaf, in and out) as one program
    per device on its own share of the runs (:func:`run_sharding`), with ``jax.shard_map``:
    each device computes ``fn`` on its runs exactly as one device would on those runs alone,
    and nothing passes between devices (sharding propagation left to itself found a
    reduction across the run axis in CBP's update and synchronized the devices every step).
    ``fn`` on one device when the runs do not split."""
    import jax

    sharding = run_sharding(_runs(state))
    if sharding is None:
        return fn(state)
    spec = sharding.spec
    return jax.shard_map(fn, mesh=sharding.mesh, in_specs=(spec,), out_specs=spec, check_vma=False)(
        state
    )


def gather(tree: Any) -> Any:
    """``tree`` on one device (the first local one) when its leaves are split across
    several (as :func:`place` leaves a state), for a small computation that a call across
    devices would only slow down: each device's share would wait on the others'."""
    import jax

    def split(leaf):
        sharding = getattr(leaf, "sharding", None)  # None: a host array
        return sharding is not None and len(sharding.device_set) > 1

    if not any(split(leaf) for leaf in jax.tree_util.tree_leaves(tree)):
        return tree  # on one device, or host arrays (which a jitted call puts on the first)
    return jax.device_put(tree, jax.local_devices()[0])
