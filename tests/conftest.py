import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# The suite runs without the persistent compilation cache: xdist workers writing one cache
# at once crashed a CI run (a segfault in JAX's cache write), and a fresh clone's cache is
# empty anyway. test_compilation_cache.py tests the cache in its own processes.
os.environ.setdefault("LOPKIT_CACHE_DIR", "off")
# One CPU device per test process (lopkit._devices would make one per core): the workers
# already use every core, and splitting each test's small programs across devices made the
# suite slower. test_engine checks the split in a process of its own.
os.environ.setdefault("LOPKIT_CPU_DEVICES", "1")
# Few XLA optimizations by default (see _few_optimizations), also for what a session- or
# module-scoped fixture compiles or starts before a test's own fixtures run.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# Nothing renders: dm-control would otherwise look for an OpenGL backend when a test imports
# it (GLFW first, which warns without a display). lopkit.dmc_envs sets the same.
os.environ.setdefault("MUJOCO_GL", "disable")
# JAX as lopkit runs it (CPU devices, the ISA cap of bit-exact batching), before any test's
# JAX code starts the backend: lopkit itself configures it only when it first runs
# something (docs/design.md §7), and many tests compute before they make an experiment.
from lopkit import _devices  # noqa: E402

_devices.configure()


@pytest.fixture(autouse=True)
def _few_optimizations(request, monkeypatch):
    """Compile with few XLA optimizations (``jax_disable_most_optimizations``), in this
    process and in the ``lopkit`` processes a test starts (``JAX_DISABLE_MOST_OPTIMIZATIONS``),
    except in tests marked ``slow`` (long runs, which need optimized code) or ``optimized``
    (which keep the optimized path under test in ``make test``).

    Most tests run a small program once, so compiling is most of their time: measured on 2
    cores, 9 compile-bound modules (binary_tasks … warmstart) took 295 s of CPU time
    optimized and 195 s so; the studies and CLI tests 169 s and 126 s. It changes how code is
    compiled, not what it computes (to float rounding)."""
    import jax

    marked = request.node.get_closest_marker
    fast = not (marked("slow") or marked("optimized"))
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1" if fast else "0")
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", fast)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every compiled program keeps
    its machine code mapped (about 500 memory mappings for a small lopkit run); a worker
    that runs hundreds of tests without releasing them reaches the kernel's limit of
    65,530 mappings (vm.max_map_count) and XLA segfaults in its next compile."""
    yield
    import jax

    jax.clear_caches()
