"""Hostile-input sweep: generated inputs over every ``rfq`` command and the Python API, held to the contract.

The contract for every input:

* bad input (the default expectation of a case): exit code 2 and exactly one line on standard
  error, ``rfq <command>: error: ...`` (API: ``ValueError`` or ``TypeError``);
* legal input (cases listed in :data:`LEGAL`): exit code 0 and the right answer, checked against
  an independent route where one is cheap (a closed form, a scaling law, a built-in twin);
* always: no ``Traceback``, no code run (injection payloads try to create a marker file), no file
  created outside the case's own folder, and the work ends within a CPU-time bound.

Speed: each case runs in a child forked from the test process (the package is already imported,
so a case costs milliseconds, not an interpreter start), under ``RLIMIT_CPU`` and ``RLIMIT_AS``,
two at a time. The bound is CPU time, not the wall clock, so it holds on a machine busy with other
work; the wall clock only backs it up against a case that blocks without computing. A sample of
cases runs as real ``python -m rfq_theory`` subprocesses.
"""

from __future__ import annotations

import math
import os
import re
import resource
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

ROOT = Path(__file__).resolve().parents[1]
#: CPU seconds a case may use (refusals take well under one; the heaviest legal case a few)
CPU_LIMIT = 30
#: wall-clock backstop only (a case that sleeps or blocks instead of computing)
WALL_BACKSTOP = 600.0
MEMORY_EXTRA = int(2.5 * 2**30)  # bytes of address space a case may add to the test process
WORKERS = max(1, min(2, os.cpu_count() or 1))

MARKER_NAME = "rfq-hostile-PWNED"


# ------------------------------------------------------------------ inputs


def _payloads(var):
    """Injection attempts and hostile text, as expressions in ``var`` (one of each kind)."""
    m = "{marker}"  # filled in per case with a path inside the case folder
    return [
        f"__import__('os').system('touch {m}')",
        "().__class__.__base__.__subclasses__()",
        f"{var}.__init__.__globals__",
        f"lambda: __import__('os').system('touch {m}')",
        f"[__import__('os').system('touch {m}') for {var} in (1,)]",
        f'f\'{{__import__("os").system("touch {m}")}}\'',
        f"({var}y := {var})",
        f"eval('{var}')",
        f"open('{m}', 'w')",
        f"{var} if __import__('os').system('touch {m}') else {var}",
        f"sympify('{var}')",
        f"{var}; import os",
        f"{var}\u200b",  # zero-width space
        "\uff55*2" if var == "u" else "\uff47*2",  # fullwidth u / g (Python would fold it into u / g)
        "\U0001d42e+1" if var == "u" else "\U0001d420+1",  # mathematical bold u / g
        f"{var}[0]",
        f"'{var}'",
        f"erf({var}, {var})",
        f"Heaviside({var}, __import__('os'))",
        f"{var}.real",
    ]


def _in_process_payloads(var):
    """Payloads that cannot travel through ``argv`` (null bytes, megabyte strings)."""
    return [
        f"{var}\x00",
        var * 1_000_000,
        var + f"+{var}" * 400_000,
        "(" * 100_000 + var + ")" * 100_000,
        "Max(" * 2_000 + var + ",0)" * 2_000,
    ]


FW = "1e" + "\uff19" * 9  # exponent in fullwidth digits
AR = "1e" + "\u0669" * 9  # exponent in Arabic-Indic digits
HUGE = ["1e999999999", "1e-999999999", "0e999999999", "1" + "0" * 5000, FW, AR, "inf", "nan"]
BAD_NUMBERS = HUGE + ["abc", "", "-1", "1,2", "1/0", "0x10", "\uff11\uff12", "2**64"]

#: activations that are refused (exploding, undefined, zero or not square-integrable)
EXPLODING = [
    "((u+1)**64)**64",
    "exp(exp(exp(u)))",
    "((((9**64)**64)**64)**64)**64*u",
    "u**(10**10)",
    "u**1e999999999",
    "1e999999999*u",
    f"{FW}*u",
    "exp(u**2)",
    "0**-1",
    "log(u)",
    "1/u",
    "sqrt(u)",
    "hermite:1000000",
    "hermite:-1",
    "leaky_relu:1/0",
    "leaky_relu:1e999999999",
    f"leaky_relu:{AR}",
    "leaky_relu:nan",
    "leaky_relu:",
    "leaky_relu:(lambda",
]

