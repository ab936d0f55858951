import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# The suite runs without the persistent compilation cache: xdist workers writing one cache
# at once crashed a CI run (a segfault in JAX's cache write), and a fresh clone's cache is
# empty anyway. test_compilation_cache.py tests the cache in its own processes.
os.environ.setdefault("LOPKIT_CACHE_DIR", "off")


@pytest.fixture(scope="module")
def fast_compiles():
    """Compile with few optimizations, for a module that runs many tiny programs once
    (``pytestmark = pytest.mark.usefixtures("fast_compiles")``)."""
    import jax

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
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
