import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# One compilation cache for the whole suite (every xdist worker): a program that several
# tests build is compiled once. Under .pytest_cache, so it stays out of the user's cache.
os.environ.setdefault(
    "LOPKIT_CACHE_DIR",
    os.path.join(os.path.dirname(os.path.dirname(__file__)), ".pytest_cache", "jax"),
)