QUANTIZERS = [
    "ternary:1e999999999",
    f"ternary:{FW}",
    "ternary:-1",
    "ternary:nan",
    "ternary:",
    "uniform:0",
    "uniform:64",
    "uniform:3:0",
    "uniform:3:-1",
    f"uniform:3:{AR}",
    "uniform:1e999999999",
    "expr:g**2",
    "expr:abs(g)",
    "expr:((g+1)**64)**64",
    "expr:exp(exp(exp(g)))",
    "expr:",
    "expr:expr:g",
    "bogus",
    "none,",
    "sign,,sign",
]

SMALL = ["--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples", "150", "--ridge", "1e-2"]
AXIS_SMALL = [a for a in SMALL if a not in ("--samples", "150")]  # a samples axis sets n itself
VALIDATE = [
    "validate",
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
    "--no-progress",
]
BENCH = [
    "bench",
    "--device",
    "cpu",
    "--widths",
    "64",
    "--batches",
    "1",
    "--variants",
    "dense-fp32",
    "--repeats",
    "1",
    "--warmup",
    "0",
    "--max-case-seconds",
    "1",
    "--quiet",
]


def _set(argv, option, value):
    """``argv`` with ``option`` set to ``value`` (replaced if present, else appended)."""
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


# ------------------------------------------------------------------ cases and their expectations

#: legal cases: case -> check(stdout) that raises AssertionError on a wrong answer
LEGAL = {}


