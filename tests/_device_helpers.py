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


def on_one_and_two_devices(code: str, tmp_path) -> tuple[dict, dict]:
    """``code`` run on 1 and on 2 CPU devices (:func:`on_devices`), given the path of an
    ``.npz`` file to write as its argument: (its JSON reports, the arrays it saved), each a
    dict keyed by the device count (the arrays: a dict of name to array, in saved order)."""
    import numpy as np

    reports, results = {}, {}
    for devices in (1, 2):
        out = tmp_path / f"{devices}.npz"
        reports[devices] = on_devices(devices, code, str(out))
        with np.load(out) as data:
            results[devices] = dict(data)
    return reports, results
