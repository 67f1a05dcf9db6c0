"""Comparison runs: rows, verdict, files, resume after an interruption, CLI, demo, scaling."""

import argparse
import csv
import json
import math

import pytest

import validation.montecarlo.compare as compare
from validation.montecarlo.compare import (
    ValidationConfig,
    format_table,
    run_validate,
    run_validation,
)
from validation.montecarlo.commands import add_validate_arguments
from validation.montecarlo.tolerance import critical_z, finite_size_allowance, regime_warnings, verdict

TINY = dict(input_dim=40, widths=(60, 50), activations=("tanh", "relu"), variants=("none", "sign"),
            vary="samples", grid=(0.5, 2.0), trials=3, test_samples=300, ridge=1e-2, noise=0.1)


def _parse(argv):
    return add_validate_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_rows_files_and_verdict(tmp_path):
    cfg = ValidationConfig(**TINY)
    rep = run_validation(cfg, out=tmp_path, progress=False)
    assert rep["summary"]["rows"] == 4 and rep["summary"]["complete"]
    row = rep["rows"][0]
    assert row["samples"] == 20 and row["x"] == 0.5 and row["variant"] == "none"
    for k in ("theory_test", "finite_size_test", "mc_test", "mc_test_se", "z", "status", "mc_test_draws"):
        assert k in row
    assert len(row["mc_test_draws"]) == 3
    for name in ("results.jsonl", "results.csv", "report.json", "figure.png"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 4
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["summary"]["verdict"] == rep["summary"]["verdict"]
    assert "verdict" in format_table(rep)
    # sign and full precision: identical theory, paired draws share W before quantization
    th = {r["variant"]: r["theory_test"] for r in rep["rows"] if r["value"] == 2.0}
    assert th["none"] == th["sign"]


def test_width_and_ridge_grids():
    cfg = ValidationConfig(**dict(TINY, vary="width", grid=(0.5, 2.0), samples=30))
    assert cfg.point(2.0) == ((120, 100), 30, 1e-2)
    cfg = ValidationConfig(**dict(TINY, vary="ridge", grid=(0.0, 1e-3), samples=30))
    assert cfg.point(1e-3) == ((60, 50), 30, 1e-3)
    rep = run_validation(ValidationConfig(**dict(TINY, vary="ridge", grid=(1e-3, 1.0), samples=30, variants=("sign",))),
                         progress=False)
    assert [r["ridge"] for r in rep["rows"]] == [1e-3, 1.0]


def test_resume_after_interruption_loses_no_row(tmp_path, monkeypatch):
    cfg = ValidationConfig(**TINY)
    real = compare.simulate
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the run is killed while computing row 3
        return real(*a, **k)

    monkeypatch.setattr(compare, "simulate", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_validation(cfg, out=tmp_path, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first_two = [json.loads(l) for l in lines]
    with open(tmp_path / "results.jsonl", "a") as fh:
        fh.write('{"key": "sign|2.0", "torn')  # a half-written line from the crash
    monkeypatch.setattr(compare, "simulate", real)
    calls["n"] = 0
    rep = run_validation(cfg, out=tmp_path, resume=True, progress=False)
    assert rep["reused_rows"] == 2 and rep["summary"]["complete"]
    assert rep["rows"][:2] == first_two  # kept, not recomputed
    rows = [json.loads(l) for l in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(f"{v}|{g!r}" for v in ("none", "sign") for g in (0.5, 2.0))
    # the same rows as an uninterrupted run (same seeds)
    fresh = run_validation(cfg, out=None, progress=False)
    assert [r["mc_test"] for r in fresh["rows"]] == [r["mc_test"] for r in rep["rows"]]


def test_resume_ignores_rows_of_another_configuration(tmp_path):
    run_validation(ValidationConfig(**dict(TINY, grid=(0.5,), variants=("none",))), out=tmp_path, progress=False,
                   figure=False)
    rep = run_validation(ValidationConfig(**dict(TINY, grid=(0.5,), variants=("none",), noise=0.2)), out=tmp_path,
                         resume=True, progress=False, figure=False)
    assert rep["reused_rows"] == 0 and rep["rows"][0]["noise"] == 0.2


def test_tolerance_rule():
    assert critical_z(8) == pytest.approx(4.53, abs=0.01)
    assert critical_z(10_000) == pytest.approx(3.0, abs=0.01)
    assert finite_size_allowance(2.0, (800, 1600, 400)) == pytest.approx(2 * 2.0 / 400)
    assert verdict(1.0, 0.01, 1.0 + 0.04, 100, (1000,))["status"] == "fail"
    assert verdict(1.0, 0.01, 1.0 + 0.02, 100, (1000,))["status"] == "pass"
    assert verdict(5.0, 0.5, math.inf, 8, (100,))["status"] == "n/a"


def test_regime_warnings():
    assert regime_warnings(100, (200,), 300) == []
    w = regime_warnings(100, (5, 200), 2000)
    assert any("widths[0]" in x for x in w) and any("samples" in x and "d^2/10" in x for x in w)


@pytest.mark.parametrize(
    "argv,word",
    [
        (["--widths", "10,x"], "widths"),
        (["--activations", "nope"], "activation"),
        (["--quantizers", "none,bogus"], "quantizer"),
        (["--grid", ""], "grid"),
        (["--ridge", "-1"], "ridge"),
        (["--trials", "1"], "trials"),
        (["--activations", "tanh,relu,erf"], "activations"),
    ],
)
def test_cli_errors_print_one_line_and_return_2(argv, word, capsys, tmp_path):
    code = run_validate(_parse(argv + ["--out", str(tmp_path), "--no-progress"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rfq validate: error:") and word in err[0].lower()


def test_cli_run_and_json(capsys, tmp_path):
    argv = ["--input-dim", "40", "--widths", "60", "--activations", "erf", "--quantizers", "none,sign",
            "--grid", "1,2", "--trials", "3", "--test-samples", "300", "--out", str(tmp_path), "--no-progress", "--json"]
    code = run_validate(_parse(argv))
    rep = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and code == (0 if rep["summary"]["verdict"] == "pass" else 1)
    assert rep["summary"]["rows"] == 4 and (tmp_path / "figure.png").exists()


@pytest.mark.slow
def test_scaling_check(tmp_path):
    from validation.montecarlo.scaling import format_scaling, run_scaling

    cfg = ValidationConfig(**dict(TINY, input_dim=80, widths=(120, 100), samples=160, trials=4, test_samples=800))
    res = run_scaling(cfg, factors=(0.5, 1.0), out=tmp_path, progress=False)
    assert {p["input_dim"] for p in res["points"]} == {40, 80}
    assert [x["pair"] for x in res["differences"]] == ["sign - none"] * 2
    assert (tmp_path / "scaling.png").exists() and "scaling verdict" in format_scaling(res)
    assert res["verdict"] == "pass"


@pytest.mark.slow
def test_demo_passes(tmp_path, capsys):
    from validation.montecarlo.commands import add_demo_arguments
    from validation.montecarlo.demo import run_demo

    args = add_demo_arguments(argparse.ArgumentParser()).parse_args(["--out", str(tmp_path), "--no-progress"])
    assert run_demo(args) == 0
    assert (tmp_path / "demo.png").stat().st_size > 0
    assert "verdict: PASS" in capsys.readouterr().out