def _cli_cases():
    cases = []

    def add(argv, check=None):
        case = ("cli", tuple(argv))
        cases.append(case)
        if check is not None:
            LEGAL[case] = check

    for p in _payloads("u"):
        add(["coefficients", "--activation", p])
    for p in _payloads("u")[:2] + _payloads("u")[13:15]:
        add(["predict", *_set(SMALL, "--activations", p)])
    for p in _payloads("u")[:1] + _payloads("u")[13:14]:
        add(["predict", *SMALL, "--target", p])
        add(["layers", "--activations", f"tanh,{p}"])
        add(["theorem", *_set(SMALL, "--activations", p)])
    for p in _payloads("g")[:6] + _payloads("g")[12:15]:
        add(["coefficients", "--activation", "relu", "--quantizer", "expr:" + p])
    for p in _payloads("g")[:2]:
        add(["predict", *SMALL, "--quantizers", "expr:" + p])
    for x in EXPLODING:
        add(["coefficients", "--activation", x])
    for x in EXPLODING[:2] + EXPLODING[6:8]:
        add(["predict", *_set(SMALL, "--activations", x)])
    add(["predict", *SMALL, "--target", EXPLODING[0]])
    for x in ["((u+1)**64)**64", "exp(exp(exp(u)))", "leaky_relu:1e999999999"]:
        add(["coefficients", "--activation", x, "--exact"])
    for q in QUANTIZERS:
        add(["coefficients", "--activation", "tanh", "--quantizer", q])
    for q in QUANTIZERS[1:3] + QUANTIZERS[-2:]:
        add(["predict", *SMALL, "--quantizers", q])
    for q in QUANTIZERS[:2]:
        add(["layers", "--activations", "tanh", "--quantizers", q])
    for v in BAD_NUMBERS:
        add(["coefficients", "--activation", "tanh", "--variance", v])
    for v in BAD_NUMBERS[:8]:
        add(["predict", *_set(SMALL, "--samples", v)])
    options = ("--input-dim", "--widths", "--ridge", "--noise")
    for i, v in enumerate(HUGE[:6] * 2):  # each huge value in two of the options
        add(["predict", *_set(SMALL, options[i % 4], v)])
    for d in ["0", "-1", "abc", "1e3", "1001", "99999999999999999999", FW]:
        add(["coefficients", "--activation", "tanh", "--digits", d])
    for d in ["0", "1001", AR]:
        add(["predict", *SMALL, "--digits", d])
    add(["predict", *SMALL, "--widths", "200,300", "--activations", "tanh,relu,erf"])
    for v in BAD_NUMBERS[:3]:
        add(["theorem", *_set(SMALL, "--samples", v)])
    add(["list", "extra"])
    add(["frobnicate"])
    add(["--digits", "3"])
    # curve: grids, compare lists, output paths
    curve = ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", "0.5,2", "--out", "c.csv"]
    for g in ["", ":", "1:2", "1:2:0", "1:2:1e999999999", f"1:2:{FW}", "1:2:100001", "-1:2:3:log", "nan", "a,b"]:
        add(_set(curve, "--grid", g))
    for c in [";", "none;", "bogus;sign", "none;expr:((g+1)**64)**64"]:
        add([*curve, "--compare", c])
    for vary in ["Samples", "bogus", ""]:
        add(_set(curve, "--vary", vary))
    for path in ["", "/nonexistent-rfq-dir/x.csv", ".", "/dev/full", "nope/"]:
        add(_set(curve, "--out", path))
    for path in ["/dev/full", "c.csv", "."]:
        add([*curve, "--plot", path])
    # validate (tiny sizes; the hostile value replaces one option)
    for opt, values in {
        "--input-dim": ["1e999999999", "abc"],
        "--trials": ["0", "2.5"],
        "--test-samples": ["-5"],
        "--seed": ["-1", FW],
        "--ridge": ["nan"],
        "--grid": ["-1"],
        "--activations": ["((u+1)**64)**64", "__import__('os').system('touch {marker}')"],
        "--quantizers": ["bogus"],
        "--widths": ["30,"],
        "--out": ["", "/dev/null/x", "existing-file"],
    }.items():
        for v in values:
            add(_set(VALIDATE, opt, v))
    # demo: only inputs it must refuse before simulating
    for opt, values in {
        "--trials": ["0", "abc", "2.5"],
        "--seed": ["1e999999999"],
        "--out": ["", "/dev/null/x"],
    }.items():
        for v in values:
            add(["demo", opt, v])
    # bench (PyTorch is imported per case: a handful only)
    for opt, v in [("--layers", "0"), ("--seed", "9e29"), ("--json", "/nonexistent-rfq-dir/x.json")]:
        add(_set(BENCH, opt, v))
    # spectrum, phase, validate-spectrum and the convex-loss options
    spec = ["spectrum", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--points", "60"]
    for opt, v in [
        ("--points", "0"),
        ("--points", AR),
        ("--digits", "999"),
        ("--samples", "-3"),
        ("--layers", "7"),
        ("--layers", "__import__('os')"),
        ("--plot", "/nonexistent-rfq-dir/s.png"),
        ("--plot", "/dev/full"),
    ]:
        add(_set(spec, opt, v) if opt in spec else [*spec, opt, v])
    phase = [
        "phase",
        *AXIS_SMALL,
        "--x",
        "samples:0.5:2:5",
        "--y",
        "width:0.5:2:5",
        "--out",
        "m.npz",
    ]
    for opt, v in [
        ("--x", "samples:0.5:2:1e999999999"),
        ("--x", f"samples:0.5:2:{FW}"),
        ("--x", "bogus:1:2:3"),
        ("--y", "width:log:-1:2:5"),
        ("--y", "samples:0.5:2:5"),
        ("--out", "/nonexistent-rfq-dir/m.npz"),
        ("--plot", "/dev/full"),
        ("--csv", "m.npz"),
        ("--quantity", "__class__"),
        ("--ridge", "1e-999999999"),
    ]:
        add(_set(phase, opt, v))
    vspec = [
        "validate-spectrum",
        "--input-dim",
        "40",
        "--widths",
        "60",
        "--activations",
        "tanh",
        "--samples",
        "50",
        "--no-plot",
        "--out",
        "vs",
    ]
    for opt, v in [("--trials", "0"), ("--samples", "1e999999999"), ("--input-dim", "abc"), ("--out", "existing-file")]:
        add(_set(vspec, opt, v) if opt in vspec else [*vspec, opt, v])
    for extra in (["--loss", "exec"], ["--labels", "eval"], ["--loss", "hinge", "--ridge", FW]):
        add(["predict", *SMALL, *extra])
    scaling = ["scaling", *AXIS_SMALL, "--vary", "samples", "--grid", "0.5:2:5"]
    for opt, v in [
        ("--grid", "0.5:2:1e999999999"),
        ("--grid", f"0.5:2:{FW}"),
        ("--grid", "0.5:2:\uff15"),
        ("--ridge", "1e-999999999"),
        ("--ridge", AR),
        ("--fit-range", "1:\u0662"),
        ("--input-spectrum", "power:1e999999999"),
        ("--teacher", "__import__('os')"),
        ("--csv", "/nonexistent-rfq-dir/s.csv"),
    ]:
        add(_set(scaling, opt, v))
    data = ["data", "--widths", "40", "--grid", "60,200", "--draws", "2", "--no-plot", "--out", "dd"]
    for opt, v in [
        ("--dataset", "mnist"),
        ("--dataset", "file:/nonexistent/x.npz"),
        ("--grid", "60,1e999999999"),
        ("--draws", AR),
        ("--ridge", "nan"),
        ("--widths", "__import__('os')"),
        ("--out", "/dev/null/x"),
    ]:
        add(_set(data, opt, v) if opt in data else [*data, opt, v])
    _legal_cli_cases(add)
    return cases


def _api_cases():
    cases = []

    def add(name, *args, check=None):
        case = ("api", (name, *args))
        cases.append(case)
        if check is not None:
            LEGAL[case] = check

    for p in _payloads("u")[:6] + _in_process_payloads("u"):
        add("get_activation", p)
    for p in _payloads("g")[:4] + _in_process_payloads("g")[:2]:
        add("get_quantizer", "expr:" + p)
    for p in _payloads("g")[:4]:
        add("piecewise_levels", p)
        add("piecewise_breaks", p)
    for x in EXPLODING[:6]:
        add("coefficients", x, "1")
    for v in HUGE + ["-1", "0"]:
        add("coefficients", "relu", v)
    for v in HUGE[:5] + ["-1"]:
        add("predict_size", v)
        add("predict_ridge", v)
    for v in HUGE[:3]:
        add("exact_coefficients", "relu", v)
    for bad in ["none", "list", "tuple-of-lists", "bool", "dict"]:
        add("deeprf_widths", bad)
    add("sweep_vary", "bogus")
    add("propagate", "((u+1)**64)**64")
    add("in_process_cli", ("coefficients", "--activation", "u" * 1_000_000))
    add("in_process_cli", ("coefficients", "--activation", "tanh(u)\x00"))
    add("in_process_cli", ("curve", *AXIS_SMALL, "--vary", "samples", "--grid", "1", "--out", "c\x00.csv"))
    _legal_api_cases(add)
    return cases


# ------------------------------------------------------------------ legal inputs and their answers


def _fields(out):
    """``name = value`` lines of a command's text output (numbers as floats)."""
    fields = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([a-z_0-9]+)\s*=\s*(\S+)", line)
        if m:
            try:
                fields[m.group(1)] = float(m.group(2))
            except ValueError:
                fields[m.group(1)] = m.group(2)
    return fields


def _close(a, b, rel=1e-12, abs_=0.0):
    assert math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_), (a, b)


