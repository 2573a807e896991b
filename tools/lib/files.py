"""Writes that never leave a half-written file: write beside the target, then rename over it."""
from __future__ import annotations

import os
import tempfile

from tools.lib.errors import ToolError

__all__ = ["check_writable", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def check_writable(path: str, make_parents: bool = False) -> None:
    """ToolError unless the file ``path`` can be created or replaced: not a directory, and its folder
    exists (or, with ``make_parents``, can be made: no file in the way)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ToolError(f"cannot write {path}: it is a directory")
    probe = directory
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ToolError(f"cannot write {path}: {probe} is a file, not a directory")
    if not make_parents and not os.path.isdir(directory):
        raise ToolError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(probe, os.W_OK):
        raise ToolError(f"cannot write {path}: directory {probe} is not writable")


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename; on failure the old file is untouched.

    The new file keeps the old one's permissions (a new file gets the umask's), not mkstemp's 0600.
    """
    check_writable(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one rename; on failure the old file is untouched."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, data, api_version: int | None = None, compact: bool = False) -> None:
    """``asv.util.write_json``'s format (a ``version`` key, sorted and indented) written atomically."""
    import json

    if api_version is not None:
        data = {**data, "version": api_version}
    text = json.dumps(data) if compact else json.dumps(data, indent=4, sort_keys=True)
    write_text_atomic(path, text)
