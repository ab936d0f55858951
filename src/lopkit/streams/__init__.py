"""Continual problems as pure streams (see ``_base`` for the protocol)."""

from lopkit.streams._base import Block, Stream
from lopkit.streams._scr import (
    SCRStreamConfig,
    SlowlyChangingRegression,
    ltu_target,
    ltu_thresholds,
)

__all__ = [
    "Block",
    "SCRStreamConfig",
    "SlowlyChangingRegression",
    "Stream",
    "ltu_target",
    "ltu_thresholds",
]
