"""Comparison runs: rows, verdict, files, resume after an interruption, CLI, demo, scaling."""

import argparse
import csv
import json
import math

import pytest

from rfq_theory import DeepRF
from validation.montecarlo.commands import add_validate_arguments
from validation.montecarlo.compare import (
    ValidationConfig,
    config_from_args,
    format_table,
    run_validate,
    run_validation,
)
from validation.montecarlo.simulate import simulate
from validation.montecarlo.tolerance import (
    MIN_VERDICT_DRAWS,
    critical_z,
    finite_size_allowance,
    regime_warnings,
    verdict,
)

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


def _strict_load(text):
    """json.loads that refuses NaN/Infinity (what a strict JSON parser does)."""

    def bad(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=bad)


def _lines(path):
    return [_strict_load(l) for l in path.read_text().splitlines()]


def _same_numbers(a, b):
    keys = (
        "key",
        "mc_test",
        "mc_test_se",
        "mc_train",
        "mc_test_draws",
        "mc_train_draws",
        "theory_test",
        "finite_size_test",
        "status",
        "z",
    )
    return [{k: r[k] for k in keys} for r in a] == [{k: r[k] for k in keys} for r in b]


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
    assert len(row["mc_test_draws"]) == 6
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


def test_grid_axes_mean_what_model_at_means():
    # width: the last width k_L = g d; widths: every width times g; samples: n = g d; ridge: lambda = g
    cfg = ValidationConfig(**dict(TINY, vary="width", grid=(0.5, 2.0), samples=30))
    assert cfg.point(2.0) == ((60, 80), 30, 1e-2) and cfg.x_of(2.0) == 2.0
    cfg = ValidationConfig(**dict(TINY, vary="widths", grid=(0.5, 2.0), samples=30))
    assert cfg.point(2.0) == ((120, 100), 30, 1e-2) and cfg.point(0.5) == ((30, 25), 30, 1e-2)
    cfg = ValidationConfig(**dict(TINY, vary="ridge", grid=(0.0, 1e-3), samples=30))
    assert cfg.point(1e-3) == ((60, 50), 30, 1e-3)
    assert ValidationConfig(**TINY).point(0.5) == ((60, 50), 20, 1e-2)
    rep = run_validation(
        ValidationConfig(**dict(TINY, vary="ridge", grid=(1e-3, 1.0), samples=30, variants=("sign",))), progress=False
    )
    assert [r["ridge"] for r in rep["rows"]] == [1e-3, 1.0]


def test_rows_assembled_from_draws_equal_the_simulator(tmp_path):
    """Row numbers are the mean/SE of draws 0..T-1 of simulate() (an independent, sequential route)."""
    cfg = ValidationConfig(**dict(TINY, grid=(2.0,), variants=("sign",)))
    rep = run_validation(cfg, out=None, progress=False)
    mc = simulate(
        DeepRF(40, (60, 50), ("tanh", "relu"), "sign"), 80, 1e-2, 0.1, "linear", trials=6, test_samples=300, seed=0
    )
    row = rep["rows"][0]
    assert row["mc_test_draws"] == list(mc.test_errors) and row["mc_test"] == mc.test_mean
    assert row["mc_test_se"] == mc.test_se and row["mc_train"] == mc.train_mean


class _Stop(Exception):
    pass


def _interrupt_after(k):
    seen = {"n": 0}

    def on_draw(rec):
        seen["n"] += 1
        if seen["n"] == k:
            raise KeyboardInterrupt  # the driver is killed after its k-th stored draw

    return on_draw


def test_resume_after_interruption_loses_no_draw(tmp_path):
    cfg = ValidationConfig(**TINY)
    with pytest.raises(KeyboardInterrupt):
        run_validation(cfg, out=tmp_path, progress=False, on_draw=_interrupt_after(9))
    recs = _lines(tmp_path / "results.jsonl")
    assert sum(r["record"] == "draw" for r in recs) == 9 and sum(r["record"] == "row" for r in recs) == 1
    with open(tmp_path / "results.jsonl", "a") as fh:
        fh.write('{"record": "draw", "key": "sign|2.0", "torn')  # a half-written line from the crash
    rep = run_validation(cfg, out=tmp_path, resume=True, progress=False, figure=False)
    assert rep["reused_rows"] == 1 and rep["summary"]["complete"]
    assert rep["execution"]["draws_reused"] == 9 and rep["execution"]["draws_run"] == 24 - 9
    recs = _lines(tmp_path / "results.jsonl")
    draws = [(r["key"], r["trial"]) for r in recs if r["record"] == "draw"]
    assert len(draws) == len(set(draws)) == 24  # every draw once
    assert sorted(r["key"] for r in recs if r["record"] == "row") == sorted(
        f"{v}|{g!r}" for v in ("none", "sign") for g in (0.5, 2.0)
    )
    assert (tmp_path / "results.damaged.jsonl").read_text().startswith('{"record": "draw", "key": "sign|2.0", "torn')
    fresh = run_validation(cfg, out=None, progress=False)
    assert _same_numbers(fresh["rows"], rep["rows"])


