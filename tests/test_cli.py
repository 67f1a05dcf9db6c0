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
    code, out, err = run(
        ["coefficients", "--activation", "gelu", "--variance", "0.7", "--digits", "40", "--json"], capsys
    )
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
    code, out, _ = run(
        [
            "coefficients",
            "--activation",
            "relu",
            "--variance",
            "2",
            "--quantizer",
            "sign-scaled",
            "--json",
            "--digits",
            "20",
        ],
        capsys,
    )
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
        [
            "curve",
            "--input-dim",
            "10",
            "--widths",
            "20",
            "--activations",
            "relu",
            "--vary",
            "samples",
            "--grid",
            "1:2:x",
            "--out",
            "x.csv",
        ],
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
        [
            sys.executable,
            "-m",
            "rfq_theory",
            "coefficients",
            "--activation",
            f"__import__('os').system('touch {marker}')",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_predict_json_digits(capsys):
    argv = [
        "predict",
        "--input-dim",
        "1000",
        "--widths",
        "2000,1500",
        "--activations",
        "tanh,relu",
        "--quantizers",
        "sign",
        "--samples",
        "1200",
        "--ridge",
        "1e-3",
        "--digits",
        "30",
        "--json",
    ]
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
    code, out, err = run(
        ["predict", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples", "200"], capsys
    )
    assert code == 0 and "inf" in out and "interpolation threshold" in err


def test_theorem_json_reports_the_three_twins_as_the_api_computes_them(capsys):
    """The JSON carries each twin's 30-digit prediction and the differences between them."""
    from rfq_theory import DeepRF, predict

    argv = "--input-dim 100 --widths 200,150 --activations tanh,relu --samples 120 --ridge 0.01".split()
    code, out, _ = run(["theorem", *argv, "--digits", "30", "--json"], capsys)
    obj = json.loads(out)
    assert code == 0
    with mpmath.workdps(40):
        want = {
            key: predict(DeepRF(100, (200, 150), ("tanh", "relu"), q), 120, "0.01", 0, digits=30).test_error
            for key, q in (("full_precision", "none"), ("sign", "sign"), ("sign_scaled", "sign-scaled"))
        }
        for key, value in want.items():
            assert abs(mpmath.mpf(obj[key]["test_error"]) - value) <= mpmath.mpf(10) ** -28 * value, key
        diff = mpmath.mpf(obj["difference_sign_scaled"])
        assert abs(diff - (want["sign_scaled"] - want["full_precision"])) <= mpmath.mpf(10) ** -28
        assert abs(diff) > mpmath.mpf(10) ** -3  # the scaled twin differs visibly (tanh sees the rescaled input)


def test_curve_csv_and_plot(capsys, tmp_path):
    out_csv, png = tmp_path / "c.csv", tmp_path / "c.png"
    code, out, _ = run(
        [
            "curve",
            "--input-dim",
            "100",
            "--widths",
            "200,150",
            "--activations",
            "tanh,relu",
            "--vary",
            "samples",
            "--grid",
            "0.2:3:25",
            "--ridge",
            "1e-3",
            "--out",
            str(out_csv),
            "--plot",
            str(png),
        ],
        capsys,
    )
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


# ------------------------------------------------------------ usability (regressions)

THEORY_COMMANDS = ("coefficients", "layers", "list", "predict", "theorem", "curve")
SMALL_MODEL = ["--input-dim", "100", "--widths", "200", "--activations", "tanh"]


def _subcommands():
    import argparse

    from rfq_theory.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


@pytest.mark.parametrize("name", THEORY_COMMANDS)
def test_every_theory_command_has_description_example_and_option_help(name):
    sub = _subcommands()[name]
    assert sub.description and len(sub.description) > 40, name
    assert sub.epilog and f"rfq {name}" in sub.epilog, name
    for action in sub._actions:
        if action.dest == "help":
            continue
        assert action.help and len(action.help) > 10, (name, action.dest)


def test_every_plugin_command_has_description_and_option_help():
    for name, sub in _subcommands().items():
        assert sub.description, name
        for action in sub._actions:
            assert action.help, (name, action.dest)


@pytest.mark.parametrize("name", ["coefficients", "layers", "predict", "theorem", "curve"])
def test_activation_and_quantizer_help_name_the_valid_forms(name):
    sub = _subcommands()[name]
    for action in sub._actions:
        if action.dest in ("activation", "activations", "quantizer", "quantizers"):
            assert "rfq list" in action.help, (name, action.dest)
        if action.dest in ("quantizer", "quantizers"):
            for form in ("none", "sign", "sign-scaled", "ternary:", "uniform:", "expr:"):
                assert form in action.help, (name, form)


def test_help_wraps_prose_and_keeps_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 110
    assert "  rfq predict --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\" in out


def test_list_names_every_builtin_and_the_list_syntax(capsys):
    from rfq_theory import builtin_activations, builtin_quantizers

    code, out, err = run(["list"], capsys)
    assert code == 0 and not err
    flat = " ".join(out.split())
    for name in builtin_activations() + builtin_quantizers():
        assert name in flat, name
    for word in ("relu", "leaky_relu:<p>", "sign-scaled", "expr:<expression in g>", "Max(u,0.1*u)", "';'"):
        assert word in flat, word


@pytest.mark.parametrize(
    "argv, command",
    [
        (["coefficients", "--activation", "nope"], "coefficients"),
        (["coefficients", "--activation", "relu", "--digits", "abc"], "coefficients"),
        (["layers", "--activations", "tanh", "--quantizers", "bogus"], "layers"),
        (["predict", *SMALL_MODEL, "--samples", "abc"], "predict"),
        (["predict", *SMALL_MODEL], "predict"),  # missing --samples (argparse)
        (["theorem", *SMALL_MODEL, "--samples", "-1"], "theorem"),
        (["curve", *SMALL_MODEL, "--vary", "samples", "--out", "x.csv", "--compare", ";"], "curve"),
        (["curve", *SMALL_MODEL, "--vary", "samples", "--out", "x.csv", "--grid", "1,,2"], "curve"),
        (["list", "--bogus"], "list"),
    ],
)
def test_error_prefix_names_the_command(argv, command, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rfq {command}: error: "), err


def test_unknown_command_prefix(capsys):
    code, _, err = run(["frobnicate"], capsys)
    assert code == 2 and err.startswith("rfq: error: ")


def test_unbalanced_parentheses_in_a_list_are_refused(capsys):
    code, _, err = run(["layers", "--activations", "tanh),(relu"], capsys)
    assert code == 2 and "unbalanced parentheses" in err


def _curve(tmp_path, *extra):
    return ["curve", *SMALL_MODEL, "--vary", "samples", "--grid", "0.5,1.5,3", "--ridge", "1e-2", *extra]


def test_curve_quantizers_option_wins_over_the_default_set(capsys, tmp_path):
    out_csv = tmp_path / "t.csv"
    code, _, _ = run(_curve(tmp_path, "--quantizers", "ternary:0.5", "--out", str(out_csv)), capsys)
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert {r["quantizers"] for r in rows} == {"ternary:0.5"} and len(rows) == 3


def test_curve_compare_and_quantizers_together_is_an_error(capsys, tmp_path):
    code, _, err = run(
        _curve(tmp_path, "--quantizers", "sign", "--compare", "none;sign", "--out", str(tmp_path / "x.csv")), capsys
    )
    assert code == 2 and "--compare" in err and not (tmp_path / "x.csv").exists()


def test_curve_plot_onto_a_folder_is_refused(capsys, tmp_path):
    folder = tmp_path / "figs"
    folder.mkdir()
    code, _, err = run(_curve(tmp_path, "--out", str(tmp_path / "c.csv"), "--plot", str(folder)), capsys)
    assert code == 2 and "is a folder" in err
    assert not (tmp_path / "c.csv").exists() and not (tmp_path / "figs.png").exists()


def test_curve_plot_equal_to_out_is_refused(capsys, tmp_path):
    target = tmp_path / "c.csv"
    code, _, err = run(_curve(tmp_path, "--out", str(target), "--plot", str(target)), capsys)
    assert code == 2 and "same file" in err and not target.exists()
    # also through a symbolic link
    (tmp_path / "link.csv").symlink_to(target)
    code, _, err = run(_curve(tmp_path, "--out", str(target), "--plot", str(tmp_path / "link.csv")), capsys)
    assert code == 2 and "same file" in err


def test_curve_plot_path_printed_is_the_file_written(capsys, tmp_path):
    code, out, _ = run(_curve(tmp_path, "--out", str(tmp_path / "c.csv"), "--plot", str(tmp_path / "fig")), capsys)
    assert code == 0
    written = tmp_path / "fig.png"
    assert written.stat().st_size > 1000 and f"wrote {written}" in out.splitlines()
    # an existing file without a suffix is written as named
    existing = tmp_path / "figure"
    existing.write_bytes(b"")
    code, out, _ = run(_curve(tmp_path, "--out", str(tmp_path / "c.csv"), "--plot", str(existing)), capsys)
    assert code == 0 and existing.stat().st_size > 1000 and f"wrote {existing}" in out.splitlines()


@pytest.mark.parametrize("where", ["missing-folder", "folder", "empty", "dev-full"])
@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_curve_unwritable_output_one_line_exit_2(where, option, capsys, tmp_path):
    import os

    if where == "dev-full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    bad = {
        "missing-folder": str(tmp_path / "nope" / "c.out"),
        "folder": str(tmp_path),
        "empty": "",
        "dev-full": "/dev/full",
    }[where]
    paths = {"--out": str(tmp_path / "c.csv"), "--plot": str(tmp_path / "c.png")}
    paths[option] = bad
    before = set(os.listdir(tmp_path))
    code, _, err = run(_curve(tmp_path, "--out", paths["--out"], "--plot", paths["--plot"]), capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rfq curve: error: ") and option in lines[0], err
    assert "Traceback" not in err
    if where != "dev-full":  # refused before any work: nothing written
        assert set(os.listdir(tmp_path)) == before


def test_high_precision_notice_comes_before_the_solve(capsys, monkeypatch):
    import rfq_theory.solver as solver

    seen = {}

    def fake_predict(*args, **kwargs):
        seen["stderr"] = capsys.readouterr().err
        raise KeyboardInterrupt

    monkeypatch.setattr(solver, "predict", fake_predict)
    code, _, err = run(["predict", *SMALL_MODEL, "--samples", "150", "--digits", "200"], capsys)
    assert code == 130 and "interrupted" in err
    assert seen["stderr"].startswith("rfq predict: note: solving at 200 digits")


def test_predict_output_names_effective_ridges_and_explains_them(capsys):
    code, out, _ = run(
        [
            "predict",
            "--input-dim",
            "100",
            "--widths",
            "200,150",
            "--activations",
            "tanh,relu",
            "--samples",
            "120",
            "--ridge",
            "0.01",
        ],
        capsys,
    )
    assert code == 0
    lines = out.splitlines()
    labels = [line.split("=")[0].strip() for line in lines if line.startswith("  ") and "=" in line]
    assert [x for x in labels if x.startswith("ridge_eff_")] == ["ridge_eff_0", "ridge_eff_1", "ridge_eff_2"]
    assert not any(x.startswith("kappa") for x in labels)
    assert any("ridge_eff_l: effective ridge kappa_l" in line for line in lines)
    # noise 0: the noise part is exactly zero and prints as 0, not 0.0
    assert "  noise_part   = 0" in lines


def _closed_pipe_run(argv):
    """Run ``rfq argv`` with a standard output whose reader is already gone."""
    import os

    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [sys.executable, "-m", "rfq_theory", *argv], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(w)


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        pytest.param(["--help"], marks=pytest.mark.slow),  # a process each: list and predict stay fast
        # predict into a closed pipe is also test_predict_into_head_in_a_shell
        pytest.param(["predict", *SMALL_MODEL, "--samples", "150", "--ridge", "1e-3"], marks=pytest.mark.slow),
        pytest.param(["layers", "--activations", "tanh,relu", "--json"], marks=pytest.mark.slow),
    ],
)
def test_broken_pipe_is_quiet(argv):
    proc = _closed_pipe_run(argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


@pytest.mark.slow  # a shell and an rfq process
def test_predict_into_head_in_a_shell(tmp_path):
    import shutil

    if not shutil.which("sh") or not shutil.which("head"):
        pytest.skip("no POSIX shell")
    cmd = (
        f"'{sys.executable}' -m rfq_theory predict --input-dim 100 --widths 200 --activations tanh "
        "--samples 150 --ridge 1e-3 | head -1"
    )
    proc = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("deep RF:") and len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
