import os

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# One compilation cache for the whole suite (every xdist worker): a program that several
# tests build is compiled once. Under .pytest_cache, so it stays out of the user's cache.
os.environ.setdefault(
    "LOPKIT_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "jax"),
)


@pytest.fixture(scope="module")
def fast_compiles():
    """Compile with few optimizations, for a module that runs many tiny programs once
    (``pytestmark = pytest.mark.usefixtures("fast_compiles")``)."""
    import jax

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
