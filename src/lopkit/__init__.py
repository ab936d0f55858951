"""lopkit: a lab for loss of plasticity in deep continual learning."""

from lopkit._devices import configure_cpu_devices as _configure_cpu_devices

_configure_cpu_devices()