def _expect(expected, rel=1e-12, abs_=1e-14):
    """A check that the printed fields equal ``expected`` (independent closed forms)."""

    def check(out):
        fields = _fields(out)
        for key, value in expected.items():
            _close(fields[key], value, rel, abs_)

    return check


def _same_as_api(model_args, samples, ridge, rel=1e-9, digits=None, **kw):
    """A check that ``test_error`` equals the API's prediction for an equivalent model."""

    def check(out):
        from rfq_theory import DeepRF, predict

        ref = predict(DeepRF(*model_args, **kw), samples, ridge, digits=digits)
        _close(_fields(out)["test_error"], ref.test_error, rel)

    return check


PHI1 = math.exp(-0.5) / math.sqrt(2 * math.pi)  # standard normal density at 1
ERF1 = math.erf(1 / math.sqrt(2))  # P(|g| < 1)


def _uniform16_s2(out):
    import numpy as np
    from scipy.special import ndtr

    delta = 6 / 2**16
    edges = np.concatenate([[-np.inf], np.arange(-(2**15) + 1, 2**15) * delta, [np.inf]])
    levels = (np.arange(-(2**15), 2**15) + 0.5) * delta
    _close(_fields(out)["s2"], float(np.sum(levels**2 * np.diff(ndtr(edges)))), rel=1e-11)


