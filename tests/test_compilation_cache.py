"""The persistent compilation cache (lopkit._cache)."""

import os
import subprocess
import sys
import textwrap

import pytest

from lopkit import _cache


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOPKIT_CACHE_DIR", str(tmp_path / "c"))
    assert _cache.cache_dir() == tmp_path / "c"
    for off in ("off", "OFF", "0", "none", ""):
        monkeypatch.setenv("LOPKIT_CACHE_DIR", off)
        assert _cache.cache_dir() is None
    monkeypatch.delenv("LOPKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "lopkit" / "jax"


RUN = textwrap.dedent(
    """
    import time
    from lopkit._experiment import make_experiment, run_experiment
    e = make_experiment("scr", "cbp", seeds=2, steps=2000, bin_size=1000, metrics=("dead",))
    run_experiment(e, {out!r}, overwrite=True, progress=False)
    """
)


@pytest.mark.slow
def test_a_second_process_loads_the_program_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "LOPKIT_CACHE_DIR": str(cache)}

    def run(name):
        code = RUN.format(out=str(tmp_path / name))
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return {p.name for p in cache.iterdir()}

    first = run("a")
    assert first, "the first run wrote no cache entries"
    # the same program in a new process: found in the cache, nothing new compiled
    assert run("b") == first
    env["LOPKIT_CACHE_DIR"] = "off"
    run("c")  # runs without a cache
    assert {p.name for p in cache.iterdir()} == first
