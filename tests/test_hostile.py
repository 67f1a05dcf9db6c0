"""Hostile-input sweep: a few hundred generated inputs over every ``rfq`` command and the Python API.

Every input must end within a time bound and a memory bound, with

* an exit code in {0, 1, 2, 3} (no crash, no signal);
* no ``Traceback`` on standard error and at most one line of error, which names the command
  (``rfq <command>: error: ...``);
* no code run (injection payloads try to create a marker file) and no file created outside the
  case's own temporary folder.

Python API calls must return or raise ``ValueError``, ``TypeError`` or ``ArithmeticError``
(``InputError``, ``SolverError``, ...), never anything else, and never return complex or NaN
numbers.

Speed: each case runs in a child forked from the test process (the package is already imported,
so a case costs milliseconds, not an interpreter start), under ``RLIMIT_AS`` and a wall-clock
limit, two at a time; a sample runs as real ``python -m rfq_theory`` subprocesses.
"""

from __future__ import annotations

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
TIME_LIMIT = 20.0  # seconds per case
MEMORY_EXTRA = int(2.5 * 2**30)  # bytes of address space a case may add to the test process
WORKERS = max(1, min(2, os.cpu_count() or 1))

MARKER_NAME = "rfq-hostile-PWNED"


# ------------------------------------------------------------------ inputs


def _payloads(var):
    """Injection attempts and hostile text, as expressions in ``var``."""
    m = "{marker}"  # filled in per case with a path inside the case folder
    return [
        f"__import__('os').system('touch {m}')",
        "().__class__.__base__.__subclasses__()",
        f"{var}.__class__",
        f"{var}.__init__.__globals__",
        f"getattr({var}, '__class__')",
        f"lambda: __import__('os').system('touch {m}')",
        f"(lambda {var}: {var})({var})",
        f"[__import__('os').system('touch {m}') for {var} in (1,)]",
        f"{{{var} for {var} in (1,)}}",
        f'f\'{{__import__("os").system("touch {m}")}}\'',
        f"({var}y := {var})",
        "exec('import os')",
        f"eval('{var}')",
        f"open('{m}', 'w')",
        "globals()",
        f"{var} if __import__('os').system('touch {m}') else {var}",
        f"sympify('{var}')",
        f"Symbol('{var}')",
        f"{var}; import os",
        "import os",
        f"{var}\u200b",  # zero-width space
        "\uff55*2" if var == "u" else "\uff47*2",  # fullwidth u / g
        "\U0001d42e+1" if var == "u" else "\U0001d420+1",  # mathematical bold u / g
        f"tanh({var})\u202e",
        f"{var}[0]",
        f"{var}()",
        f"'{var}'",
        "...",
        f"erf({var}, {var})",
        f"Heaviside({var}, __import__('os'))",
        f"{var}.real",
    ]


def _in_process_payloads(var):
    """Payloads that cannot travel through ``argv`` (null bytes, megabyte strings)."""
    return [
        f"{var}\x00",
        "\x00",
        var * 1_000_000,
        var + f"+{var}" * 400_000,
        "(" * 100_000 + var + ")" * 100_000,
        "-" * 100_000 + var,
        "Max(" * 2_000 + var + ",0)" * 2_000,
    ]


HUGE = ["1e999999999", "-1e999999999", "1e-999999999", "1" + "0" * 5000, "1e308", "5e-324", "inf", "nan"]
BAD_NUMBERS = HUGE + [
    "abc",
    "",
    " ",
    "-1",
    "0",
    "1,2",
    "1/0",
    "0x10",
    "True",
    "None",
    "1.5.5",
    "--1",
    "\uff11\uff12",
    "2**64",
    "9e29",
]

EXPLODING = [
    "((u+1)**64)**64",
    "(((u+1)**64)**64)**64",
    "exp(exp(exp(u)))",
    "cos(exp(u))",
    "((((9**64)**64)**64)**64)**64*u",
    "u**(10**10)",
    "u**1e999999999",
    "1e999999999*u",
    "exp(u**2)",
    "exp(exp(u**2))",
    "0**-1",
    "log(u)",
    "1/u",
    "sqrt(u)",
    "Heaviside(u**3 - 1e300)",
    "Abs(1e-300*u**4 + u)",
    "Min(Max(u,-1),1)",
    "Min(Max(u,0),1)",
    "sin(1e300*u)",
    "tanh(1e300*u)",
    "1e-300*u",
    "u*0",
    "0",
    "pi",
    "E**u",
    "hermite:1000000",
    "hermite:-1",
    "leaky_relu:1/0",
    "leaky_relu:1e999999999",
    "leaky_relu:nan",
    "leaky_relu:",
    "leaky_relu:abc",
    "leaky_relu:(lambda",
]

