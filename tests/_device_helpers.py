"""A test's code in a process of its own with a chosen number of CPU devices."""

import json
import os
import subprocess
import sys


def on_devices(devices: int, code: str, *args: str, timeout: float | None = None) -> dict:
    """Run ``code`` in a new Python process with ``devices`` CPU devices (the count is set
    when JAX starts); the JSON object on its last line of output."""
    env = {**os.environ, "LOPKIT_CPU_DEVICES": str(devices)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