def _legal_cli_cases(add):
    # an expression that is a built-in scaled: 2*u is linear times 2
    add(["coefficients", "--activation", "2*u"], _expect({"mu0": 0, "mu1": 2, "mu_star": 0, "second_moment": 4}))
    # hard tanh: mu1 = P(|g| < 1); E[g^2 1{|g|<1}] + P(|g| > 1)
    add(
        ["coefficients", "--activation", "Min(Max(u,-1),1)"],
        _expect({"mu0": 0, "mu1": ERF1, "second_moment": ERF1 - 2 * PHI1 + (1 - ERF1)}),
    )
    # Stein's lemma: E e^g = E g e^g = e^(1/2); E e^(2g) = e^2
    add(["coefficients", "--activation", "E**u"], _expect({"mu0": math.exp(0.5), "mu1": math.exp(0.5)}))
    add(["coefficients", "--activation", "1e-300*u"], _expect({"mu1": 1e-300}, abs_=0))
    # sin at any variance v: mu1 = e^(-v/2), E sin^2 = (1 - e^(-2v)) / 2
    for v in ["1e-100", "1e-24", "1e300"]:
        fv = float(v)
        add(
            ["coefficients", "--activation", "sin", "--variance", v],
            _expect({"mu0": 0, "mu1": math.exp(-fv / 2), "second_moment": -math.expm1(-2 * fv) / 2}, abs_=0),
        )
    # tanh at a tiny variance is linear: mu1 -> 1, E tanh^2 -> v
    for v in ["1e-24", "1e-16"]:
        add(
            ["coefficients", "--activation", "tanh", "--variance", v],
            _expect({"mu1": 1, "second_moment": float(v)}, 1e-6, 0),
        )
    # a quantizer written as an expression: s2 = E min(|g|, 1)^2 in closed form
    add(
        ["coefficients", "--activation", "relu", "--quantizer", "expr:sign(g)*Min(abs(g),1)"],
        _expect({"s2": ERF1 - 2 * PHI1 + (1 - ERF1), "mu1": 0.5}),
    )
    # 16-bit uniform quantizer (65536 levels): s2 against a float sum over the levels with SciPy's normal CDF
    add(["coefficients", "--activation", "tanh", "--quantizer", "uniform:16"], _uniform16_s2)
    # features scaled by 2 with ridge r predict what unscaled features do with ridge r/4
    add(["predict", *_set(SMALL, "--activations", "2*u")], _same_as_api((100, (200,), ("linear",)), 150, "2.5e-3"))
    # sign written as an expression is the built-in sign quantizer
    add(
        ["predict", *SMALL, "--quantizers", "expr:sign(g)"],
        _same_as_api((100, (200,), ("tanh",)), 150, "1e-2", quantizers=("sign",)),
    )
    # a ridge of 1e-300 is the ridgeless interpolator to every printed digit
    add(
        ["predict", *_set(SMALL, "--ridge", "1e-300"), "--digits", "20"],
        _same_as_api((100, (200,), ("tanh",)), 150, "0", rel=1e-15, digits=20),
    )
    # probabilists' Hermite He3: orthogonality gives mu0 = mu1 = 0 and E He3^2 = 3! = 6
    add(["coefficients", "--activation", "hermite:3"], _expect({"mu0": 0, "mu1": 0, "second_moment": 6}))
    # leaky ReLU with slope a: mu1 = (1 + a)/2, E sigma^2 = (1 + a^2)/2, mu0 = (1 - a)/sqrt(2 pi)
    add(
        ["coefficients", "--activation", "leaky_relu:0.5"],
        _expect({"mu1": 0.75, "second_moment": 0.625, "mu0": 0.5 / math.sqrt(2 * math.pi)}),
    )
    # underscores between digits are legal decimal syntax
    add(["predict", *_set(SMALL, "--input-dim", "1_00")], _same_as_api((100, (200,), ("tanh",)), 150, "1e-2"))


