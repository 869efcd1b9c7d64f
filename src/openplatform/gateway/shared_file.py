"""Small files in the data directory that every server process of one
``openplatform serve`` shares: replaced atomically by a writer, noticed by
readers with one ``stat`` (no read, no parse) per call."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FileStamp", "file_stamp", "replace_file"]

FileStamp = tuple[int, int, int]


def file_stamp(path: Path) -> FileStamp | None:
    """What identifies the file's current version (inode, mtime, size), or
    None when there is no file. An atomic replacement always changes the inode
    seen by a reader of the previous version."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
