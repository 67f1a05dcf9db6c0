"""The input contract under hostile input, one test per hole a hostile sweep found.

* Numbers given as text are read by one reader (:func:`rfq_theory.checks.read_decimal`):
  ASCII decimal syntax, bounded exponent; anything else is one line and exit code 2,
  within 2 s of CPU time (no exponent is ever expanded).
* Expressions in non-ASCII characters are refused (Python would fold ``ｕ`` into ``u``).
* A broken plugin leaves the other commands working, with one warning line naming it.
* Output files are written all-or-nothing; a failed write is exit 2 with one line and
  never "wrote"; two options naming one file are refused before any work.
* A Python float means its exact binary value everywhere.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from decimal import Decimal
from fractions import Fraction
from importlib.metadata import EntryPoint
from pathlib import Path

import mpmath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfq_theory import cli
from rfq_theory.checks import InputError, check_positive, check_scalar

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SMALL = ["--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples", "150", "--ridge", "1e-2"]
AXIS_SMALL = [a for a in SMALL if a not in ("--samples", "150")]  # a samples axis sets n itself
FW = "1e" + "\uff19" * 9  # fullwidth nines
AR = "1e" + "\u0669" * 9  # Arabic-Indic nines
CPU_BOUND = 2.0  # seconds of CPU time a refusal may take


@pytest.fixture(scope="module", autouse=True)
def _imports_done_once():
    """Import once, in this process, what the commands import: every forked child inherits the modules,
    so it spends its CPU time on the command itself, not on importing SymPy and SciPy again."""
    import importlib
    import pkgutil

    import rfq_theory

    for mod in pkgutil.walk_packages(rfq_theory.__path__, "rfq_theory."):
        if not mod.name.endswith(("__main__", "testing.plugin")):
            importlib.import_module(mod.name)
    cli.build_parser()  # the command modules and the installed plugins
    import matplotlib

    matplotlib.use("Agg")  # what the plotting commands select themselves
    import matplotlib.pyplot  # noqa: F401


def _set(argv, option, value):
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


def run_cli(argv, folder, cpu_limit=60):
    """``rfq argv`` in a forked child under ``RLIMIT_CPU``; returns (code, stdout, stderr, cpu seconds)."""
    folder = Path(folder)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 97
        try:
            os.chdir(folder)
            out = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            err = os.open("stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(err, 2)
            sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
            sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))
            os.environ["MPLBACKEND"] = "Agg"
            code = cli.main(list(argv))
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 98
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) and 0 <= code < 256 else 96)
    deadline = time.monotonic() + 20 * cpu_limit  # a backstop only; the bound is CPU time
    pause = 0.0005  # most commands end within milliseconds: poll often at first, then every 20 ms
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(pause)
        pause = min(2 * pause, 0.02)
    cpu = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        pytest.fail(f"rfq {' '.join(argv)[:200]} killed by signal {os.WTERMSIG(status)} after {cpu:.1f} s CPU")
    read = lambda name: (folder / name).read_text(encoding="utf-8", errors="replace")  # noqa: E731
    return os.WEXITSTATUS(status), read("stdout.txt"), read("stderr.txt"), cpu


def assert_refused(result, command):
    code, out, err, cpu = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-800:])
    assert len(lines) == 1 and lines[0].startswith(f"rfq {command}: error: "), err[-800:]
    return lines[0]


# ------------------------------------------------------------------ 1. one number reader


HANGS = [
    ["predict", *_set(SMALL, "--ridge", "0e999999999")],
    ["predict", *_set(SMALL, "--ridge", FW)],
    ["predict", *_set(SMALL, "--ridge", AR)],
    ["predict", *_set(SMALL, "--noise", FW)],
    ["predict", *_set(SMALL, "--samples", AR)],
    ["predict", *_set(SMALL, "--input-dim", FW)],
    ["predict", *_set(SMALL, "--widths", "200," + AR)],
    ["predict", *_set(SMALL, "--activations", f"{FW}*u")],
    ["predict", *_set(SMALL, "--activations", f"leaky_relu:{AR}")],
    ["predict", *SMALL, "--quantizers", f"ternary:{FW}"],
    ["predict", *SMALL, "--quantizers", f"uniform:3:{AR}"],
    ["coefficients", "--activation", "tanh", "--variance", FW],
    ["coefficients", "--activation", "tanh", "--variance", "0e999999999"],
    ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", f"0.5,{FW}", "--out", "c.csv"],
    ["spectrum", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--points", AR],
    ["phase", *AXIS_SMALL, "--x", f"samples:0.5:2:{FW}", "--y", "width:0.5:2:3", "--out", "m.npz"],
]


def _hang_id(argv):
    i = next(i for i, a in enumerate(argv) if not a.isascii() or "e999" in a)
    return f"{argv[0]} {argv[i - 1]} {argv[i]}"


@pytest.mark.parametrize("argv", HANGS, ids=[_hang_id(a) for a in HANGS])
def test_hostile_numbers_refused_at_once(argv, tmp_path):
    result = run_cli(argv, tmp_path, cpu_limit=30)
    assert_refused(result, argv[0])
    assert result[3] < CPU_BOUND, f"took {result[3]:.2f} s of CPU"


@pytest.mark.parametrize("text", ["\uff55*2", "\U0001d42e+1", "tanh(\uff55)", "u*\u0662"])
def test_non_ascii_expressions_refused(text, tmp_path):
    line = assert_refused(run_cli(["coefficients", "--activation", text], tmp_path), "coefficients")
    assert "non-ASCII" in line


@given(
    mantissa=st.integers(-(10**30), 10**30),
    point=st.integers(0, 30),
    exponent=st.integers(-300, 300),
    underscores=st.booleans(),
)
def test_read_decimal_is_exact(mantissa, point, exponent, underscores):
    digits = str(abs(mantissa)).rjust(point + 1, "0")
    body = digits[: len(digits) - point] + ("." + digits[len(digits) - point :] if point else "")
    if underscores and len(body) > 2 and body[1].isdigit() and body[2].isdigit():
        body = body[0] + "_" + body[1:]
    from rfq_theory.checks import read_decimal

    text = ("-" if mantissa < 0 else "") + body + f"e{exponent}"
    # independent route: the integer mantissa scaled by an exact power of ten
    expected = Fraction(mantissa) * Fraction(10) ** (exponent - point)
    assert read_decimal(text, "x") == expected


@pytest.mark.parametrize(
    "text",
    [
        "0e999999999",
        "1e1001",
        "1e-1001",
        "1" + "0" * 1001,
        FW,
        AR,
        "\uff11\uff12",
        "0x10",
        "1/2",
        "inf",
        "nan",
        "",
        ".",
    ],
)
def test_read_decimal_refuses(text):
    from rfq_theory.checks import read_decimal

    with pytest.raises(InputError):
        read_decimal(text, "x")
    with pytest.raises(InputError):
        check_scalar(text, "x", float)


# ------------------------------------------------------------------ 2. plugins


PLUGINS = {
    "raises": "raise RuntimeError('plugin import failed')\n",
    "syntax": "def register(sub:\n",
    "exits": "import sys\nsys.exit(5)\n",
    "noattr": "x = 1\n",
    "notcallable": "register = 3\n",
    "regfails": "def register(sub):\n    sub.add_parser('half-made')\n    raise KeyError('boom')\n",
    "duplicate": "def register(sub):\n    sub.add_parser('predict', help='impostor')\n",
    "good": (
        "def register(sub):\n    p = sub.add_parser('hello', help='a working plugin')\n"
        "    p.set_defaults(func=lambda args: print('hello from plugin') or 0)\n"
    ),
}


@pytest.fixture
def plugin_modules(tmp_path, monkeypatch):
    for name, source in PLUGINS.items():
        (tmp_path / f"rfqplug_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in PLUGINS:
        sys.modules.pop(f"rfqplug_{name}", None)

    def entry_points():
        return [EntryPoint(name, f"rfqplug_{name}:register", cli.ENTRY_POINT_GROUP) for name in PLUGINS]

    monkeypatch.setattr(cli, "_entry_points", entry_points)
    return tmp_path


@pytest.mark.parametrize("argv", [["list"], ["hello"], ["coefficients", "--activation", "relu"]])
def test_broken_plugins_leave_other_commands_working(plugin_modules, argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.strip()]
    broken = sorted(set(PLUGINS) - {"good"})
    assert len(warnings) == len(broken), err
    for name, line in zip(broken, sorted(warnings, key=lambda w: w.split("'")[1])):
        assert line.startswith(f"rfq: warning: plugin '{name}' "), line
    if argv == ["hello"]:
        assert "hello from plugin" in out
    if argv[0] == "coefficients":
        assert "mu1" in out  # the real predict/coefficients commands, not an impostor


def test_broken_plugin_commands_are_left_out(plugin_modules, capsys):
    parser = cli.build_parser()
    capsys.readouterr()
    choices = parser._defaults["_subparsers"]
    assert "hello" in choices and "half-made" not in choices
    assert "impostor" not in (choices["predict"].description or "")


# ------------------------------------------------------------------ 3. outputs


PHASE = ["phase", *AXIS_SMALL, "--x", "samples:0.5:2:2", "--y", "width:0.5:2:2", "--out", "m.npz"]
SPECTRUM = ["spectrum", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--points", "20"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize(
    "argv",
    [
        [*PHASE, "--plot", "/dev/full"],
        [*PHASE, "--csv", "/dev/full"],
        [*SPECTRUM, "--plot", "/dev/full"],
        ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", "1,2", "--out", "/dev/full"],
        ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", "1,2", "--out", "c.csv", "--plot", "/dev/full"],
    ],
    ids=["phase-plot", "phase-csv", "spectrum-plot", "curve-out", "curve-plot"],
)
def test_failed_write_is_an_error_not_wrote(argv, tmp_path):
    code, out, err, cpu = run_cli(argv, tmp_path)
    line = assert_refused((code, out, err, cpu), argv[0])
    assert "/dev/full" in line and "No space left" in line
    assert "/dev/full" not in out  # never "wrote /dev/full"


def test_full_disk_keeps_the_earlier_map(tmp_path, monkeypatch, capsys):
    import errno

    import numpy as np

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.npz").write_bytes(b"the earlier map")
    real_savez = np.savez

    def full_disk(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)
        with open(file, "ab") as fh:
            fh.write(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    code = cli.main(PHASE)
    out, err = capsys.readouterr()
    assert code == 2 and "wrote" not in out, err
    assert err.strip().startswith("rfq phase: error: --out: cannot write") and "No space left" in err
    assert (tmp_path / "m.npz").read_bytes() == b"the earlier map"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary file left


@pytest.mark.parametrize("option", ["--csv", "--plot"])
def test_link_to_the_map_is_refused_up_front(tmp_path, option):
    (tmp_path / "m.npz").write_bytes(b"the earlier map")
    os.symlink("m.npz", tmp_path / "link")
    code, out, err, cpu = run_cli([*PHASE, option, "link"], tmp_path)
    line = assert_refused((code, out, err, cpu), "phase")
    assert "same file" in line
    assert (tmp_path / "m.npz").read_bytes() == b"the earlier map"


def test_curve_plot_link_to_out_refused(tmp_path):
    os.symlink("c.csv", tmp_path / "p.png")
    argv = ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", "1", "--out", "c.csv", "--plot", "p.png"]
    assert "same file" in assert_refused(run_cli(argv, tmp_path), "curve")


def test_write_output_replaces_atomically_and_keeps_links(tmp_path):
    from rfq_theory.outputs import write_output

    target = tmp_path / "data.csv"
    target.write_text("old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.csv"
    os.symlink("data.csv", link)
    write_output(str(link), "out", lambda tmp: Path(tmp).write_text("new"))
    assert link.is_symlink() and target.read_text() == "new"
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o640)

    def failing(tmp):
        Path(tmp).write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(InputError, match=r"^--out: cannot write .*No space left"):
        write_output(str(target), "out", failing)
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "link.csv"]


# ------------------------------------------------------------------ 4. floats mean their binary value


@pytest.mark.parametrize("x", [0.1, 1e-3, 2.5e-9, 1 / 3])
def test_float_is_read_as_its_binary_value(x):
    exact = Fraction(x)  # independent route: the float's exact rational value
    with mpmath.workdps(60):
        assert check_positive(x, "ridge", dps=60) == mpmath.mpf(exact.numerator) / exact.denominator
        # the text of the exact binary expansion gives the same number; the short decimal does not
        assert check_positive(str(Decimal(x)), "ridge", dps=60) == check_positive(x, "ridge", dps=60)
        if Fraction(repr(x)) != exact:
            assert check_positive(repr(x), "ridge", dps=60) != check_positive(x, "ridge", dps=60)


def test_predict_float_equals_its_exact_decimal_text():
    from rfq_theory import DeepRF, predict

    model = DeepRF(100, (200,), ("tanh",))
    ridge = 1e-3
    a = predict(model, 150, ridge, digits=30)
    b = predict(model, 150, str(Decimal(ridge)), digits=30)
    assert a.test_error == b.test_error


# ------------------------------------------------------------------ 5. slow legal inputs say so first


@pytest.mark.parametrize(
    "argv, target, words",
    [
        (
            ["spectrum", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--digits", "250"],
            "rfq_theory.spectra.spectrum",
            "250 digits",
        ),
        (
            ["predict", *SMALL, "--loss", "logistic", "--labels", "sign", "--digits", "60"],
            "rfq_theory.glm.predict_glm",
            "60 digits",
        ),
        (
            ["phase", *AXIS_SMALL, "--x", "samples:0.5:2:4000", "--y", "width:0.5:2:2500", "--out", "m.npz"],
            "rfq_theory.phase.phase_map",
            "10,000,000 points",
        ),
    ],
    ids=["spectrum-digits", "convex-loss-digits", "phase-points"],
)
def test_slow_work_is_announced_before_it_starts(argv, target, words, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    seen = {}

    def stub(*args, **kwargs):
        seen["stderr"] = capsys.readouterr().err
        raise KeyboardInterrupt

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(
        sys.modules[module] if module in sys.modules else __import__(module, fromlist=[name]), name, stub
    )
    assert cli.main(argv) == 130
    lines = [line for line in seen["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"rfq {argv[0]}: note: ") and words in lines[0], lines


# ------------------------------------------------------------------ 7. uniform quantizers: fast and right


def _uniform_by_quadrature(bits, clip, dps=30):
    """``E Q(g)^2`` of the b-bit mid-rise quantizer on [-c, c] by direct quadrature of ``Q(g)^2 phi(g)``."""
    with mpmath.workdps(dps + 10):
        c = mpmath.mpf(clip)
        delta = 2 * c / 2**bits
        half = 2 ** (bits - 1)
        phi = lambda g: mpmath.exp(-(g**2) / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
        total = mpmath.mpf(0)
        for j in range(-half, half):
            lo = -mpmath.inf if j == -half else j * delta
            hi = mpmath.inf if j == half - 1 else (j + 1) * delta
            level = (j + mpmath.mpf(1) / 2) * delta
            total += level**2 * mpmath.quad(phi, [lo, hi])
        return total


@pytest.mark.parametrize("bits, clip", [(1, "3"), (2, "3"), (3, "2.5"), (6, "3")])
def test_uniform_second_moment_against_quadrature(bits, clip):
    from rfq_theory.quantizers import _make_quantizer

    spec = f"uniform:{bits}" + (f":{clip}" if clip != "3" else "")
    q = _make_quantizer(spec)
    ref = _uniform_by_quadrature(bits, clip)
    assert abs(q.second_moment(30) - ref) < mpmath.mpf(10) ** -27 * ref


def test_uniform_16_bits_fast_and_right():
    import numpy as np
    from scipy.special import ndtr

    from rfq_theory.quantizers import _make_quantizer

    start = time.process_time()
    q = _make_quantizer("uniform:16")
    s2 = q.second_moment(30)
    cpu = time.process_time() - start
    # independent float route: the sum over levels with SciPy's normal CDF
    delta = 6 / 2**16
    edges = np.concatenate([[-np.inf], np.arange(-(2**15) + 1, 2**15) * delta, [np.inf]])
    levels = (np.arange(-(2**15), 2**15) + 0.5) * delta
    ref = float(np.sum(levels**2 * np.diff(ndtr(edges))))
    assert float(s2) == pytest.approx(ref, rel=1e-11)
    assert cpu < 2, f"uniform:16 took {cpu:.1f} s of CPU"