def _legal_api_cases(add):
    # ridge 0 is the ridgeless interpolator: the limit of a vanishing ridge
    add("predict_ridge", "0", check=_same_as_api((100, (200,), ("tanh",)), 150, "1e-300", rel=1e-12))

    def relu_at(v):
        # relu at variance v: mu1 = 1/2, E relu^2 = v/2, mu0 = sqrt(v / (2 pi))
        return _expect({"mu1": 0.5, "second_moment": v / 2, "mu0": math.sqrt(v / (2 * math.pi))}, 1e-12, 0)

    for v in ["1e-24", "1e300"]:
        add("coefficients", "relu", v, check=relu_at(float(v)))
        add("exact_coefficients", "relu", v, check=relu_at(float(v)))


ALL_CASES = list(dict.fromkeys(_cli_cases() + _api_cases()))


def _case_id(case):
    kind, args = case
    text = " ".join(str(a) for a in args)
    text = text if len(text) <= 90 else f"{text[:60]}...[{len(text)} chars]"
    return kind + ":" + text.encode("ascii", "backslashreplace").decode().replace("\x00", "\\0")


# ------------------------------------------------------------------ API calls


def _api_call(name, *args):
    """Run one API case; returns the result (checked by :func:`_check_api_result`)."""
    import rfq_theory as r
    from rfq_theory.activation_coefficients import coefficients, exact_coefficients  # the functions, not the submodule

    small = r.DeepRF(100, (200,), ("tanh",))
    if name == "get_activation":
        return r.get_activation(args[0])
    if name == "get_quantizer":
        return r.get_quantizer(args[0])
    if name == "piecewise_levels":
        return r.Quantizer.piecewise("q", ["0"], [args[0], "1"])
    if name == "piecewise_breaks":
        return r.Quantizer.piecewise("q", [args[0]], ["-1", "1"])
    if name == "coefficients":
        return coefficients(args[0], args[1])
    if name == "exact_coefficients":
        return exact_coefficients(args[0], args[1])
    if name == "predict_size":
        return r.predict(r.DeepRF(args[0], (200,), ("tanh",)), 150, "1e-2")
    if name == "predict_ridge":
        return r.predict(small, 150, args[0])
    if name == "deeprf_widths":
        widths = {"none": None, "list": [200, [3]], "tuple-of-lists": ([200],), "bool": True, "dict": {1: 2}}[args[0]]
        return r.DeepRF(100, widths, "tanh")
    if name == "sweep_vary":
        return r.sweep(small, args[0], [1, 2], samples=150)
    if name == "propagate":
        return r.propagate([args[0]])
    raise AssertionError(name)


def _numbers_in(value):
    if isinstance(value, dict):
        return list(value.values())
    for attr in ("test_error", "mu_star"):
        if hasattr(value, attr):
            return [
                getattr(value, a) for a in ("test_error", "train_error", "mu0", "mu1", "mu_star") if hasattr(value, a)
            ]
    return []


def _check_api_result(value):
    """A returned number is real and not NaN (infinity is allowed: the interpolation threshold);
    the numbers are printed as ``name = value`` lines for the legal cases' checks."""
    for x in _numbers_in(value):
        text = str(x)
        if re.search(r"\bI\b|\bnan\b|\bzoo\b|\bj\b|[0-9]j\b", text, re.IGNORECASE):
            raise RuntimeError(f"returned a complex or NaN number: {text[:80]}")
    for name in ("test_error", "mu0", "mu1", "mu_star", "second_moment"):
        x = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if x is not None:
            print(f"{name} = {float(x)!r}")


# ------------------------------------------------------------------ runner


def _vm_size():
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * 2**30


