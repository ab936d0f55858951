"""The run store: ``runs/<name>/`` on disk, and loading it into pandas (docs/design.md §10).

Layout of a run directory::

    runs/<name>/
        config.yaml              the fully resolved config, a plain nested dict
        metrics/part-000000.parquet, part-000001.parquet, ...   while the run is going
        metrics.parquet          written by RunWriter.finalize(); replaces metrics/
        checkpoint/              written by the engine
        plots/

The metrics table is tidy, one row per (seed, step, metric, layer), with exactly the
columns of :data:`METRICS_SCHEMA`:

=========  ========  ==================================================================
``seed``   int32     seed id (``first_seed`` + k for the run's k-th seed)
``step``   int64     global step the value refers to (for a binned value: the bin's end)
``metric`` string    e.g. ``"mse"``, ``"accuracy"``, ``"dead_fraction"``
``layer``  string    ``""`` for whole-network values, else e.g. ``"hidden_0"``
``value``  float64   NaN where the seed had diverged and is masked
=========  ========  ==================================================================

A run that sweeps continuous settings in one program (``--set lr=0.003,0.01``; docs/design.md §6)
has one further float64 column per swept setting, named by the setting (``lr``,
``l2.weight_decay``), after ``seed``: a row belongs to the run of that seed *and* those
values.

Every file is written atomically (:mod:`lopkit.results._io`), so a reader — ``load`` on
a run in progress, or a run killed at any instant — sees only whole parts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from .._errors import LopkitError, ResultsError
from ._io import TMP_SUFFIX, atomic_write_parquet, atomic_write_text

__all__ = [
    "COLUMNS",
    "METRICS_SCHEMA",
    "NoMetricsError",
    "NotARunError",
    "RunWriter",
    "coerce_metrics",
    "load",
    "load_many",
    "metrics_schema",
    "read_config",
    "write_config",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.parquet"
PARTS_DIR = "metrics"
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")

METRICS_SCHEMA = pa.schema(
    [
        ("seed", pa.int32()),
        ("step", pa.int64()),
        ("metric", pa.string()),
        ("layer", pa.string()),
        ("value", pa.float64()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(METRICS_SCHEMA.names)


def metrics_schema(settings: tuple[str, ...] = ()) -> pa.Schema:
    """The metrics schema with a float64 column per swept setting, after ``seed``."""
    fields = list(METRICS_SCHEMA)
    return pa.schema(fields[:1] + [(name, pa.float64()) for name in settings] + fields[1:])


SORT_KEYS = ["metric", "layer", "seed", "step"]


class NotARunError(LopkitError, FileNotFoundError):
    """The directory does not exist or holds no ``config.yaml``."""


class NoMetricsError(LopkitError, FileNotFoundError):
    """The run directory holds neither ``metrics.parquet`` nor any metrics part."""


# --------------------------------------------------------------------------- config


def _plain(obj):
    """Turn tuples, numpy scalars/arrays and paths into plain YAML-safe Python values."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_config(run_dir: str | os.PathLike, config: Mapping) -> Path:
    """Atomically write ``config`` (a nested dict) to ``<run_dir>/config.yaml``.

    Keys keep their insertion order. Tuples become lists and numpy scalars plain numbers,
    so ``read_config`` returns the config as plain Python values. Returns the file path.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    text = yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False)
    return atomic_write_text(Path(run_dir) / CONFIG_FILE, text)


def _require_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise NotARunError(f"not a run directory: {str(run_dir)!r} does not exist")
    if not (run_dir / CONFIG_FILE).is_file():
        raise NotARunError(f"not a run directory: {str(run_dir)!r} has no {CONFIG_FILE}")


def read_config(run_dir: str | os.PathLike) -> dict:
    """Read ``<run_dir>/config.yaml`` back into a nested dict."""
    run_dir = Path(run_dir)
    _require_run_dir(run_dir)
    config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ResultsError(f"{run_dir / CONFIG_FILE} does not hold a mapping")
    return config


# --------------------------------------------------------------------------- schema


def _integral(col: pd.Series, dtype: str) -> pd.Series:
    if pd.api.types.is_integer_dtype(col):
        return col.astype(dtype)
    values = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise ResultsError(f"column {col.name!r} must hold whole numbers, got non-integers")
    return pd.Series(values.astype(dtype), index=col.index, name=col.name)


def _text(col: pd.Series) -> pd.Series:
    if col.isna().any():
        raise ResultsError(f"column {col.name!r} holds missing values; use '' for none")
    return col.astype(str)


def coerce_metrics(df: pd.DataFrame, settings: tuple[str, ...] = ()) -> pd.DataFrame:
    """Check that ``df`` has exactly the metrics columns (and one per swept setting in
    ``settings``) and cast them to their dtypes.

    Returns a new frame with columns in :func:`metrics_schema` order and a fresh RangeIndex.
    Raises ValueError naming any missing or extra column, or a column that cannot be cast.
    """
    expected = metrics_schema(tuple(settings)).names
    missing = [c for c in expected if c not in df.columns]
    extra = [c for c in df.columns if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        raise ResultsError(f"metrics table: {'; '.join(parts)}; expected exactly {expected}")
    try:
        swept = {
            name: pd.to_numeric(df[name], errors="raise").astype("float64") for name in settings
        }
        out = pd.DataFrame(
            {
                "seed": _integral(df["seed"], "int32"),
                **swept,
                "step": _integral(df["step"], "int64"),
                "metric": _text(df["metric"]),
                "layer": _text(df["layer"]),
                "value": pd.to_numeric(df["value"], errors="raise").astype("float64"),
            }
        )
    except (TypeError, ValueError) as e:
        raise ResultsError(f"metrics table: {e}") from e
    return out.reset_index(drop=True)


def settings_of(schema: pa.Schema) -> tuple[str, ...]:
    """The swept-setting columns of a metrics file's schema (none for a plain run)."""
    return tuple(n for n in schema.names if n not in COLUMNS)


