"""Importing lopkit leaves JAX alone; lopkit configures JAX (CPU devices, the ISA cap of
bit-exact batching) when it first runs something, and says so when JAX started first.
Each case in a fresh Python process: JAX's configuration is set once per process."""

import json
import os
import platform
import subprocess
import sys

import pytest

X86 = platform.machine().lower() in ("x86_64", "amd64")
CAP = "--xla_cpu_max_isa=AVX"


def _fresh(code: str, tmp_path) -> dict:
    """``code`` in a new process with 2 CPU devices wanted and no ISA flag or device count
    inherited from this one; the JSON object it prints last."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_cpu_max_isa" not in f]
    env.update(
        XLA_FLAGS=" ".join(flags), LOPKIT_CPU_DEVICES="2", PYTHONPATH=os.pathsep.join(sys.path)
    )
    env.pop("JAX_NUM_CPU_DEVICES", None)
    env.pop("LOPKIT_CPU_ISA", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_lopkit_changes_nothing_in_jax(tmp_path):
    got = _fresh(
        """
import json, os, sys
before = {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
import lopkit, lopkit.results, lopkit.cli
after = {k: os.environ.get(k) for k in before}
imported = "jax" in sys.modules
import jax
print(json.dumps({"same": before == after, "jax_imported": imported,
                  "devices": jax.local_device_count(), "flags": os.environ["XLA_FLAGS"]}))
""",
        tmp_path,
    )
    assert got["same"] and not got["jax_imported"]
    assert got["devices"] == 1 and "xla_cpu_max_isa" not in got["flags"]


def test_configure_devices_before_jax_sets_devices_and_the_isa_cap(tmp_path):
    got = _fresh(
        """
import json, os, warnings
warnings.simplefilter("error")
import lopkit
lopkit.configure_devices()
import jax
print(json.dumps({"devices": jax.local_device_count(), "flags": os.environ["XLA_FLAGS"]}))
""",
        tmp_path,
    )
    assert got["devices"] == 2
    assert (CAP in got["flags"].split()) == X86


@pytest.mark.skipif(not X86, reason="the ISA cap is for x86-64 CPUs")
def test_jax_used_first_gets_a_warning_and_runs_as_jax_is(tmp_path):
    got = _fresh(
        """
import json, warnings
import lopkit
import jax.numpy as jnp
jnp.ones(3).sum()  # the user's own JAX code first: the backend starts uncapped, 1 device
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    run = lopkit.run("scr", seeds=2, steps=200, bin_size=100, metrics=(), out="r")
    lopkit.run("scr", seeds=2, steps=200, bin_size=100, metrics=(), out="r")
import jax
print(json.dumps({"warnings": [str(w.message) for w in caught
                               if w.category.__name__ == "DeviceConfigWarning"],
                  "finished": run.finished, "devices": jax.local_device_count()}))
""",
        tmp_path,
    )
    assert got["finished"] and got["devices"] == 1
    (message,) = got["warnings"]  # once per process
    assert "not capped" in message and "bit" in message
    assert "1 CPU device, not 2" in message and "lopkit.configure_devices()" in message


def test_importing_every_lopkit_module_leaves_the_backend_unstarted(tmp_path):
    """lopkit configures JAX's devices when it first runs something, which works only if no
    import started the backend first (gymnax's does: lopkit imports it where an env is made)."""
    got = _fresh(
        """
import json, pkgutil, importlib
import lopkit
names = [m.name for m in pkgutil.walk_packages(lopkit.__path__, "lopkit.")
         if not m.name.endswith("__main__") and ".bench." not in m.name
         and not m.name.startswith("lopkit.bench")]
for name in names:
    importlib.import_module(name)
from jax._src import xla_bridge
print(json.dumps({"started": xla_bridge.backends_are_initialized(), "modules": len(names)}))
""",
        tmp_path,
    )
    assert got["modules"] > 50
    assert not got["started"]
