"""Draws on executors and Dask clusters: same numbers as the serial run, faults lose nothing."""

import argparse
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from validation.montecarlo.commands import add_validate_arguments
from validation.montecarlo.compare import ValidationConfig, run_validate, run_validation

TINY = dict(
    input_dim=40,
    widths=(60, 50),
    activations=("tanh", "relu"),
    variants=("none", "sign"),
    vary="samples",
    grid=(0.5, 2.0),
    trials=6,
    test_samples=300,
    ridge=1e-2,
    noise=0.1,
)
FIELDS = (
    "key",
    "mc_test",
    "mc_test_se",
    "mc_train",
    "mc_train_se",
    "mc_test_draws",
    "mc_train_draws",
    "theory_test",
    "finite_size_test",
    "z",
    "status",
)


def _parse(argv):
    return add_validate_arguments(argparse.ArgumentParser()).parse_args(argv)


def _numbers(report):
    return [{k: r[k] for k in FIELDS} for r in report["rows"]]


def _stored(path):
    recs = [json.loads(l) for l in (path / "results.jsonl").read_text().splitlines()]
    draws = [(r["key"], r["trial"]) for r in recs if r["record"] == "draw"]
    rows = [r["key"] for r in recs if r["record"] == "row"]
    return draws, rows


@pytest.fixture(scope="module")
def serial():
    return run_validation(ValidationConfig(**TINY), progress=False)


def test_any_executor_gives_the_serial_numbers(serial, tmp_path):
    with ThreadPoolExecutor(2) as pool:
        rep = run_validation(ValidationConfig(**TINY), out=tmp_path, progress=False, figure=False, executor=pool)
    assert _numbers(rep) == _numbers(serial)
    draws, rows = _stored(tmp_path)
    assert len(draws) == len(set(draws)) == 24 and sorted(rows) == sorted(r["key"] for r in serial["rows"])


def test_without_dask_workers_say_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code = run_validate(_parse(["--workers", "2", "--out", str(tmp_path), "--no-progress"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install 'rfq-theory[dask]'" in err[0]


@pytest.mark.parametrize("address", ["", "nonsense://host:1", "tcp://host", "tcp://host:99999", "tcp://:8786"])
def test_bad_scheduler_addresses_are_one_line(address, capsys, tmp_path):
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    code = run_validate(
        _parse(
            [
                "--scheduler",
                address,
                "--input-dim",
                "20",
                "--widths",
                "30",
                "--grid",
                "1",
                "--activations",
                "tanh",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--scheduler" in err[0] and time.perf_counter() - t0 < 5


def test_unreachable_scheduler_ends_in_bounded_time():
    pytest.importorskip("distributed")
    from rfq_theory.checks import InputError
    from validation.montecarlo.executors import connect

    t0 = time.perf_counter()
    with pytest.raises(InputError, match="cannot reach"):
        connect("tcp://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - t0 < 15


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    from validation.montecarlo.executors import local_cluster

    client, cl = local_cluster(2, dashboard=False)
    yield client
    client.close()
    cl.close()


@pytest.mark.slow
def test_local_cluster_gives_the_serial_rows(cluster, serial, tmp_path):
    rep = run_validation(ValidationConfig(**TINY), out=tmp_path, progress=False, figure=False, client=cluster)
    assert _numbers(rep) == _numbers(serial)
    assert rep["execution"]["kind"] == "dask" and rep["execution"]["workers"] == 2
    assert rep["execution"]["draws_run"] == 24
    pids = {json.loads(l).get("pid") for l in (tmp_path / "results.jsonl").read_text().splitlines()} - {None}
    assert len(pids) == 2 and os.getpid() not in pids  # the draws ran in both worker processes


@pytest.mark.slow
def test_killed_worker_loses_nothing(cluster, serial, tmp_path):
    pids = list(cluster.run(os.getpid).values())
    killed = []

    def on_draw(rec):
        if not killed:  # kill the worker that did not run this draw: it holds queued draws
            victim = next(p for p in pids if p != rec["pid"])
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    rep = run_validation(
        ValidationConfig(**TINY), out=tmp_path, progress=False, figure=False, client=cluster, on_draw=on_draw
    )
    assert killed and _numbers(rep) == _numbers(serial)
    draws, rows = _stored(tmp_path)
    assert len(draws) == len(set(draws)) == 24 and len(rows) == len(set(rows)) == 4
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted it


@pytest.mark.slow
def test_interrupted_driver_resumes_without_loss_or_duplicates(cluster, serial, tmp_path):
    seen = {"n": 0}

    def stop(rec):
        seen["n"] += 1
        if seen["n"] == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_validation(
            ValidationConfig(**TINY), out=tmp_path, progress=False, figure=False, client=cluster, on_draw=stop
        )
    draws, _ = _stored(tmp_path)
    assert len(draws) == 7
    rep = run_validation(
        ValidationConfig(**TINY), out=tmp_path, resume=True, progress=False, figure=False, client=cluster
    )
    assert rep["execution"]["draws_reused"] == 7 and rep["execution"]["draws_run"] == 17
    draws, rows = _stored(tmp_path)
    assert len(draws) == len(set(draws)) == 24 and len(rows) == len(set(rows)) == 4
    assert _numbers(rep) == _numbers(serial)


@pytest.mark.slow
def test_cli_workers_reports_dashboard_and_workers(capsys, tmp_path):
    pytest.importorskip("distributed")
    argv = [
        "--input-dim",
        "30",
        "--widths",
        "40",
        "--activations",
        "tanh",
        "--quantizers",
        "none",
        "--grid",
        "1",
        "--trials",
        "6",
        "--test-samples",
        "100",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--workers",
        "2",
    ]
    # 6 seeded draws (the minimum for a verdict) of a model the theory describes: a pass, exit 0
    assert run_validate(_parse(argv)) == 0
    cap = capsys.readouterr()
    assert "verdict: PASS" in cap.out
    assert "dashboard at http" in cap.err
    assert "ran 6 draws on 2 dask worker(s)" in cap.out