QUANTIZERS = [
    "ternary:1e999999999",
    "ternary:-1",
    "ternary:nan",
    "ternary:",
    "uniform:0",
    "uniform:64",
    "uniform:16",
    "uniform:11",
    "uniform:3:0",
    "uniform:3:-1",
    "uniform:3:1e999999999",
    "uniform:1e999999999",
    "expr:1e-300*g",
    "expr:g**2",
    "expr:abs(g)",
    "expr:sign(g)*Min(abs(g),1)",
    "expr:((g+1)**64)**64",
    "expr:exp(exp(exp(g)))",
    "expr:",
    "expr:expr:g",
    "bogus",
    "none,",
    ",",
    "sign,,sign",
]

SMALL = ["--input-dim", "100", "--widths", "200", "--activations", "tanh", "--samples", "150", "--ridge", "1e-2"]
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


def _cli_cases():
    cases = []

    def add(argv):
        cases.append(("cli", tuple(argv)))

    for i, p in enumerate(_payloads("u")):
        add(["coefficients", "--activation", p])
        add(["predict", *_set(SMALL, "--activations", p)])
        if i < 10 or 20 <= i < 24:
            add(["predict", *SMALL, "--target", p])
    for p in _payloads("g")[:12] + _payloads("g")[20:24]:
        add(["coefficients", "--activation", "relu", "--quantizer", "expr:" + p])
        add(["predict", *SMALL, "--quantizers", "expr:" + p])
    for p in _payloads("u")[:6]:
        add(["layers", "--activations", f"tanh,{p}"])
        add(["theorem", *_set(SMALL, "--activations", p)])
    for x in EXPLODING:
        add(["coefficients", "--activation", x])
        add(["predict", *_set(SMALL, "--activations", x)])
    for x in ["((u+1)**64)**64", "(u+1)**64", "hermite:40", "exp(exp(exp(u)))", "leaky_relu:1e999999999"]:
        add(["coefficients", "--activation", x, "--exact"])
    for x in EXPLODING[:8]:
        add(["predict", *SMALL, "--target", x])
    for q in QUANTIZERS:
        add(["coefficients", "--activation", "tanh", "--quantizer", q])
        add(["predict", *SMALL, "--quantizers", q])
    for q in QUANTIZERS[:8]:
        add(["layers", "--activations", "tanh", "--quantizers", q])
    for v in BAD_NUMBERS:
        add(["coefficients", "--activation", "tanh", "--variance", v])
        for opt in ("--input-dim", "--samples"):
            add(["predict", *_set(SMALL, opt, v)])
    for v in HUGE + ["abc", "", "-1", "1/0", "0"]:
        for opt in ("--widths", "--ridge", "--noise"):
            add(["predict", *_set(SMALL, opt, v)])
    for v in ["1e-100", "1e-308", "1e-24", "1e-16", "1e300"]:
        add(["coefficients", "--activation", "tanh", "--variance", v])
        add(["coefficients", "--activation", "sin", "--variance", v])
    for d in ["0", "-1", "abc", "1e3", "1001", "99999999999999999999", "500", "300"]:
        add(["coefficients", "--activation", "tanh", "--digits", d])
        add(["predict", *SMALL, "--digits", d])
    add(["predict", *SMALL, "--ridge", "1e-300", "--digits", "20"])
    add(
        [
            "predict",
            "--input-dim",
            "1000",
            "--widths",
            "2000,1500",
            "--activations",
            "tanh,relu",
            "--samples",
            "1500.000000000001",
            "--noise",
            "0.1",
        ]
    )
    add(["predict", *SMALL, "--widths", "200,300", "--activations", "tanh,relu,erf"])
    add(["predict", *SMALL, "--optimal-ridge", "--target", "cos"])
    for v in BAD_NUMBERS[:9] + ["1e999999999"]:
        add(["theorem", *_set(SMALL, "--samples", v)])
    add(["list", "--json"])
    add(["list", "extra"])
    add(["frobnicate"])
    add(["--digits", "3"])
    # curve: grids, compare lists, output paths
    curve = ["curve", *SMALL, "--vary", "samples", "--grid", "0.5,2", "--out", "c.csv"]
    for g in [
        "",
        ":",
        "1:2",
        "1:2:0",
        "1:2:1e999999999",
        "1:2:100001",
        "-1:2:3:log",
        "0:1:3:log",
        "1e999999999,1",
        "nan",
        "1,,2",
        "a,b",
        "1:2:3:cubic",
        "1e-999999999:1:3",
        "(1,2)",
    ]:
        add(_set(curve, "--grid", g))
    for c in [";", ";;", "none;", ";sign", "bogus;sign", "none;expr:((g+1)**64)**64", "(;)"]:
        add([*curve, "--compare", c])
    for vary in ["width", "widths", "ridge", "bogus", ""]:
        add(_set(curve, "--vary", vary))
    for path in ["", "/nonexistent-rfq-dir/x.csv", ".", "/dev/full", "a" * 300 + ".csv", "nope/", "c.csv"]:
        add(_set(curve, "--out", path))
        add([*curve, "--plot", path])
    # validate (tiny sizes; the hostile value replaces one option)
    for opt, values in {
        "--input-dim": ["1e999999999", "-1", "abc", "1000000", ""],
        "--trials": ["0", "-1", "1", "abc", "1e999999999", "2.5"],
        "--test-samples": ["0", "-5", "1e999999999"],
        "--seed": ["abc", "-1", "1e999999999", "9e29"],
        "--ridge": ["-1", "nan", "1e999999999"],
        "--samples": ["1e999999999", "0"],
        "--grid": ["", "nan", "1e999999999", "-1"],
        "--activations": ["Max(u,0.1*u)", "((u+1)**64)**64", "__import__('os').system('touch {marker}')"],
        "--quantizers": ["none,expr:sign(g)*Min(abs(g),1)", "bogus", "expr:g**2"],
        "--widths": ["0", "1e999999999", "30,"],
        "--out": ["", "/dev/full", "/dev/null/x", "existing-file"],
    }.items():
        for v in values:
            add(_set(VALIDATE, opt, v))
    # demo: only inputs it must refuse before simulating
    for opt, values in {
        "--trials": ["0", "-1", "abc", "", "1e999999999", "2.5"],
        "--seed": ["abc", "1e999999999", ""],
        "--out": ["", "existing-file", "/dev/null/x"],
    }.items():
        for v in values:
            add(["demo", opt, v])
    # bench (PyTorch is imported per case: a handful only)
    for opt, v in [
        ("--layers", "0"),
        ("--layers", "100000000"),
        ("--widths", "200000"),
        ("--seed", "9e29"),
        ("--min-sample-ms", "inf"),
        ("--json", "/nonexistent-rfq-dir/x.json"),
    ]:
        add(_set(BENCH, opt, v))
    # spectrum, phase, validate-spectrum and the convex-loss options
    spec = ["spectrum", "--input-dim", "100", "--widths", "200", "--activations", "tanh", "--points", "60"]
    for opt, v in [
        ("--points", "0"),
        ("--points", "1e999999999"),
        ("--digits", "999"),
        ("--samples", "-3"),
        ("--layers", "7"),
        ("--layers", "__import__('os')"),
        ("--plot", "/nonexistent-rfq-dir/s.png"),
        ("--activations", "__import__('os').system('touch {marker}')"),
    ]:
        add(_set(spec, opt, v) if opt in spec else [*spec, opt, v])
    phase = [
        "phase",
        "--input-dim",
        "100",
        "--widths",
        "200",
        "--activations",
        "tanh",
        "--ridge",
        "1e-2",
        "--x",
        "samples:0.5:2:5",
        "--y",
        "width:0.5:2:5",
        "--out",
        "m.npz",
    ]
    for opt, v in [
        ("--x", "samples:0.5:2:1e999999999"),
        ("--x", "bogus:1:2:3"),
        ("--y", "width:log:-1:2:5"),
        ("--x", "samples:0.5:2:100000"),
        ("--y", "samples:0.5:2:5"),
        ("--out", "/nonexistent-rfq-dir/m.npz"),
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
    for opt, v in [
        ("--trials", "0"),
        ("--samples", "1e999999999"),
        ("--input-dim", "abc"),
        ("--out", "existing-file"),
        ("--quantizers", "expr:__import__('os')"),
    ]:
        add(_set(vspec, opt, v) if opt in vspec else [*vspec, opt, v])
    for extra in (
        ["--loss", "hinge", "--ridge", "0"],
        ["--loss", "logistic", "--labels", "sign", "--target", "cos"],
        ["--loss", "exec"],
        ["--labels", "eval"],
    ):
        add(["predict", *SMALL, *extra])
    return cases


def _api_cases():
    cases = []

    def add(name, *args):
        cases.append(("api", (name, *args)))

    for p in _payloads("u") + _in_process_payloads("u"):
        add("get_activation", p)
    for p in _payloads("g") + _in_process_payloads("g"):
        add("get_quantizer", "expr:" + p)
    for p in _payloads("g")[:20]:
        add("piecewise_levels", p)
        add("piecewise_breaks", p)
    for x in EXPLODING[:20]:
        add("coefficients", x, "1")
    for v in HUGE + ["-1", "0", "1e-24"]:
        add("coefficients", "relu", v)
        add("coefficients", "sin", v)
        add("exact_coefficients", "relu", v)
        add("predict_size", v)
        add("predict_ridge", v)
    for bad in ["none", "list", "tuple-of-lists", "bool", "dict"]:
        add("deeprf_widths", bad)
    add("sweep_vary", "bogus")
    add("propagate", "((u+1)**64)**64")
    add("in_process_cli", ("coefficients", "--activation", "u" * 1_000_000))
    add("in_process_cli", ("coefficients", "--activation", "tanh(u)\x00"))
    add("in_process_cli", ("curve", *SMALL, "--vary", "samples", "--grid", "1", "--out", "c\x00.csv"))
    return cases


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
    from rfq_theory.coefficients import coefficients, exact_coefficients  # the functions, not the submodule

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
    if name == "in_process_cli":
        from rfq_theory.cli import main

        code = main(list(args[0]))
        if code not in (0, 1, 2, 3):
            raise RuntimeError(f"exit code {code}")
        return code
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
    """A returned number is real and not NaN (infinity is allowed: the interpolation threshold)."""
    for x in _numbers_in(value):
        text = str(x)
        if re.search(r"\bI\b|\bnan\b|\bzoo\b|\bj\b|[0-9]j\b", text, re.IGNORECASE):
            raise RuntimeError(f"returned a complex or NaN number: {text[:80]}")


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
    from rfq_theory.coefficients import coefficients
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
        os.environ["MPLBACKEND"] = "Agg"
        kind, args = case
        marker = str(Path(folder) / MARKER_NAME)
        args = tuple(a.replace("{marker}", marker) if isinstance(a, str) else a for a in args)
        if kind == "cli":
            from rfq_theory.cli import main

            code = main(list(args))
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
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - start
            if not done and elapsed > TIME_LIMIT:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                results[case] = {"timeout": True, "elapsed": elapsed, "folder": folder}
                del running[pid]
            elif done:
                results[case] = {
                    "timeout": False,
                    "elapsed": elapsed,
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
        f"{r['elapsed']:7.2f} s  {'TIMEOUT' if r['timeout'] else r.get('code')}  {_case_id(c)}  "
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


def _check(result, kind):
    assert not result["timeout"], f"did not end within {TIME_LIMIT:.0f} s"
    assert result["signal"] is None, f"killed by signal {result['signal']} (memory bound?)"
    err = result["stderr"]
    assert "Traceback" not in err, err[-1500:]
    assert result["code"] in (0, 1, 2, 3), (result["code"], err[-500:])
    lines = _error_lines(err)
    assert len(lines) <= 1, err[-1500:]
    if kind == "cli" and result["code"] in (2, 3):
        assert len(lines) == 1 and re.match(r"^rfq( [a-z-]+)?: error: ", lines[0]), err[-500:]
    assert not (result["folder"] / MARKER_NAME).exists(), "an injection payload ran code"


@pytest.mark.parametrize("case", ALL_CASES, ids=[_case_id(c) for c in ALL_CASES])
def test_hostile_input(case, sweep_results):
    results, _ = sweep_results
    _check(results[case], case[0])


def test_hostile_sweep_size():
    kinds = {k: sum(1 for c in ALL_CASES if c[0] == k) for k in ("cli", "api")}
    commands = {c[1][0] for c in ALL_CASES if c[0] == "cli"}
    assert kinds["cli"] >= 300 and kinds["api"] >= 100, kinds
    assert {
        "coefficients",
        "layers",
        "list",
        "predict",
        "theorem",
        "curve",
        "validate",
        "demo",
        "bench",
        "spectrum",
        "phase",
        "validate-spectrum",
    } <= commands


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
    ["predict", *_set(SMALL, "--input-dim", "1e999999999")],
    ["predict", *SMALL, "--quantizers", "expr:sign(g)*Min(abs(g),1)"],
    ["layers", "--activations", "tanh,[u for u in (1,)]"],
    ["curve", *SMALL, "--vary", "samples", "--grid", "1", "--out", "/dev/full"],
    ["theorem", *SMALL, "--digits", "abc"],
]


def _limit_memory():
    limit = 3 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


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
            timeout=TIME_LIMIT,
            preexec_fn=_limit_memory,
            env=dict(os.environ, MPLBACKEND="Agg"),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not end within {TIME_LIMIT:.0f} s")
    result = {
        "timeout": False,
        "signal": None if proc.returncode >= 0 else -proc.returncode,
        "code": proc.returncode,
        "stderr": proc.stderr,
        "stdout": proc.stdout,
        "folder": tmp_path,
        "elapsed": time.monotonic() - start,
    }
    _check(result, "cli")
    assert set(os.listdir(tmp_path)) <= {"c.csv"}