def test_resume_with_another_configuration_keeps_every_row(tmp_path):
    a = ValidationConfig(**dict(TINY, grid=(0.5,), variants=("none",)))
    run_validation(a, out=tmp_path, progress=False, figure=False)
    before = (tmp_path / "results.jsonl").read_text()
    b = ValidationConfig(**dict(TINY, grid=(0.5,), variants=("none",), noise=0.2))
    rep = run_validation(b, out=tmp_path, resume=True, progress=False, figure=False)
    assert rep["reused_rows"] == 0 and rep["rows"][0]["noise"] == 0.2
    assert (tmp_path / "results.jsonl").read_text().startswith(before)  # nothing of run a was removed
    # more draws and one more grid point: the stored draws are reused, only the new ones run
    c = ValidationConfig(**dict(TINY, grid=(0.5, 1.0), variants=("none",), trials=7))
    rep = run_validation(c, out=tmp_path, resume=True, progress=False, figure=False)
    assert rep["execution"]["draws_reused"] == 6 and rep["execution"]["draws_run"] == 8
    assert _same_numbers(rep["rows"], run_validation(c, progress=False)["rows"])
    # and run a again: everything is still there
    rep = run_validation(a, out=tmp_path, resume=True, progress=False, figure=False)
    assert rep["reused_rows"] == 1 and rep["execution"]["draws_run"] == 0


def test_a_run_without_resume_moves_the_old_store_aside(tmp_path):
    cfg = ValidationConfig(**dict(TINY, grid=(0.5,), variants=("none",)))
    run_validation(cfg, out=tmp_path, progress=False, figure=False)
    old = (tmp_path / "results.jsonl").read_text()
    rep = run_validation(cfg, out=tmp_path, progress=False, figure=False)
    assert (tmp_path / "results.1.jsonl").read_text() == old
    assert any("results.1.jsonl" in w for w in rep["warnings"])


def test_too_few_draws_give_no_verdict(tmp_path, capsys):
    # |z| = 17.9 with 2 draws would pass the t-rule (z_crit = 236): it must not be called a pass
    assert verdict(1.0 + 17.9 * 0.01, 0.01, 1.0, 2, (1000,))["status"] == "inconclusive"
    assert verdict(1.0 + 17.9 * 0.01, 0.01, 1.0, MIN_VERDICT_DRAWS, (1000,))["status"] == "fail"
    assert critical_z(MIN_VERDICT_DRAWS) < 2 * 3.0 < critical_z(MIN_VERDICT_DRAWS - 1)
    code = run_validate(
        _parse(
            [
                "--input-dim",
                "30",
                "--widths",
                "40",
                "--activations",
                "tanh",
                "--quantizers",
                "sign",
                "--grid",
                "1",
                "--trials",
                "2",
                "--test-samples",
                "100",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--no-plot",
            ]
        )
    )
    out = capsys.readouterr().out
    assert code == 1 and "verdict: INCONCLUSIVE" in out and "inconclusive" in out.splitlines()[3]


def test_json_outputs_are_strict_at_the_interpolation_threshold(tmp_path, capsys):
    # ridge 0 and n = k_L: the theory and the finite-size route are infinite
    argv = [
        "--input-dim",
        "40",
        "--widths",
        "50",
        "--activations",
        "tanh",
        "--quantizers",
        "none",
        "--grid",
        "1.25",
        "--ridge",
        "0",
        "--trials",
        "6",
        "--test-samples",
        "100",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-plot",
        "--json",
    ]
    run_validate(_parse(argv))
    rep = _strict_load(capsys.readouterr().out)
    row = rep["rows"][0]
    assert row["theory_test"] is None and row["nonfinite"]["theory_test"] == "inf" and row["status"] == "n/a"
    _strict_load((tmp_path / "report.json").read_text())
    assert all(isinstance(r, dict) for r in _lines(tmp_path / "results.jsonl"))


