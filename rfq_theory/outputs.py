"""Writing output files all-or-nothing.

Every file a command writes goes through :func:`write_output`: the content is
written to a temporary file in the target's own folder, flushed to disk
(``fsync``) and renamed over the target in one step. A failed write (a full
disk, a device that refuses data, a folder without write permission) leaves
the earlier file untouched and raises :class:`~rfq_theory.checks.InputError`
naming the option, so the command reports one line and exit code 2 instead of
"wrote". A target that is a symbolic link keeps the link; the file it points
to is replaced. A target that exists but is not a regular file (``/dev/null``,
``/dev/full``, a pipe) is written in place and its errors are reported the same
way. :func:`check_distinct_outputs` refuses, before any work, two options that
name the same file (also through links).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Mapping

from .checks import InputError

__all__ = ["write_output", "check_distinct_outputs"]


def _shown(path: str, limit: int = 80) -> str:
    text = repr(str(path))
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _fail(option: str, path: str, exc: OSError) -> InputError:
    return InputError(f"--{option}: cannot write {_shown(path)}: {exc.strerror or exc}")


def _fsync(path: str, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _mode_for(target: str) -> int:
    """Permission bits of the file being replaced, or the default ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_output(path: str, option: str, write: Callable[[str], object], suffix: str = "") -> None:
    """Call ``write(temporary_path)`` and move the result onto ``path`` atomically.

    ``write`` receives a path with the same suffix as ``path`` (so writers
    that pick a format from the suffix, such as ``numpy.savez`` and
    ``matplotlib``'s ``savefig``, behave as for ``path``); ``suffix`` is the
    one it gets when ``path`` has none (``".png"`` for plots). Any ``OSError`` of
    the writer, of ``fsync`` or of the rename becomes an
    :class:`~rfq_theory.checks.InputError` naming ``--option``; the target
    keeps its earlier content and no temporary file is left behind.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    folder = os.path.dirname(target) or "."
    suffix = os.path.splitext(target)[1] or suffix
    try:
        special = os.path.exists(target) and not stat.S_ISREG(os.stat(target).st_mode)
    except OSError as exc:
        raise _fail(option, path, exc) from None
    if special:
        _write_special(path, target, option, write, suffix)
        return
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)[:100]}.", suffix=f".tmp{suffix or ''}", dir=folder
        )
    except OSError as exc:
        raise _fail(option, path, exc) from None
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise _fail(option, path, exc) from None
    except BaseException:
        _remove(tmp)
        raise
    try:
        _fsync(folder, directory=True)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass


def _write_special(path, target, option, write, suffix) -> None:
    """A device or pipe: write to a private temporary file, then copy its bytes in."""
    with tempfile.TemporaryDirectory(prefix="rfq-output-") as tmpdir:
        tmp = os.path.join(tmpdir, f"out{suffix}")
        try:
            write(tmp)
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
        except OSError as exc:
            raise _fail(option, path, exc) from None


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def check_distinct_outputs(paths: Mapping[str, str | None]) -> None:
    """Refuse two options (``{"out": path, "csv": path, ...}``) that name the same file.

    Paths are compared after resolving links (``os.path.realpath``) and, for
    files that exist, by device and inode, so a link to the ``--out`` file
    given as ``--csv`` is refused before any work is done.
    """
    seen: dict[object, str] = {}
    for option, p in paths.items():
        if p is None:
            continue
        keys: list[tuple[str, object]] = [("path", os.path.realpath(p))]
        try:
            st = os.stat(p)
            if stat.S_ISREG(st.st_mode):
                keys.append(("inode", (st.st_dev, st.st_ino)))
        except OSError:
            pass
        for key in keys:
            if key in seen:
                raise InputError(
                    f"--{seen[key]} and --{option} name the same file {_shown(p)}; give each output its own file"
                )
        for key in keys:
            seen[key] = option