def _die_with_parent():
    """Linux: the child is killed if the test process dies (no orphans left running)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _warm_up():
    """Load and cache in the test process what most cases need, so that each forked child starts warm."""
    from rfq_theory.activation_coefficients import coefficients
    from rfq_theory.model import DeepRF
    from rfq_theory.solver import predict

    small = DeepRF(100, (200,), ("tanh",))
    predict(small, 150, "1e-2")
    predict(small, 150, "1e-2", digits=15)
    coefficients("tanh", "1")
    try:
        import validation.montecarlo.compare  # noqa: F401
        import validation.montecarlo.demo  # noqa: F401
    except ImportError:  # pragma: no cover - validation package not installed
        pass


def _child(case, folder):
    """Body of a forked child: run ``case`` in ``folder``; never returns."""
    code = 97
    try:
        _die_with_parent()
        os.chdir(folder)
        out = os.open("stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open("stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)
        limit = _vm_size() + MEMORY_EXTRA
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 5))
        os.environ["MPLBACKEND"] = "Agg"
        kind, args = case
        marker = str(Path(folder) / MARKER_NAME)
        args = tuple(a.replace("{marker}", marker) if isinstance(a, str) else a for a in args)
        if kind == "cli" or args[0] == "in_process_cli":
            from rfq_theory.cli import main

            code = main(list(args if kind == "cli" else args[1]))
        else:
            try:
                value = _api_call(*args)
                _check_api_result(value)
                code = 0
            except (ValueError, TypeError, ArithmeticError) as exc:
                print(f"api: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
                code = 2
    except BaseException:  # noqa: BLE001 - reported as a failure of the case
        traceback.print_exc()
        code = 98
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) and 0 <= code < 256 else 96)


def _run_forked(cases, base):
    """Run ``cases`` in forked children, ``WORKERS`` at a time; returns {case: result dict}."""
    _warm_up()

    results, running, pending = {}, {}, list(enumerate(cases))
    while pending or running:
        while pending and len(running) < WORKERS:
            i, case = pending.pop(0)
            folder = base / f"case{i:04d}"
            folder.mkdir()
            if case[1] and "existing-file" in case[1]:
                (folder / "existing-file").write_text("keep me\n")
            sys.stdout.flush()
            sys.stderr.flush()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (Python >= 3.12)
                pid = os.fork()
            if pid == 0:
                _child(case, folder)
            running[pid] = (case, folder, time.monotonic())
        time.sleep(0.005)
        for pid, (case, folder, start) in list(running.items()):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            elapsed = time.monotonic() - start
            if not done and elapsed > WALL_BACKSTOP:
                os.kill(pid, signal.SIGKILL)
                _, _, usage = os.wait4(pid, 0)
                results[case] = {"timeout": True, "elapsed": elapsed, "cpu": usage.ru_utime, "folder": folder}
                del running[pid]
            elif done:
                results[case] = {
                    "timeout": False,
                    "elapsed": elapsed,
                    "cpu": usage.ru_utime + usage.ru_stime,
                    "folder": folder,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                    "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                    "stdout": _read(folder / "stdout"),
                    "stderr": _read(folder / "stderr"),
                }
                del running[pid]
    return results


def _read(path):
    """A captured stream as text, carriage returns kept (progress bars redraw with them)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return fh.read()


def _snapshot():
    """Listings of the places a stray write would land."""
    places = [ROOT, Path.cwd(), Path.home(), ROOT / "tests", ROOT / "docs"]
    return {str(p): sorted(os.listdir(p)) for p in places if p.is_dir()}


@pytest.fixture(scope="module")
def sweep_results(request, tmp_path_factory):
    selected = {
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is sys.modules[__name__] and hasattr(item, "callspec") and "case" in item.callspec.params
    }
    cases = [c for c in ALL_CASES if c in selected]
    before = _snapshot()
    base = tmp_path_factory.mktemp("hostile")
    start = time.monotonic()
    results = _run_forked(cases, base)
    # a summary for whoever reads a failure: one line per case, slowest first
    lines = [
        f"{r['cpu']:7.2f} s CPU  {'TIMEOUT' if r['timeout'] else r.get('code')}  {_case_id(c)}  "
        f"{(r.get('stderr') or '').strip()[:160]!r}"
        for c, r in results.items()
    ]
    lines.sort(reverse=True)
    (base / "summary.txt").write_text(f"{len(cases)} cases in {time.monotonic() - start:.1f} s\n" + "\n".join(lines))
    return results, before


PROGRESS = re.compile(r"\|\s*\d+/\d+ \[|\d+%\|")


def _error_lines(stderr):
    """Lines of standard error, as a terminal shows them, that are neither notes, warnings nor progress bars."""
    shown = [line.split("\r")[-1] for line in stderr.split("\n")]
    return [
        line
        for line in shown
        if line.strip() and ": note:" not in line and ": warning:" not in line and not PROGRESS.search(line)
    ]


