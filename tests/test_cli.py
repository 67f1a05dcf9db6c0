"""Command line: outputs, JSON digits, one-line errors with exit code 2."""

import csv
import json
import subprocess
import sys

import mpmath
import pytest

from rfq_theory import coefficients
from rfq_theory.cli import main


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_gelu_40_digits_json(capsys):
    code, out, err = run(["coefficients", "--activation", "gelu", "--variance", "0.7", "--digits", "40", "--json"], capsys)
    assert code == 0 and not err
    obj = json.loads(out)
    # independent route: quadrature of u Phi(u) written as an expression
    quad = coefficients("u*(1 + erf(u/sqrt(2)))/2", "0.7", 45)
    with mpmath.workdps(50):
        for key in ("mu0", "mu1", "mu_star", "second_moment"):
            assert len(obj[key].replace("-", "").replace(".", "").lstrip("0")) >= 40
            assert abs(mpmath.mpf(obj[key]) - getattr(quad, key)) < mpmath.mpf(10) ** -39
    assert obj["activation"] == "gelu" and obj["variance"].startswith("0.7000000")


def test_user_expression_table(capsys):
    code, out, err = run(["coefficients", "--activation", "u*tanh(u)", "--variance", "1.3"], capsys)
    assert code == 0 and "mu_star" in out


def test_quantizer_scales_the_variance(capsys):
    code, out, _ = run(["coefficients", "--activation", "relu", "--variance", "2", "--quantizer", "sign-scaled",
                        "--json", "--digits", "20"], capsys)
    obj = json.loads(out)
    with mpmath.workdps(30):
        assert abs(mpmath.mpf(obj["s2"]) - 2 / mpmath.pi) < mpmath.mpf(10) ** -19
        assert abs(mpmath.mpf(obj["variance"]) - 4 / mpmath.pi) < mpmath.mpf(10) ** -19
        assert abs(mpmath.mpf(obj["kappa1"]) - mpmath.sqrt(2 / mpmath.pi) / 2) < mpmath.mpf(10) ** -19


def test_exact_prints_latex(capsys):
    code, out, _ = run(["coefficients", "--activation", "erf", "--exact"], capsys)
    assert code == 0 and "LaTeX" in out and "asin" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["coefficients", "--activation", "__import__('os')"],
        ["coefficients", "--activation", "relu", "--variance", "-1"],
        ["coefficients", "--activation", "exp(u**2)"],
        ["coefficients", "--activation", "relu", "--digits", "0"],
        ["coefficients", "--activation", "relu", "--quantizer", "expr:abs(g)"],
        ["coefficients"],
        ["predict", "--input-dim", "10", "--widths", "20", "--activations", "relu", "--samples", "-5"],
        ["predict", "--input-dim", "10", "--widths", "20,30", "--activations", "relu,tanh,erf", "--samples", "5"],
        ["predict", "--input-dim", "10", "--widths", "20", "--activations", "nope", "--samples", "5"],
        ["curve", "--input-dim", "10", "--widths", "20", "--activations", "relu", "--vary", "samples", "--grid",
         "1:2:x", "--out", "x.csv"],
        ["frobnicate"],
    ],
)
def test_bad_input_one_line_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_malicious_expression_in_subprocess_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    proc = subprocess.run(
        [sys.executable, "-m", "rfq_theory", "coefficients", "--activation",
         f"__import__('os').system('touch {marker}')"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_predict_json_digits(capsys):
    argv = ["predict", "--input-dim", "1000", "--widths", "2000,1500", "--activations", "tanh,relu", "--quantizers",
            "sign", "--samples", "1200", "--ridge", "1e-3", "--digits", "30", "--json"]
    code, out, _ = run(argv, capsys)
    obj = json.loads(out)
    assert code == 0
    for key in ("test_error", "train_error", "effective_ridges", "df1", "df2", "layers"):
        assert key in obj
    assert len(obj["test_error"].replace(".", "").lstrip("0")) == 30
    assert {"variance", "mu0", "mu1", "mu_star", "kappa1", "kappa_star"} <= set(obj["layers"][0])
    # the 30 digits are right: compare with a 45-digit solve
    code, out45, _ = run(argv[:-3] + ["--digits", "45", "--json"], capsys)
    with mpmath.workdps(50):
        a, b = mpmath.mpf(obj["test_error"]), mpmath.mpf(json.loads(out45)["test_error"])
        assert abs(a - b) < mpmath.mpf(10) ** -29 * b


def test_predict_threshold_note(capsys):
    code, out, err = run(["predict", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples",
                          "200"], capsys)
    assert code == 0 and "inf" in out and "interpolation threshold" in err


def test_theorem_sign_equal(capsys):
    code, out, _ = run(["theorem", "--input-dim", "100", "--widths", "200,150", "--activations", "tanh,relu",
                        "--samples", "120", "--ridge", "0.01", "--digits", "30", "--json"], capsys)
    obj = json.loads(out)
    assert code == 0
    assert obj["full_precision"]["test_error"] == obj["sign"]["test_error"]
    assert mpmath.mpf(obj["difference_sign"]) == 0
    assert mpmath.mpf(obj["difference_sign_scaled"]) != 0


def test_curve_csv_and_plot(capsys, tmp_path):
    out_csv, png = tmp_path / "c.csv", tmp_path / "c.png"
    code, out, _ = run(["curve", "--input-dim", "100", "--widths", "200,150", "--activations", "tanh,relu",
                        "--vary", "samples", "--grid", "0.2:3:25", "--ridge", "1e-3", "--out", str(out_csv),
                        "--plot", str(png)], capsys)
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 75 and {r["quantizers"] for r in rows} == {"none", "sign", "sign-scaled"}
    none = [r["test_error"] for r in rows if r["quantizers"] == "none"]
    sign = [r["test_error"] for r in rows if r["quantizers"] == "sign"]
    assert none == sign
    assert png.stat().st_size > 10_000


def test_layers_command(capsys):
    code, out, _ = run(["layers", "--activations", "tanh,relu", "--quantizers", "sign,none", "--json"], capsys)
    obj = json.loads(out)
    assert code == 0 and len(obj["layers"]) == 2 and obj["layers"][1]["quantizer"] == "none"
