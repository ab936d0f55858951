"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer here follows the same rule: write into a temporary file in the *same
directory* as the target (so the final rename never crosses a file system), flush and
``fsync`` it, ``os.replace`` it over the target (atomic on POSIX and Windows), then
``fsync`` the directory so the rename itself survives a crash. If the write fails, the
temporary file is removed. A process killed mid-write (SIGKILL, power loss) can leave a
stray ``.<name>.*.tmp`` file behind, never a truncated target; such files start with a
dot so globs like ``part-*.parquet`` and Parquet dataset readers skip them.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["atomic_write_bytes", "atomic_write_parquet", "atomic_write_text", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"

# mkstemp creates files with mode 0o600; give the final file the mode a plain open() would.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, then atomically move it there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            with contextlib.suppress(OSError, AttributeError):  # no fchmod on Windows
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path`` (parent directories are created).

    Returns the path written.
    """
    return _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path`` (UTF-8 by default; newlines are kept as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_parquet(
    path: str | os.PathLike, df: pd.DataFrame, schema: pa.Schema | None = None
) -> Path:
    """Atomically write ``df`` to ``path`` as Parquet, without its index.

    ``schema``, if given, fixes the Arrow types of the columns (e.g. int32 for ``seed``)
    instead of letting Arrow infer them from the pandas dtypes.
    """
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return atomic_write_bytes(path, buf.getvalue())