def _check(result, case):
    """The contract: a refusal is exit 2 and one line; a legal input is exit 0 and the right answer."""
    assert not result["timeout"], f"blocked for {WALL_BACKSTOP:.0f} s without using its CPU time"
    sig = result["signal"]
    assert sig is None, f"killed by signal {sig}" + (
        " (CPU time bound)" if sig == signal.SIGXCPU else " (memory bound?)"
    )
    err = result["stderr"]
    assert "Traceback" not in err, err[-1500:]
    assert not (result["folder"] / MARKER_NAME).exists(), "an injection payload ran code"
    lines = _error_lines(err)
    cli = case[0] == "cli" or case[1][0] == "in_process_cli"
    if case in LEGAL:
        assert result["code"] == 0 and not lines, (result["code"], err[-800:])
        LEGAL[case](result["stdout"])
        return
    assert result["code"] == 2, (
        f"bad input must exit 2, got {result['code']}: {err[-500:]!r} {result['stdout'][-300:]!r}"
    )
    assert len(lines) == 1, err[-1500:]
    if cli:
        assert re.match(r"^rfq( [a-z-]+)?: error: ", lines[0]), lines[0]
    else:
        assert re.match(r"^api: (ValueError|TypeError|[A-Za-z]*Error): ", lines[0]), lines[0]


@pytest.mark.parametrize("case", ALL_CASES, ids=[_case_id(c) for c in ALL_CASES])
def test_hostile_input(case, sweep_results):
    results, _ = sweep_results
    _check(results[case], case)


def test_the_sweep_reaches_every_command_rfq_has():
    """Every command the installed ``rfq`` registers (built-in and plugins) gets hostile cases."""
    import argparse

    from rfq_theory import cli as rfq_cli

    parser = rfq_cli.build_parser()
    registered = {name for a in parser._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices}
    swept = {c[1][0] for c in ALL_CASES if c[0] == "cli"}
    assert registered and registered <= swept, sorted(registered - swept)


def test_no_file_created_outside_the_case_folders(sweep_results):
    _, before = sweep_results
    assert _snapshot() == before


# ------------------------------------------------------------------ real subprocesses (a sample)

SUBPROCESS_SAMPLE = [
    ["coefficients", "--activation", "__import__('os').system('touch {marker}')"],
    ["coefficients", "--activation", "(lambda: 1)()"],
    ["coefficients", "--activation", "u\u200b"],
    ["coefficients", "--activation", "1e999999999*u"],
    ["coefficients", "--activation", "((u+1)**64)**64"],
    ["coefficients", "--activation", "exp(exp(exp(u)))"],
    ["predict", *_set(SMALL, "--samples", "1e999999999")],
    ["predict", *_set(SMALL, "--ridge", FW)],
    ["predict", *SMALL, "--quantizers", "expr:sign(g)*Min(abs(g),1e999999999)"],
    ["layers", "--activations", "tanh,[u for u in (1,)]"],
    ["curve", *AXIS_SMALL, "--vary", "samples", "--grid", "1", "--out", "/dev/full"],
    ["theorem", *SMALL, "--digits", "abc"],
]


def _limit_memory():
    limit = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 5))


@pytest.mark.parametrize("argv", SUBPROCESS_SAMPLE, ids=[_case_id(("sub", tuple(a))) for a in SUBPROCESS_SAMPLE])
def test_hostile_input_subprocess(argv, tmp_path):
    marker = tmp_path / MARKER_NAME
    argv = [a.replace("{marker}", str(marker)) for a in argv]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rfq_theory", *argv],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=WALL_BACKSTOP,
            preexec_fn=_limit_memory,
            env=dict(os.environ, MPLBACKEND="Agg"),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"blocked for {WALL_BACKSTOP:.0f} s")
    result = {
        "timeout": False,
        "signal": None if proc.returncode >= 0 else -proc.returncode,
        "code": proc.returncode,
        "stderr": proc.stderr,
        "stdout": proc.stdout,
        "folder": tmp_path,
        "elapsed": time.monotonic() - start,
    }
    _check(result, ("cli", tuple(argv)))
    assert set(os.listdir(tmp_path)) <= {"c.csv"}
