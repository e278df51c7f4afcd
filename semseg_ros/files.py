"""Files written whole or not at all: the one atomic writer behind checkpoints, caches and engines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide exports and caches from other users


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary handle on `.<name>.XXXX.tmp` beside `path`; on success it is fsynced and renamed over
    `path`, on any exception removed. A kill at any moment leaves the old file or the new one, never half
    (at worst a stray `.tmp`, which the trainer's --resume cleans up)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through `atomic_writer`."""
    with atomic_writer(path) as handle:
        handle.write(data)
