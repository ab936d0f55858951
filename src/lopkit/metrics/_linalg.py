"""Symmetric eigendecompositions that are safe inside a program split across CPU devices.

jaxlib 0.10's LAPACK kernels (``lapack_ssyevd_ffi`` and the others) split a large *batch*
of matrices into tasks on XLA:CPU's intra-op thread pool and block that thread until the
tasks are done. When as many such calls run at once as the pool has threads — each device
of a program split across the cores (``lopkit._devices``) runs its own, inside a loop whose
body executes on a pool thread — every thread waits for tasks that no thread is free to
run, and the program hangs for ever. Seen here: ``lopkit run scr --seeds 800`` with the
default probes on 2 cores (400 runs per device; 300 did not hang) stopped at its first
probe with every thread idle; the native stacks show both pool threads in
``BlockingCounter::Wait`` under ``ParallelBatchMap`` / ``EigenvalueDecompositionSymmetric``.
(Later jaxlib releases build that parallel path out.)

:func:`eigh` and :func:`eigvalsh` decompose one matrix per LAPACK call: under ``vmap``
(the engine's seeds and swept values) the batch becomes a sequential ``lax.map``, so a call
never has a batch to split and never waits on the pool. The result of each matrix is the
one the batched call computes (the batched kernel calls the same routine on each matrix).
The cost is a loop step per matrix — microseconds beside a probe's other work.
No reverse-mode derivative (probes do not differentiate their spectra).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import custom_batching


@custom_batching.custom_vmap
def eigh(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(eigenvalues ascending ``[n]``, eigenvectors as columns ``[n, n]``) of the symmetric
    ``a [n, n]`` (``jnp.linalg.eigh`` with ``symmetrize_input=True``), one matrix per call."""
    w, v = jnp.linalg.eigh(a, symmetrize_input=True)
    return w, v


@eigh.def_vmap
def _eigh_vmap(axis_size, in_batched, a):
    del axis_size
    (batched,) = in_batched
    if not batched:
        return eigh(a), (False, False)
    return jax.lax.map(eigh, a), (True, True)


def eigvalsh(a: jax.Array) -> jax.Array:
    """Eigenvalues ascending of the symmetric ``a [n, n]``, one matrix per LAPACK call."""
    return eigh(a)[0]
