"""Package layout: light imports, no theory -> validation dependency, fast ``rfq --help``,
the reference data in the repository, docs tracked and free of development-log language."""

import ast
import fnmatch
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("validation", "torch", "matplotlib", "tqdm", "triton")


def _python(code, timeout=120):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _loaded_after(code):
    """Top-level packages imported by ``code`` in a fresh interpreter."""
    out = _python(code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    return set(json.loads(out.splitlines()[-1]))


def test_import_rfq_theory_is_light():
    loaded = _loaded_after("import rfq_theory")
    assert not loaded & set(HEAVY + ("sympy", "mpmath", "numpy", "scipy")), loaded


@pytest.mark.slow  # a subprocess importing the whole theory API
def test_theory_api_imports_no_validation_torch_matplotlib_tqdm():
    # using the solver loads SymPy/mpmath/NumPy/SciPy, never the validation side or the plotting stack
    loaded = _loaded_after("from rfq_theory import DeepRF, predict\npredict(DeepRF(100, (200,), ('tanh',)), 150, 0.01)")
    assert not loaded & set(HEAVY), loaded


def test_rfq_help_imports_nothing_heavy():
    # plugin commands register through their light ``commands`` modules only
    out = _python(
        "import contextlib, io, sys\nfrom rfq_theory.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(out.split())
    heavy = {
        m
        for m in loaded
        if m.split(".")[0] in ("sympy", "mpmath", "numpy", "scipy", "torch", "matplotlib", "tqdm", "triton")
    }
    assert not heavy, sorted(heavy)
    allowed = {
        "validation",
        "validation.montecarlo",
        "validation.timing",
        "validation.montecarlo.commands",
        "validation.timing.commands",
        "validation.timing.bench",  # owns the bench options; standard library only at import
        "validation.machine",
        "validation.options",  # the shared validation options (argparse only at import)
        "validation.montecarlo.spectrum_commands",
        "validation.montecarlo.realdata_commands",
    }
    assert {m for m in loaded if m.split(".")[0] == "validation"} <= allowed


def test_rfq_help_is_fast():
    # the import-level guarantee is the test above; the wall-clock bound is generous so
    # that a loaded machine does not fail it (best of three, < 0.5 s on an idle machine)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "rfq_theory", "--help"], capture_output=True, text=True, timeout=60
        )
        times.append(time.perf_counter() - t0)
        assert proc.returncode == 0 and "usage: rfq" in proc.stdout
    assert min(times) < 5.0, times


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield arg.value


def test_theory_package_never_imports_validation():
    for path in sorted((ROOT / "rfq_theory").rglob("*.py")):
        bad = [m for m in _imports(path) if m.split(".")[0] == "validation"]
        assert not bad, (path, bad)


def test_cli_modules_import_nothing_heavy_at_module_level():
    heavy = {"sympy", "mpmath", "numpy", "scipy", "matplotlib", "torch", "tqdm", "validation"}
    for path in sorted((ROOT / "rfq_theory" / "cli").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not {n.split(".")[0] for n in names} & heavy, (path, names)


def test_plugin_commands_come_from_the_entry_point_group():
    from importlib.metadata import entry_points

    from rfq_theory.cli import ENTRY_POINT_GROUP, build_parser

    eps = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if not eps:
        pytest.skip("package not installed (no entry points)")
    assert eps.get("montecarlo") == "validation.montecarlo.commands:register"
    assert eps.get("timing") == "validation.timing.commands:register"
    choices = build_parser().get_default("_subparsers")
    assert {"validate", "demo", "bench"} <= set(choices)


@pytest.mark.slow  # a subprocess importing every submodule
def test_public_names_resolve_to_their_objects():
    # no public function shares its name with a submodule: importing every submodule first leaves
    # each public name the object it documents, and the modules import as modules
    out = _python(
        "import importlib, pkgutil, types\n"
        "import rfq_theory as r\n"
        "mods = [m.name for m in pkgutil.walk_packages(r.__path__, 'rfq_theory.') if '.cli' not in m.name]\n"
        "[importlib.import_module(m) for m in mods if not m.endswith(('__main__', 'testing.plugin'))]\n"
        "bad = [n for n in r.__all__ if isinstance(getattr(r, n), types.ModuleType)]\n"
        "import rfq_theory.activation_coefficients as ac, rfq_theory.spectra as sp\n"
        "print(callable(r.coefficients), callable(r.spectrum), isinstance(ac, types.ModuleType),"
        " isinstance(sp, types.ModuleType), bad)"
    )
    assert out.strip() == "True True True True []", out


# ------------------------------------------------------------------ repository


def test_reference_data_in_the_repository(reference):
    path = ROOT / "tests" / "data" / "reference_predictions.json"
    assert path.is_file()
    assert len(reference["cases"]) >= 5 and len(reference["coefficients"]) >= 5
    for case in reference["cases"]:
        assert len(case["theory"]["test_error"].replace(".", "").lstrip("0")) >= 25


def _tracked(pattern):
    try:
        out = subprocess.run(["git", "ls-files", pattern], capture_output=True, text=True, cwd=ROOT, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split() if out.returncode == 0 else None


def test_docs_are_not_ignored():
    lines = [x.strip() for x in (ROOT / ".gitignore").read_text().splitlines()]
    patterns = [x for x in lines if x and not x.startswith("#")]
    docs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert docs
    for doc in docs:
        for pat in patterns:
            assert not fnmatch.fnmatch(doc, pat.lstrip("/")) and not fnmatch.fnmatch(Path(doc).name, pat), (doc, pat)


DEV_LOG = [
    "theory notes",
    "the notes",
    "section 6 of",
    "sections 3-4",
    "shared/",
    "(issue",
    "issue ",
    "target (",
    "this round",
    "what changed",
    "was not lent",
    "session",
    "todo",
    "fixme",
]


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")) + ["../README.md"])
def test_docs_describe_the_software_not_its_history(doc):
    text = (ROOT / "docs" / doc).read_text().lower()
    found = [w for w in DEV_LOG if w in text]
    assert not found, (doc, found)


def test_readme_quick_start_is_two_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["pip install . && rfq demo", "pip install -e '.[test]' && python -m pytest"]


def test_readme_links_resolve():
    import re

    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), target


@pytest.mark.slow
def test_readme_python_example_runs_and_prints_every_digit(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = text.split("```python", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the example asks for digits=30: the printed test error carries them
    first = proc.stdout.split()[0]
    assert len(first.replace(".", "").replace("-", "").lstrip("0")) >= 29, proc.stdout
