"""The one error every data reader raises: :class:`DataError`.

A reader never lets a low-level exception (``OSError``, ``EOFError``, a pickle or zip error,
a numpy ``ValueError``) escape: it re-raises it as a :class:`DataError` that names the file,
says what was wrong and what was expected, and — once the data set is known — how to get a
good copy. The low-level exception stays attached as ``__cause__`` for debugging.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from os import PathLike


class DataError(Exception):
    """A local data file is missing, unreadable or not in the expected format.

    Attributes:
      path: the file or directory at fault.
      problem: what is wrong with it ("missing", "truncated: ...", ...).
      expected: what a good file would look like (may be ``None``).
      how_to: how to get the data (may be ``None``; filled in by the data-set loader,
        see :func:`how_to_get`).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        problem: str,
        *,
        expected: str | None = None,
        how_to: str | None = None,
    ):
        super().__init__(str(path), problem)
        self.path = str(path)
        self.problem = problem
        self.expected = expected
        self.how_to = how_to

    def __str__(self) -> str:
        text = f"{self.path}: {self.problem}"
        if self.expected:
            text += f"\n  expected: {self.expected}"
        if self.how_to:
            text += f"\n  how to get it: {self.how_to}"
        return text


@contextlib.contextmanager
def how_to_get(how_to: str) -> Iterator[None]:
    """Attach ``how_to`` to any :class:`DataError` raised inside the block (if it has none).

    Format readers know what a file should contain; the data-set loader that calls them knows
    where the data comes from. This joins the two without threading a hint through every call.
    """
    try:
        yield
    except DataError as err:
        if err.how_to is None:
            err.how_to = how_to
        raise


@contextlib.contextmanager
def wrap_errors(path: str | PathLike[str], expected: str | None = None) -> Iterator[None]:
    """Re-raise low-level read/parse failures inside the block as a :class:`DataError`.

    Catches what reading a corrupt or truncated file raises in the standard library and numpy
    (``OSError`` — which covers ``gzip.BadGzipFile`` —, ``EOFError``, ``ValueError``,
    ``KeyError``, ``zipfile.BadZipFile``, ``zlib.error``, ``pickle.UnpicklingError`` and
    friends) and names ``path`` in the new error.
    """
    import pickle
    import zipfile
    import zlib

    try:
        yield
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(path, "missing", expected=expected) from exc
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
        zlib.error,
        pickle.UnpicklingError,
    ) as exc:
        raise DataError(
            path, f"unreadable ({type(exc).__name__}: {exc})", expected=expected
        ) from exc
