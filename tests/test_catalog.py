"""``rfq list`` prints the registries' names from a plain-text catalog without loading SymPy."""

import subprocess
import sys

from rfq_theory import catalog
from rfq_theory.activations import _BUILTINS as ACTIVATION_BUILDERS
from rfq_theory.activations import _PARAMETERISED, get_activation
from rfq_theory.expressions import ALLOWED_FUNCTIONS
from rfq_theory.quantizers import _BUILTINS as QUANTIZER_BUILDERS
from rfq_theory.quantizers import get_quantizer


def test_catalog_names_are_the_registries_names():
    assert set(catalog.ACTIVATION_NAMES) == set(ACTIVATION_BUILDERS)
    assert set(catalog.PARAMETERISED_ACTIVATIONS) == set(_PARAMETERISED)
    assert set(catalog.QUANTIZER_NAMES) == set(QUANTIZER_BUILDERS)
    assert set(catalog.EXPRESSION_FUNCTIONS) == set(ALLOWED_FUNCTIONS)
    for name in catalog.ACTIVATION_NAMES:
        assert get_activation(name).name == name
    for name in catalog.QUANTIZER_NAMES:
        assert get_quantizer(name).name == name
    # the parameterised quantizer forms resolve with a parameter filled in
    assert get_quantizer("ternary:0.5").name == "ternary:0.5" and get_quantizer("uniform:3").name == "uniform:3"


def test_rfq_list_loads_no_sympy():
    code = (
        "import io, contextlib, sys\n"
        "from rfq_theory.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    code = main(['list'])\n"
        "heavy = sorted(m for m in ('sympy', 'mpmath', 'scipy', 'numpy') if m in sys.modules)\n"
        "print(code, heavy, 'tanh' in buf.getvalue() and 'uniform:<bits>[:<clip>]' in buf.getvalue())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 [] True", proc.stdout + proc.stderr
