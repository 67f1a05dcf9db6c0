"""The result store of a validation run: draws and rows as JSON lines, a CSV mirror.

``OUT/results.jsonl`` holds one JSON object per line, of two kinds:

- a *draw* (``"record": "draw"``): the test and train error of draw ``trial``
  of row ``key``, under the draw fingerprint of the configuration (every
  setting that changes a draw's numbers; not the number of draws, the grid or
  the list of variants, so adding draws or grid points reuses what is there);
- a *row* (``"record": "row"``): the summary of a row once its last draw has
  landed, under the fingerprint of the whole configuration.

Guarantees:

- every record is appended, flushed and ``fsync``-ed as soon as it exists, so
  a run killed at any moment keeps everything it finished;
- nothing finished is ever deleted: records of other configurations stay in
  the file; a run without ``resume`` moves an existing store aside to
  ``results.<k>.jsonl`` before starting a new one;
- a line that is not a valid record (a torn last line after a crash, a
  hand-edited or corrupted line) is set aside in ``results.damaged.jsonl``
  and reported, never fatal;
- when the file has to be cleaned, the new content is written to a temporary
  file, ``fsync``-ed and renamed over the old one (atomic on POSIX);
- one run at a time: ``OUT/results.lock`` is locked (``fcntl.flock``) for the
  lifetime of the store; a second run on the same folder is refused;
- every line is strict JSON: non-finite numbers are written as ``null``
  (see :func:`strict_json`).

``results.csv`` mirrors the rows of the current configuration and is
rewritten atomically after every row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable
from numbers import Integral, Real
from pathlib import Path

from rfq_theory.checks import InputError

__all__ = [
    "ResultStore",
    "StoreBusyError",
    "fingerprint",
    "strict_json",
    "dumps",
    "CSV_COLUMNS",
    "ROW_STATUSES",
    "check_out_dir",
    "check_record",
    "parse_line",
    "atomic_write_text",
]

CSV_COLUMNS = [
    "variant",
    "vary",
    "value",
    "input_dim",
    "widths",
    "samples",
    "ridge",
    "noise",
    "target",
    "theory_test",
    "theory_train",
    "finite_size_test",
    "finite_size_train",
    "mc_test",
    "mc_test_se",
    "mc_train",
    "mc_train_se",
    "draws",
    "z",
    "z_crit",
    "allowance",
    "status",
    "warnings",
]

#: Status of a row: within tolerance, outside it, too few draws for a verdict, theory not finite.
ROW_STATUSES = ("pass", "fail", "inconclusive", "n/a")


class StoreBusyError(InputError):
    """Another run holds the lock of the output folder."""


def strict_json(obj):
    """``obj`` with every non-finite float replaced by ``None`` (and NumPy scalars made plain).

    The result serialises with ``json.dumps(..., allow_nan=False)``: the
    files and ``--json`` output are strict JSON that every parser reads.
    """
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Integral):
        return int(obj)
    if isinstance(obj, Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays
        return strict_json(obj.tolist())
    return str(obj)


def dumps(obj, **kwargs) -> str:
    """Strict JSON text of ``obj`` (non-finite numbers become ``null``)."""
    return json.dumps(strict_json(obj), allow_nan=False, **kwargs)


def fingerprint(config: dict) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(strict_json(config), sort_keys=True).encode()).hexdigest()[:16]


def check_out_dir(out, name="out") -> Path:
    """The output folder ``out``, created if missing; its parent folder must exist.

    Raises :class:`~rfq_theory.checks.InputError` (one line naming the option)
    for an empty path, a path that is a file, a missing parent folder or a
    folder that cannot be created.
    """
    text = str(out) if out is not None else ""
    if not text.strip():
        raise InputError(f"--{name} must be a folder path, got an empty string")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise InputError(f"--{name}: {text!r} is a file, not a folder; give a folder path")
    if not path.exists():
        parent = path.absolute().parent
        if not parent.is_dir():
            raise InputError(f"--{name}: folder {str(parent)!r} does not exist")
        try:
            path.mkdir()
        except OSError as exc:
            raise InputError(f"--{name}: cannot create folder {text!r}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"--{name}: folder {text!r} is not writable")
    return path


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, ``fsync`` and rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` and rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _is_num(x, allow_none=True) -> bool:
    """A finite JSON number (``None`` too when ``allow_none``): ``1e999`` parses to ``inf`` and is refused."""
    if x is None:
        return allow_none
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


def _is_int(x) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def check_numbers(rec: dict, fields) -> str | None:
    """``None`` when every field of ``fields`` is in ``rec`` and a finite number or ``null``."""
    for field in fields:
        if field not in rec or not _is_num(rec[field]):
            return f"field {field!r} missing or not a number"
    return None


def check_number_list(rec: dict, field: str, length: int | None = None) -> str | None:
    """``None`` when ``rec[field]`` is a list of finite numbers or ``null`` (of ``length`` items if given)."""
    v = rec.get(field)
    if not isinstance(v, list) or not all(_is_num(x) for x in v) or (length is not None and len(v) != length):
        return f"field {field!r} missing or not a list of numbers"
    return None


def check_ridge_draw(rec: dict) -> str | None:
    """What is wrong with the metrics of a ridge draw record (``None``: nothing)."""
    return check_numbers(rec, ("test_error", "train_error"))


def check_ridge_row(rec: dict) -> str | None:
    """What is wrong with the fields of a ridge row record (``None``: nothing)."""
    if not isinstance(rec.get("variant"), str):
        return "field 'variant' missing or not a string"
    for field in (
        "value",
        "x",
        "theory_test",
        "finite_size_test",
        "mc_test",
        "mc_test_se",
        "mc_train",
        "mc_train_se",
        "z",
        "theory_train",
        "finite_size_train",
    ):
        if field not in rec or not _is_num(rec[field]):
            return f"field {field!r} missing or not a number"
    if not _is_int(rec.get("samples")) or not _is_int(rec.get("draws")):
        return "fields 'samples' and 'draws' must be integers"
    if not isinstance(rec.get("widths"), list) or not all(_is_int(k) for k in rec["widths"]):
        return "field 'widths' missing or not a list of integers"
    if not isinstance(rec.get("warnings"), list) or not all(isinstance(w, str) for w in rec["warnings"]):
        return "field 'warnings' missing or not a list of strings"
    for field in ("mc_test_draws", "mc_train_draws"):
        problem = check_number_list(rec, field)
        if problem:
            return problem
    return None


def check_record(rec, check_draw=check_ridge_draw, check_row=check_ridge_row) -> str | None:
    """``None`` when ``rec`` is a valid draw or row record, else what is wrong with it.

    Every record is an object with string ``key`` and ``fingerprint``; a draw
    has a non-negative integer ``trial``, a row a ``status`` of
    :data:`ROW_STATUSES`.  ``check_draw`` and ``check_row`` check the fields of
    an experiment (default: ridge validation).
    """
    if not isinstance(rec, dict):
        return f"not an object but {type(rec).__name__}"
    for field in ("key", "fingerprint"):
        if not isinstance(rec.get(field), str):
            return f"field {field!r} missing or not a string"
    kind = rec.get("record", "row")
    if kind == "draw":
        if not _is_int(rec.get("trial")) or rec["trial"] < 0:
            return "field 'trial' missing or not a non-negative integer"
        return check_draw(rec)
    if kind != "row":
        return f"unknown record kind {kind!r}"
    if rec.get("status") not in ROW_STATUSES:
        return f"field 'status' missing or not one of {', '.join(ROW_STATUSES)}"
    return check_row(rec)


def _refuse_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def parse_line(bline: bytes, check_draw=check_ridge_draw, check_row=check_ridge_row) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a valid line of ``results.jsonl``, else ``(None, what is wrong)``.

    A line must be UTF-8 strict JSON (``NaN``/``Infinity`` refused, numbers
    finite, integers of at most Python's digit limit) and pass
    :func:`check_record`.  Never raises.
    """
    try:
        rec = json.loads(bline.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, NaN, a 5000-digit integer, deep nesting
        return None, f"not strict JSON ({type(exc).__name__})"
    try:
        problem = check_record(rec, check_draw, check_row)
    except (ValueError, TypeError, RecursionError) as exc:  # pragma: no cover - a check that trips over a value
        problem = f"unreadable record ({type(exc).__name__})"
    return (rec, None) if problem is None else (None, problem)


class ResultStore:
    """Append-only, locked store of draw and row records in ``directory/results.jsonl``.

    Parameters
    ----------
    directory:
        Output folder (created when missing; its parent must exist).
    row_fingerprint, draw_fingerprint:
        Fingerprints of the whole configuration (rows) and of the settings
        that determine a draw's numbers (draws).
    resume:
        Load the draws and rows already stored under these fingerprints.
        Without it an existing non-empty store is moved aside to
        ``results.<k>.jsonl`` (nothing is deleted) and a new one is started.
    check_draw, check_row:
        The checks of an experiment's draw and row fields (default: ridge
        validation); a record that fails them is a damaged line.
    csv_columns:
        Columns of ``results.csv`` (default :data:`CSV_COLUMNS`).

    Attributes after opening: ``draws`` (``{(key, trial): record}``),
    ``rows`` (``{key: record}``), ``damaged`` (number of lines set aside),
    ``moved_to`` (path of a store moved aside, or ``None``).
    Use as a context manager, or call :meth:`close` to release the lock.
    """

    def __init__(
        self,
        directory,
        row_fingerprint: str,
        draw_fingerprint: str,
        resume: bool = False,
        *,
        check_draw=check_ridge_draw,
        check_row=check_ridge_row,
        csv_columns=None,
    ):
        self.check_draw, self.check_row = check_draw, check_row
        self.csv_columns = list(csv_columns or CSV_COLUMNS)
        self.dir = check_out_dir(directory)
        self.jsonl = self.dir / "results.jsonl"
        self.csv = self.dir / "results.csv"
        self.damaged_path = self.dir / "results.damaged.jsonl"
        self.lock_path = self.dir / "results.lock"
        self.fp = row_fingerprint
        self.draw_fp = draw_fingerprint
        self.draws: dict[tuple[str, int], dict] = {}
        self.rows: dict[str, dict] = {}
        self.damaged = 0
        self.damage_reasons: list[str] = []
        self.moved_to: Path | None = None
        self._lock_fh = None
        self._lock()
        try:
            self._open(resume)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ locking
    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        fh = open(self.lock_path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise StoreBusyError(
                f"another run is writing to {str(self.dir)!r} (lock {self.lock_path.name} is held); "
                "wait for it to finish or choose another --out"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        """Release the lock (the files stay)."""
        if self._lock_fh is not None:
            try:
                import fcntl

                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            except (ImportError, OSError):  # pragma: no cover
                pass
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ------------------------------------------------------------ loading
    def _open(self, resume: bool) -> None:
        if self.jsonl.exists() and not self.jsonl.is_file():
            raise InputError(f"{str(self.jsonl)!r} is not a file; move it away or choose another --out")
        if not self.jsonl.exists():
            return
        if not resume:
            if self.jsonl.stat().st_size > 0:
                k = 1
                while (self.dir / f"results.{k}.jsonl").exists():
                    k += 1
                self.moved_to = self.dir / f"results.{k}.jsonl"
                os.replace(self.jsonl, self.moved_to)
                _fsync_dir(self.dir)
            return
        raw = self.jsonl.read_bytes()
        good: list[bytes] = []
        bad: list[bytes] = []
        lines = raw.split(b"\n")
        torn_tail = lines[-1] != b""  # the last write did not finish its line
        for i, bline in enumerate(lines):
            if not bline.strip():
                continue
            rec, problem = parse_line(bline, self.check_draw, self.check_row)
            if problem is not None and torn_tail and i == len(lines) - 1:
                problem = f"torn last line ({problem})"
            if problem is not None:
                bad.append(bline)
                self.damage_reasons.append(f"line {i + 1}: {problem}")
                continue
            good.append(bline)
            self._take(rec)
        if bad or torn_tail:
            if bad:  # the damaged bytes are kept exactly as they were
                with open(self.damaged_path, "ab") as fh:
                    for line in bad:
                        fh.write(line.rstrip(b"\r") + b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            atomic_write_bytes(self.jsonl, b"".join(line + b"\n" for line in good))
        self.damaged = len(bad)

    def _take(self, rec: dict) -> None:
        if rec.get("record", "row") == "draw":
            if rec["fingerprint"] == self.draw_fp:
                self.draws[(rec["key"], rec["trial"])] = rec
        elif rec["fingerprint"] == self.fp:
            self.rows[rec["key"]] = rec

    # ------------------------------------------------------------ writing
    def _append(self, rec: dict) -> None:
        text = (dumps(rec) + "\n").encode("utf-8")
        with open(self.jsonl, "ab") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def add_draw(self, key: str, trial: int, test_error: float, train_error: float, **extra) -> dict:
        """Append the result of ridge draw ``trial`` of row ``key`` (flushed and fsync-ed at once)."""
        return self.add_draw_record(key, trial, {"test_error": test_error, "train_error": train_error}, **extra)

    def add_draw_record(self, key: str, trial: int, metrics: dict, **extra) -> dict:
        """Append draw ``trial`` of row ``key`` with its ``metrics`` fields (flushed and fsync-ed at once)."""
        rec = {"record": "draw", "fingerprint": self.draw_fp, "key": key, "trial": int(trial), **metrics, **extra}
        rec = strict_json(rec)
        self._append(rec)
        self.draws[(key, int(trial))] = rec
        return rec

    def add_row(self, row: dict) -> dict:
        """Append a finished row (must carry ``key``) and refresh ``results.csv``."""
        rec = strict_json(dict(row, record="row", fingerprint=self.fp))
        self._append(rec)
        self.rows[rec["key"]] = rec
        return rec

    def write_csv(self, rows: Iterable[dict]) -> None:
        """Rewrite ``results.csv`` (atomically) from ``rows``."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.csv_columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            flat = {k: ("" if v is None else v) for k, v in row.items()}
            flat["widths"] = " ".join(str(k) for k in row.get("widths", []))
            flat["warnings"] = "; ".join(row.get("warnings", []))
            writer.writerow(flat)
        atomic_write_text(self.csv, buf.getvalue())