def _read_table(paths: list[Path]) -> pd.DataFrame:
    settings = settings_of(pq.read_schema(paths[0])) if paths else ()
    schema = metrics_schema(settings)
    tables = [pq.read_table(p, schema=schema) for p in paths]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return coerce_metrics(table.to_pandas(), settings)


# --------------------------------------------------------------------------- writer


def _parts(parts_dir: Path) -> list[tuple[int, Path]]:
    """The (chunk, path) of every finished part in ``parts_dir``, by chunk number."""
    if not parts_dir.is_dir():
        return []
    found = []
    for p in parts_dir.iterdir():
        m = _PART_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


class RunWriter:
    """Appends the metrics of a run, one Parquet part per chunk of work, then finalizes.

    ``append(chunk, df)`` writes ``<run_dir>/metrics/part-{chunk:06d}.parquet``
    atomically; ``finalize()`` merges the parts into ``<run_dir>/metrics.parquet`` and
    removes ``metrics/``; on resume from the checkpoint taken after chunk ``c``,
    ``discard_parts_after(c)`` drops the parts the interrupted run wrote later.
    """

    def __init__(self, run_dir: str | os.PathLike, settings: tuple[str, ...] = ()):
        self.run_dir = Path(run_dir)
        self.settings = tuple(settings)  # the swept settings' columns
        self.schema = metrics_schema(self.settings)
        self.parts_dir = self.run_dir / PARTS_DIR
        self.metrics_path = self.run_dir / METRICS_FILE

    def part_path(self, chunk: int) -> Path:
        return self.parts_dir / f"part-{chunk:06d}.parquet"

    def append(self, chunk: int, df: pd.DataFrame) -> Path:
        """Validate ``df`` (columns exactly seed, step, metric, layer, value), cast it to
        the schema, and write it as the part of ``chunk`` (replacing an existing part of
        the same chunk). Returns the part's path."""
        if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 0:
            raise ValueError(f"chunk must be a non-negative integer, got {chunk!r}")
        if self.metrics_path.exists():
            raise FileExistsError(
                f"run {str(self.run_dir)!r} is already finalized ({METRICS_FILE} exists)"
            )
        table = coerce_metrics(df, self.settings)
        return atomic_write_parquet(self.part_path(int(chunk)), table, schema=self.schema)

    def discard_parts_after(self, chunk: int) -> list[int]:
        """Delete the parts of chunks > ``chunk`` and stale temp files of interrupted
        writes. Returns the chunk numbers removed, ascending."""
        removed = []
        for c, p in _parts(self.parts_dir):
            if c > chunk:
                p.unlink()
                removed.append(c)
        if self.parts_dir.is_dir():
            for p in self.parts_dir.iterdir():
                if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX):
                    p.unlink(missing_ok=True)
        return removed

    def finalize(self) -> Path:
        """Write ``metrics.parquet`` (all parts, sorted by metric, layer, seed, step)
        atomically, then remove ``metrics/``. Safe to call again after a crash at any
        point; with no parts and no ``metrics.parquet`` it writes an empty table.
        Returns the path of ``metrics.parquet``."""
        parts = _parts(self.parts_dir)
        if parts or not self.metrics_path.exists():
            if parts:
                df = _read_table([p for _, p in parts])
            else:
                df = coerce_metrics(self.schema.empty_table().to_pandas(), self.settings)
            settings = tuple(c for c in df.columns if c not in COLUMNS)
            keys = SORT_KEYS[:2] + list(settings) + SORT_KEYS[2:]
            df = df.sort_values(keys, kind="stable", ignore_index=True)
            df = coerce_metrics(df, settings)
            atomic_write_parquet(self.metrics_path, df, schema=metrics_schema(settings))
        if self.parts_dir.exists():
            shutil.rmtree(self.parts_dir)
        return self.metrics_path


