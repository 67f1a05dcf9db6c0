"""The one validation runner: ridge, convex-loss and spectrum validation share the store, executors and verdict.

Each test reproduces a way the separate drivers lost or misread results
(rows deleted by a second run, torn lines glued to the next record, damaged
lines accepted or fatal, axes read two ways, verdicts that contradict the
table) and checks the behaviour every validation command now has.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from rfq_theory.cli import main

SPECTRUM = [
    "validate-spectrum",
    "--input-dim",
    "20",
    "--widths",
    "30",
    "--activations",
    "tanh",
    "--samples",
    "25",
    "--points",
    "60",
    "--no-plot",
]

CONVEX = [
    "validate",
    "--labels",
    "sign",
    "--loss",
    "logistic",
    "--input-dim",
    "16",
    "--widths",
    "24",
    "--activations",
    "tanh",
    "--quantizers",
    "none",
    "--grid",
    "1",
    "--trials",
    "2",
    "--test-samples",
    "100",
    "--ridge",
    "0.1",
    "--no-progress",
    "--no-plot",
]


def _with(args, **opts):
    """``args`` with ``--name value`` options replaced or added (``name_with_underscores``)."""
    args = list(args)
    for name, value in opts.items():
        flag = "--" + name.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = str(value)
        else:
            args += [flag, str(value)]
    return args


def _records(folder: Path) -> list[dict]:
    """Every parseable record of every results*.jsonl in ``folder``."""
    out = []
    for path in sorted(folder.glob("results*.jsonl")):
        if path.name == "results.damaged.jsonl":
            continue
        for line in path.read_bytes().splitlines():
            out.append(json.loads(line))
    return out


def _tear_last_line(path: Path) -> None:
    data = path.read_bytes().rstrip(b"\n")
    cut = data.rfind(b"\n") + 1 + (len(data) - data.rfind(b"\n")) // 2
    path.write_bytes(data[:cut])


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------ (1), (2): nothing finished is lost


def test_a_second_spectrum_run_keeps_the_rows_of_the_first(tmp_path):
    out = tmp_path / "vs1"
    assert main(_with(SPECTRUM, quantizers="none", out=out)) == 0
    assert main(_with(SPECTRUM, quantizers="sign", out=out)) == 0
    stored = {r.get("key") or r.get("quantizer_spec") for r in _records(out)}
    assert {"none", "sign"} <= stored


def test_a_second_writer_on_the_same_folder_is_refused(tmp_path, capsys):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "vs1"
    assert main(_with(SPECTRUM, quantizers="none", out=out)) == 0
    before = (out / "results.jsonl").read_bytes()
    capsys.readouterr()
    with open(out / "results.lock", "a+") as held:  # a first run still writing
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(_with(SPECTRUM, quantizers="sign", out=out)) == 2
    line = _one_error_line(capsys)
    assert line.startswith("rfq validate-spectrum: error:") and "another run" in line
    assert (out / "results.jsonl").read_bytes() == before


# ------------------------------------------------------------------ (3): torn lines are set aside


def test_spectrum_resume_after_a_torn_line_counts_every_draw(tmp_path):
    out = tmp_path / "vs"
    assert main(_with(SPECTRUM, quantizers="sign", trials=1, out=out)) == 0
    _tear_last_line(out / "results.jsonl")
    assert main(_with(SPECTRUM, quantizers="sign", trials=2, out=out) + ["--resume"]) == 0
    means = json.loads((out / "means.json").read_text())
    assert means and all(m["draws"] == 2 for m in means), means
    for line in (out / "results.jsonl").read_bytes().splitlines():
        json.loads(line)


def test_convex_resume_after_a_torn_line_keeps_every_line_whole(tmp_path):
    out = tmp_path / "cv"
    main(_with(CONVEX, out=out))
    _tear_last_line(out / "results.jsonl")
    main(_with(CONVEX, out=out, trials=3) + ["--resume"])
    for line in (out / "results.jsonl").read_bytes().splitlines():
        json.loads(line)
    report = json.loads((out / "report.json").read_text())
    assert [r["draws"] for r in report["rows"]] == [3]
    # --no-plot: every file but the figure
    assert not (out / "figure.png").exists() and "figure" not in report["files"] and report["files"]
    # the intact draws were reused, only the new one ran
    assert report["execution"]["draws_run"] == 1


# ------------------------------------------------------------------ (4), (5): one argument path


def test_vary_width_means_the_last_width_for_every_readout(tmp_path):
    base = dict(widths="12,16", activations="tanh", vary="width", grid="1.5", input_dim=10)
    # 2 draws a row are fewer than the 6 a verdict needs: inconclusive, exit 1 (never a pass)
    assert main(_with(CONVEX, out=tmp_path / "c", **base)) == 1
    ridge = [a for a in _with(CONVEX, out=tmp_path / "r", **base) if a not in ("--labels", "sign")]
    ridge = _with(ridge, loss="square")
    assert main(ridge) == 1
    convex_rows = json.loads((tmp_path / "c" / "report.json").read_text())["rows"]
    ridge_rows = json.loads((tmp_path / "r" / "report.json").read_text())["rows"]
    # k_L = round(1.5 d) = 15, k_1 kept (the --help rule), for both readouts
    assert [r["widths"] for r in convex_rows] == [[12, 15]] == [r["widths"] for r in ridge_rows]


def test_convex_validation_reads_range_grids_and_writes_the_ridge_files(tmp_path):
    out = tmp_path / "g"
    with_figure = [a for a in CONVEX if a != "--no-plot"]
    assert main(_with(with_figure, grid="0.5:2:2", out=out)) == 1  # 2 draws a row: inconclusive
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["verdict"] == "inconclusive"
    assert [r["value"] for r in report["rows"]] == [0.5, 2.0]
    for name in ("results.jsonl", "results.csv", "report.json", "figure.png"):
        assert (out / name).stat().st_size > 0, name
    assert report["files"]["figure"] == str(out / "figure.png")
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"test_error_status", "train_loss_status", "status"} <= set(header)


# ------------------------------------------------------------------ (6): damaged stores


def _draw_line(fp, trial, test="0.5", train="0.25", key="k"):
    return (
        f'{{"record": "draw", "fingerprint": "{fp}", "key": "{key}", "trial": {trial}, '
        f'"test_error": {test}, "train_error": {train}}}'
    ).encode()


def test_non_finite_huge_and_non_utf8_lines_are_set_aside(tmp_path):
    from validation.montecarlo.records import ResultStore

    good = _draw_line("D", 0)
    damaged = [
        _draw_line("D", 1, test="NaN"),
        _draw_line("D", 2, train="Infinity"),
        _draw_line("D", 3, test="1e999"),
        _draw_line("D", "9" * 5000),
        _draw_line("D", 4).replace(b'"k"', b'"k\xff"'),
    ]
    (tmp_path / "results.jsonl").write_bytes(b"\n".join([good, *damaged]) + b"\n")
    with ResultStore(tmp_path, "R", "D", resume=True) as store:
        assert list(store.draws) == [("k", 0)]
        assert store.damaged == len(damaged)
    assert (tmp_path / "results.damaged.jsonl").read_bytes() == b"".join(d + b"\n" for d in damaged)
    assert (tmp_path / "results.jsonl").read_bytes() == good + b"\n"


RIDGE = [
    "validate",
    "--input-dim",
    "16",
    "--widths",
    "24",
    "--activations",
    "tanh",
    "--quantizers",
    "none",
    "--grid",
    "1",
    "--trials",
    "2",
    "--test-samples",
    "100",
    "--no-plot",
]


def _ridge_store_with(tmp_path, damage):
    """A finished 2-draw ridge run with ``damage(draw_record)`` lines appended; resumed with 3 draws."""
    out = tmp_path / "r"
    assert main(_with(RIDGE, out=out)) == 1  # 2 draws: inconclusive
    lines = (out / "results.jsonl").read_bytes().splitlines()
    draw = json.loads(lines[0])
    (out / "results.jsonl").write_bytes(b"\n".join(lines + damage(draw)) + b"\n")
    rc = main(_with(RIDGE, out=out, trials=3) + ["--resume"])
    return rc, json.loads((out / "report.json").read_text())


def test_a_non_finite_stored_draw_is_not_taken_for_a_result(tmp_path):
    def damage(draw):
        return [
            json.dumps(dict(draw, trial=2))
            .encode()
            .replace(b'"test_error": ' + json.dumps(draw["test_error"]).encode(), b'"test_error": NaN')
        ]

    rc, report = _ridge_store_with(tmp_path, damage)
    assert rc == 1 and report["store"]["damaged_lines"] == 1
    assert report["execution"]["draws_run"] == 1  # the damaged draw was run again
    assert all(x is not None for x in report["rows"][0]["mc_test_draws"])


def test_oversized_and_non_utf8_stored_lines_do_not_stop_a_resume(tmp_path):
    def damage(draw):
        return [
            json.dumps(dict(draw, trial=6)).encode().replace(b'"trial": 6', b'"trial": ' + b"7" * 5000),
            json.dumps(dict(draw, trial=2)).encode().replace(draw["key"].encode(), draw["key"].encode() + b"\xfe"),
        ]

    rc, report = _ridge_store_with(tmp_path, damage)
    assert rc == 1 and report["store"]["damaged_lines"] == 2
    assert report["execution"]["draws_run"] == 1


def test_a_damaged_convex_store_resumes_with_the_damage_set_aside(tmp_path):
    out = tmp_path / "cv"
    main(_with(CONVEX, out=out))
    lines = (out / "results.jsonl").read_bytes().splitlines()
    draw = json.loads(lines[0])
    fp, key = draw["fingerprint"], draw["key"]
    bad = [
        json.dumps(dict(draw, trial=5, test_error=float("nan"))).encode(),
        json.dumps(dict(draw, trial=6)).encode().replace(b'"trial": 6', b'"trial": ' + b"7" * 5000),
        json.dumps(dict(draw, trial=8)).encode().replace(key.encode(), key.encode() + b"\xfe"),
    ]
    assert fp and all(b"record" in b for b in bad)
    (out / "results.jsonl").write_bytes(b"\n".join(lines + bad) + b"\n")
    assert main(_with(CONVEX, out=out) + ["--resume"]) == 1  # 2 draws: inconclusive, as before the damage
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["verdict"] == "inconclusive"
    assert report["store"]["damaged_lines"] == 3
    assert report["execution"]["draws_run"] == 0


# ------------------------------------------------------------------ (7): bad input before any work


@pytest.mark.parametrize(
    "opts",
    [
        {"ridge": "nan"},
        {"ridge": "-1"},
        {"loss": "hinge", "ridge": "0"},
        {"activations": "tanh,relu,erf"},
        {"labels": "regression"},
    ],
)
def test_convex_bad_input_is_one_line_and_exit_2(tmp_path, capsys, opts):
    out = tmp_path / "bad"
    assert main(_with(CONVEX, out=out, **opts)) == 2
    assert _one_error_line(capsys).startswith("rfq validate: error:")
    assert not (out / "results.jsonl").exists()


# ------------------------------------------------------------------ (8): verdicts follow the table


def _row(**metrics):
    from validation.montecarlo.glm_validate import METRICS

    cfg = {"input_dim": 100, "widths": [200], "samples": 50, "labels": "sign", "trials": 8, "test_samples": 1000}
    row = {"config": cfg}
    for m in METRICS:
        row[m] = metrics.get(m, {"theory": 0.2, "mc": 0.2, "mc_se": 0.01})
    return row


def test_a_quantity_zero_in_theory_passes_at_solver_accuracy():
    from validation.montecarlo.glm_validate import score

    # separable hinge fit: train loss 1e-28 in theory, 3e-10 from the solver, z = +21
    row = score(_row(train_loss={"theory": 1e-28, "mc": 3e-10, "mc_se": 1.4e-11}))
    assert row["train_loss"]["z"] > 20
    assert row["train_loss"]["status"] == "pass" and row["status"] == "pass"


def test_a_row_with_a_failing_metric_fails():
    from validation.montecarlo.glm_validate import score

    row = score(_row(train_loss={"theory": 0.3, "mc": 0.5, "mc_se": 0.001}))
    assert row["test_error"]["status"] == "pass" and row["train_loss"]["status"] == "fail"
    assert row["status"] == "fail" and not row["all_metrics_pass"]


# ------------------------------------------------------------------ (9): one BLAS thread per draw


def test_draws_run_with_one_blas_thread_by_default(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    import validation.montecarlo.simulate as sim
    from rfq_theory import DeepRF
    from validation.montecarlo.executors import DrawTask, run_draw

    seen = []

    def spy(*args, **kwargs):
        np.ones((4, 4)) @ np.ones((4, 4))
        seen.extend(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
        return 1.0, 0.5

    monkeypatch.setattr(sim, "simulate_trial", spy)
    task = DrawTask("k", 0, DeepRF(4, (5,), ("tanh",), "none"), 6, 0.1, 0.0, "linear", 0, 10)
    with threadpoolctl.threadpool_limits(limits=2):
        run_draw(task)
    assert seen and set(seen) == {1}, seen


# ------------------------------------------------------------------ (10): a port that is not a scheduler


@pytest.mark.slow  # waits for the scheduler timeout
def test_a_port_that_is_not_a_dask_scheduler_is_refused_quickly(tmp_path, capsys):
    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held = []

    def accept():  # an HTTP-like service: accepts, waits for a request, never speaks first
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        t0 = time.perf_counter()
        rc = main(
            _with(CONVEX, labels="regression", loss="square", out=tmp_path / "s", scheduler=f"tcp://127.0.0.1:{port}")
        )
        elapsed = time.perf_counter() - t0
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert rc == 2 and elapsed < 10, elapsed
    assert "not a Dask scheduler" in _one_error_line(capsys)


# ------------------------------------------------------------------ workers: identical rows


def _numbers(report: dict) -> list:
    keep = ("mc_test_draws", "mc_train_draws", "metrics", "matrices", "means")
    return [{k: r.get(k) for k in keep} for r in report["rows"]]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["convex", "spectrum"])
def test_two_workers_give_the_rows_of_one(tmp_path, command):
    pytest.importorskip("distributed")
    args = _with(CONVEX, trials=3) if command == "convex" else _with(SPECTRUM, quantizers="none,sign", trials=2)
    reports = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        # convex: 3 draws a row, fewer than a verdict needs (exit 1); the spectrum check has no draw minimum
        assert main(_with(args, out=out, workers=workers)) == (1 if command == "convex" else 0)
        reports.append(json.loads((out / "report.json").read_text()))
    assert reports[1]["execution"]["kind"] == "dask"
    assert _numbers(reports[0]) == _numbers(reports[1])
