"""Errors that lopkit reports to users as clear messages (no traceback)."""


class LopkitError(Exception):
    """Base class for errors caused by user input; the CLI prints them and exits 2."""


class ConfigError(LopkitError, ValueError):
    """An unknown name or an invalid value in a configuration."""


class ResultsError(LopkitError, ValueError):
    """A run, study or metrics table that cannot be read, plotted or reported as asked (an
    unknown metric or layer, a malformed table, …): the message says what is there."""