# --------------------------------------------------------------------------- loading


def _run_name(run_dir: Path) -> str:
    return run_dir.name or run_dir.resolve().name


def _read_run(writer: RunWriter) -> pd.DataFrame | None:
    if writer.metrics_path.exists():
        return _read_table([writer.metrics_path])
    parts = _parts(writer.parts_dir)
    if parts:
        return _read_table([p for _, p in parts])
    if writer.metrics_path.exists():  # finalized between the two checks above
        return _read_table([writer.metrics_path])
    return None


def load(run_dir: str | os.PathLike) -> pd.DataFrame:
    """Load the metrics of one run into a DataFrame.

    Reads ``metrics.parquet``, or, when the run is still going or was interrupted, its
    parts in chunk order. Columns: ``run`` (the directory name), ``seed`` int32,
    ``step`` int64, ``metric``, ``layer``, ``value`` float64. ``run``, ``metric`` and
    ``layer`` are plain strings (pandas' default string dtype), not categoricals, so
    frames of different runs concatenate and group without surprises.

    Raises NotARunError (a FileNotFoundError) when ``run_dir`` has no ``config.yaml``,
    and NoMetricsError (also a FileNotFoundError) when it has no metrics yet.
    """
    run_dir = Path(run_dir)
    _require_run_dir(run_dir)
    writer = RunWriter(run_dir)
    try:
        df = _read_run(writer)
    except FileNotFoundError:  # finalize() removed the parts while we read them
        df = _read_run(writer)
    if df is None:
        raise NoMetricsError(
            f"run directory {str(run_dir)!r} has no metrics "
            f"(neither {METRICS_FILE} nor {PARTS_DIR}/part-*.parquet)"
        )
    df.insert(0, "run", pd.Series([_run_name(run_dir)] * len(df), dtype=df["metric"].dtype))
    return df


def load_many(run_dirs: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Load several runs (see :func:`load`) into one frame, in the order given.

    Raises ValueError when two directories share a name, since ``run`` tells them apart.
    """
    if isinstance(run_dirs, str | os.PathLike):
        run_dirs = [run_dirs]
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ResultsError("load_many: no run directories given")
    names = [_run_name(d) for d in run_dirs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ResultsError(f"load_many: several run directories are named {dupes}")
    return pd.concat([load(d) for d in run_dirs], ignore_index=True)
