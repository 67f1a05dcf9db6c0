"""The result store: strict JSON, damaged lines set aside, atomic rewrites, locking, nothing deleted."""

import errno
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import validation.montecarlo.records as records
from validation.montecarlo.compare import ValidationConfig, run_validation
from validation.montecarlo.records import ResultStore, StoreBusyError, check_record, dumps, strict_json

TINY = dict(
    input_dim=30, widths=(40,), activations=("tanh",), variants=("none",), grid=(1.0,), trials=6, test_samples=100
)


def _strict(text):
    def bad(name):
        raise ValueError(name)

    return json.loads(text, parse_constant=bad)


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_strict_json_is_always_standard_json(value):
    text = dumps(value)
    back = _strict(text)

    def same(a, b):
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return all(same(a[k], b[str(k)]) for k in a)
        return a == b

    assert same(value, back)


def _good_row_line(tmp_path):
    rep = run_validation(ValidationConfig(**TINY), out=tmp_path, progress=False, figure=False)
    return rep, (tmp_path / "results.jsonl").read_text().splitlines()


DAMAGED = [
    "[1, 2, 3]",
    '{"record": "row", "key": ["none|1.0"], "fingerprint": "x", "status": "pass"}',
    '{"record": "row", "key": "none|1.0", "fingerprint": "FP"}',
    '{"record": "row", "key": "none|1.0", "fingerprint": "FP", "status": "pass", "mc_test": "high"}',
    '{"record": "draw", "key": "none|1.0", "fingerprint": "DFP", "trial": "3", "test_error": 1, "train_error": 1}',
    '{"record": "draw", "key": "none|1.0", "fingerprint": "DFP", "trial": true, "test_error": 1, "train_error": 1}',
    '{"record": "nonsense", "key": "k", "fingerprint": "f"}',
    "not json at all",
    '{"deeply": ' * 5000,
]


def test_damaged_lines_are_set_aside_and_never_crash(tmp_path):
    rep, lines = _good_row_line(tmp_path)
    fp = rep["fingerprint"]
    draw_fp = _strict(lines[0])["fingerprint"]
    damaged = [d.replace('"FP"', json.dumps(fp)).replace('"DFP"', json.dumps(draw_fp)) for d in DAMAGED]
    # damage the stored row too: it must be rebuilt from its (intact) draws
    row = _strict(lines[-1])
    del row["status"]
    text = "\n".join(lines[:-1] + damaged + [json.dumps(row)]) + "\n"
    (tmp_path / "results.jsonl").write_text(text)
    again = run_validation(ValidationConfig(**TINY), out=tmp_path, resume=True, progress=False, figure=False)
    assert again["execution"]["draws_run"] == 0 and again["reused_rows"] == 0
    assert again["rows"][0]["mc_test"] == rep["rows"][0]["mc_test"]
    assert again["store"]["damaged_lines"] == len(damaged) + 1
    assert any("damaged" in w for w in again["warnings"])
    aside = (tmp_path / "results.damaged.jsonl").read_text().splitlines()
    assert len(aside) == len(damaged) + 1 and aside[0] == "[1, 2, 3]"
    for line in (tmp_path / "results.jsonl").read_text().splitlines():
        assert check_record(_strict(line)) is None


def test_check_record_accepts_what_the_store_writes(tmp_path):
    _, lines = _good_row_line(tmp_path)
    recs = [_strict(l) for l in lines]
    assert [r["record"] for r in recs] == ["draw"] * 6 + ["row"]
    assert all(check_record(r) is None for r in recs)


def test_cleaning_rewrite_is_atomic(tmp_path, monkeypatch):
    _, lines = _good_row_line(tmp_path)
    before = "\n".join(lines) + "\n" + "{torn"
    (tmp_path / "results.jsonl").write_text(before)

    def full(*a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.os, "replace", full)
    with pytest.raises(OSError):
        ResultStore(tmp_path, "a", "b", resume=True)
    assert (tmp_path / "results.jsonl").read_text() == before  # untouched: the rename never happened
    assert not (tmp_path / "results.jsonl.tmp").exists()
    monkeypatch.undo()
    with ResultStore(tmp_path, "a", "b", resume=True) as store:
        assert store.damaged == 1
    assert (tmp_path / "results.jsonl").read_text() == "\n".join(lines) + "\n"


def test_lock_refuses_a_second_store_and_is_released(tmp_path):
    first = ResultStore(tmp_path, "a", "b")
    with pytest.raises(StoreBusyError, match="another run"):
        ResultStore(tmp_path, "a", "b")
    first.close()
    ResultStore(tmp_path, "a", "b").close()


def test_lock_holds_across_processes(tmp_path):
    import subprocess
    import sys

    with ResultStore(tmp_path, "a", "b"):
        code = (
            "import sys\nfrom validation.montecarlo.records import ResultStore, StoreBusyError\n"
            f"try:\n    ResultStore({str(tmp_path)!r}, 'a', 'b')\nexcept StoreBusyError:\n    sys.exit(7)\n"
        )
        assert subprocess.run([sys.executable, "-c", code]).returncode == 7


def test_records_of_other_configurations_are_kept(tmp_path):
    with ResultStore(tmp_path, "rowA", "drawA") as s:
        s.add_draw("k", 0, 1.0, 0.5)
    with ResultStore(tmp_path, "rowB", "drawB", resume=True) as s:
        assert s.draws == {}
        s.add_draw("k", 0, 2.0, float("inf"))
    recs = [_strict(l) for l in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["fingerprint"] for r in recs] == ["drawA", "drawB"] and recs[1]["train_error"] is None
    with ResultStore(tmp_path, "rowA", "drawA", resume=True) as s:
        assert s.draws[("k", 0)]["test_error"] == 1.0


def test_strict_json_replaces_nonfinite_numbers():
    assert strict_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": (True, None)}) == {
        "a": None,
        "b": [None, 1.5],
        "c": [True, None],
    }
