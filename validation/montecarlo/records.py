"""Row-by-row result store: JSON lines (the resumable record) plus a CSV mirror.

Every finished row is appended to ``results.jsonl`` and flushed to disk at
once, so an interrupted run keeps what it finished.  With ``resume=True``
the rows already there (same configuration fingerprint) are loaded and can
be skipped; a torn last line from a crash is discarded.  ``results.csv`` is
rewritten from the JSON rows after every append.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List

__all__ = ["RowStore", "fingerprint", "CSV_COLUMNS"]

CSV_COLUMNS = [
    "variant", "vary", "value", "input_dim", "widths", "samples", "ridge", "noise", "target",
    "theory_test", "theory_train", "finite_size_test", "finite_size_train",
    "mc_test", "mc_test_se", "mc_train", "mc_train_se", "draws", "z", "z_crit", "allowance", "status", "warnings",
]


def fingerprint(config: dict) -> str:
    """Short stable hash of a JSON-serialisable configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RowStore:
    """Append-only JSON-lines store of result rows keyed by ``row["key"]``."""

    def __init__(self, directory, config_fingerprint: str, resume: bool = False):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "results.jsonl"
        self.csv = self.dir / "results.csv"
        self.fp = config_fingerprint
        self.rows: Dict[str, dict] = {}
        if resume and self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn line of an interrupted write
                if isinstance(row, dict) and row.get("fingerprint") == self.fp and "key" in row:
                    self.rows[row["key"]] = row
        # rewrite cleanly (drops torn lines and rows of other configurations)
        with open(self.jsonl, "w") as fh:
            for row in self.rows.values():
                fh.write(json.dumps(row) + "\n")
        self._write_csv()

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def append(self, row: dict) -> None:
        """Add ``row`` (must carry ``key``), flush it to ``results.jsonl`` and refresh the CSV."""
        row = dict(row, fingerprint=self.fp)
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows[row["key"]] = row
        self._write_csv()

    def ordered(self, keys: List[str]) -> List[dict]:
        """Stored rows in the order of ``keys`` (missing keys skipped)."""
        return [self.rows[k] for k in keys if k in self.rows]

    def _write_csv(self) -> None:
        with open(self.csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows.values():
                flat = dict(row)
                flat["widths"] = " ".join(str(k) for k in row.get("widths", []))
                flat["warnings"] = "; ".join(row.get("warnings", []))
                writer.writerow(flat)