def test_figure_title_is_clean_and_states_the_verdict(tmp_path, monkeypatch):
    import validation.montecarlo.plotting as plotting

    seen = {}
    monkeypatch.setattr(plotting, "plot_comparison", lambda rows, curves, vary, path, title: seen.update(title=title))
    rep = run_validation(ValidationConfig(**dict(TINY, grid=(2.0,), variants=("none",))), out=tmp_path, progress=False)
    title = seen["title"]
    assert "[" not in title and "'" not in title and "(" in title
    assert "widths 60, 50" in title and "activations tanh, relu" in title
    assert f"verdict: {rep['summary']['verdict'].upper()}" in title


def test_tolerance_rule():
    assert critical_z(8) == pytest.approx(4.53, abs=0.01)
    assert critical_z(2) == pytest.approx(235.8, abs=0.1)
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
        (["--seed", "abc"], "seed"),
        (["--seed", "-1"], "seed"),
        (["--trials", "abc"], "trials"),
        (["--trials", "1e999999999"], "trials"),
        (["--test-samples", "0"], "test_samples"),
        (["--input-dim", "1e999999999"], "input_dim"),
        (["--samples", "x", "--vary", "ridge", "--grid", "1"], "samples"),
        (["--noise", "nan"], "noise"),
        (["--grid", "1,abc"], "grid"),
        (["--grid", "0,1"], "grid"),
        (["--workers", "0"], "workers"),
        (["--workers", "two"], "workers"),
        (["--activations", "Max(u,0.1*u"], "activations"),
        (["--input-dim", "1000000"], "memory"),
    ],
)
def test_cli_errors_print_one_line_and_return_2(argv, word, capsys, tmp_path):
    code = run_validate(_parse(argv + ["--out", str(tmp_path), "--no-progress"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rfq validate: error:") and word in err[0].lower()
    assert "invalid literal" not in err[0]


def test_memory_refusal_names_the_estimate_and_the_available_memory(capsys, tmp_path):
    import time

    t0 = time.perf_counter()
    code = run_validate(_parse(["--input-dim", "1000000", "--out", str(tmp_path), "--no-progress"]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - t0 < 10
    assert "needs about" in err and "TiB" in err and "available" in err
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize("kind", ["empty", "file", "missing-parent", "dev-full", "store-folder"])
def test_unwritable_out_prints_one_line_and_returns_2(kind, capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "o" / "results.jsonl").mkdir(parents=True)
    out = {
        "empty": "",
        "file": str(tmp_path / "afile"),
        "missing-parent": str(tmp_path / "no" / "such"),
        "dev-full": "/dev/full",
        "store-folder": str(tmp_path / "o"),
    }[kind]
    argv = [
        "--input-dim",
        "20",
        "--widths",
        "30",
        "--activations",
        "tanh",
        "--quantizers",
        "none",
        "--grid",
        "1",
        "--trials",
        "2",
        "--test-samples",
        "50",
        "--out",
        out,
        "--no-progress",
        "--resume",
    ]
    code = run_validate(_parse(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rfq validate: error:")
    assert (tmp_path / "afile").read_text() == "x"


def test_disk_full_during_a_run_is_one_line(capsys, tmp_path, monkeypatch):
    import errno

    import validation.montecarlo.records as records

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records.os, "fsync", full)
    argv = [
        "--input-dim",
        "20",
        "--widths",
        "30",
        "--activations",
        "tanh",
        "--quantizers",
        "none",
        "--grid",
        "1",
        "--trials",
        "2",
        "--test-samples",
        "50",
        "--out",
        str(tmp_path / "o"),
        "--no-progress",
    ]
    assert run_validate(_parse(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left" in err[0]


def test_second_run_on_one_out_is_refused(capsys, tmp_path):
    from validation.montecarlo.records import ResultStore

    with ResultStore(tmp_path, "a", "b"):
        argv = [
            "--input-dim",
            "20",
            "--widths",
            "30",
            "--activations",
            "tanh",
            "--quantizers",
            "none",
            "--grid",
            "1",
            "--trials",
            "2",
            "--test-samples",
            "50",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
        assert run_validate(_parse(argv)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "another run" in err[0]
    assert not (tmp_path / "results.jsonl").exists()


def test_list_options_keep_commas_inside_parentheses():
    args = _parse(
        [
            "--input-dim",
            "40",
            "--widths",
            "60",
            "--activations",
            "Max(u,0.1*u)",
            "--quantizers",
            "none,expr:sign(g)*Min(abs(g),1)",
            "--grid",
            "1,2",
        ]
    )
    cfg = config_from_args(args)
    assert cfg.activations == ("Max(u,0.1*u)",)
    # spec strings pass through unchanged (the model gets them as written)
    assert cfg.variants == ("none", "expr:sign(g)*Min(abs(g),1)") and cfg.labels == cfg.variants


def test_leaky_activation_with_a_comma_runs(tmp_path, capsys):
    argv = [
        "--input-dim",
        "30",
        "--widths",
        "40",
        "--activations",
        "Max(u,0.1*u)",
        "--quantizers",
        "none,sign",
        "--grid",
        "1",
        "--trials",
        "6",
        "--test-samples",
        "100",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--no-plot",
        "--json",
    ]
    code = run_validate(_parse(argv))
    rep = _strict_load(capsys.readouterr().out)
    assert [r["variant"] for r in rep["rows"]] == ["none", "sign"]
    # 6 seeded draws a row (the minimum for a verdict); the theory is right, so both rows pass
    assert [r["status"] for r in rep["rows"]] == ["pass", "pass"], rep["rows"]
    assert code == 0 and rep["summary"]["verdict"] == "pass"


def test_cli_run_and_json(capsys, tmp_path):
    argv = [
        "--input-dim",
        "40",
        "--widths",
        "60",
        "--activations",
        "erf",
        "--quantizers",
        "none,sign",
        "--grid",
        "1,2",
        "--trials",
        "3",
        "--test-samples",
        "300",
        "--out",
        str(tmp_path),
        "--no-progress",
        "--json",
    ]
    code = run_validate(_parse(argv))
    rep = json.loads(capsys.readouterr().out)
    # 3 draws a row are fewer than the 6 a verdict needs: inconclusive, exit 1 (never a pass)
    assert code == 1 and rep["summary"]["verdict"] == "inconclusive"
    assert rep["summary"]["rows"] == 4 and (tmp_path / "figure.png").exists()


@pytest.mark.slow
def test_scaling_check(tmp_path):
    from validation.montecarlo.scaling import format_scaling, run_scaling

    cfg = ValidationConfig(**dict(TINY, input_dim=80, widths=(120, 100), samples=160, trials=6, test_samples=800))
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
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and out.startswith("model: d = 300, widths 600, 450, activations tanh, relu")


@pytest.mark.parametrize(
    "argv,word",
    [
        (["--seed", "abc"], "seed"),
        (["--trials", "1"], "trials"),
        (["--out", "/dev/full"], "folder"),
        (["--out", ""], "empty"),
    ],
)
def test_demo_errors_are_one_line(argv, word, capsys):
    from validation.montecarlo.commands import add_demo_arguments
    from validation.montecarlo.demo import run_demo

    args = add_demo_arguments(argparse.ArgumentParser()).parse_args(argv + ["--no-progress"])
    assert run_demo(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rfq demo: error:") and word in err[0]


def test_quantizer_objects_and_expr_specs_are_kept_as_given():
    from rfq_theory import Quantizer

    q = Quantizer.piecewise("tern-half", [-0.5, 0.5], [-1, 0, 1])
    cfg = ValidationConfig(**dict(TINY, variants=(q, "expr:sign(g)")))
    assert cfg.variants[0] is q and cfg.variants[1] == "expr:sign(g)"
    assert cfg.labels == ("tern-half", "expr:sign(g)") and cfg.variant_spec("tern-half") is q
    assert cfg.as_dict()["variants"] == ["tern-half", "expr:sign(g)"]


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.sampled_from(["samples", "width", "widths", "ridge"]), st.floats(0.05, 20))
def test_grid_point_is_the_axis_definition(vary, g):
    cfg = ValidationConfig(**dict(TINY, vary=vary, grid=(g,), samples=33))
    widths, n, lam = cfg.point(g)
    d, k = 40, (60, 50)
    expected = {
        "samples": (k, max(1, round(g * d)), 1e-2),
        "width": ((60, max(1, round(g * d))), 33, 1e-2),
        "widths": (tuple(max(1, round(g * x)) for x in k), 33, 1e-2),
        "ridge": (k, 33, g),
    }[vary]
    assert (widths, n, lam) == expected
