"""Public option helpers shared by the ``rfq`` commands and the validation package.

The one list syntax (commas inside parentheses belong to an item), the one
grid syntax, the model options and their conversion to a
:class:`~rfq_theory.model.DeepRF`, and the check that an output file can be
written before any work starts.  Light to import: nothing heavy (SymPy,
mpmath, NumPy) is loaded at module level.
"""

from __future__ import annotations

import os

__all__ = [
    "split_list",
    "parse_grid",
    "read_float",
    "add_model_arguments",
    "model_from_args",
    "add_input_arguments",
    "short_repr",
    "check_output_path",
    "same_file",
    "ACTIVATION_HELP",
    "QUANTIZER_HELP",
]

#: help text of every activation option
ACTIVATION_HELP = (
    "a built-in name (see 'rfq list'), name:param such as leaky_relu:0.1, or an expression in u such as 'u*tanh(u)'"
)
#: help text of every quantizer option
QUANTIZER_HELP = "none, sign, sign-scaled, ternary:t, uniform:b[:clip] or expr:<expression in g> (see 'rfq list')"


def split_list(text, name):
    """Split a comma-separated option value into items.

    Commas inside parentheses belong to the item (``Max(u,0.1*u)`` is one
    activation), so this is the one list syntax of every command.

    >>> split_list("tanh, Max(u,0.1*u)", "activations")
    ['tanh', 'Max(u,0.1*u)']
    """
    from .checks import InputError

    items, depth, lowest, cur = [], 0, 0, []
    for ch in str(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            lowest = min(lowest, depth)
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur).strip())
    if depth != 0 or lowest < 0:
        raise InputError(f"--{name}: unbalanced parentheses in {short_repr(text)}")
    if any(not t for t in items):
        raise InputError(f"--{name} must be a comma-separated list of non-empty items, got {short_repr(text)}")
    return items


def read_float(text: str, name: str) -> float:
    """A number given as text, read by :func:`rfq_theory.checks.read_decimal` (ASCII decimal syntax,
    bounded exponent), as the nearest float; beyond the float range it is an :class:`InputError`."""
    from .checks import InputError, read_decimal

    value = read_decimal(str(text), name)
    try:
        return float(value)
    except OverflowError:
        raise InputError(f"{name} = {short_repr(text)} is too large for a float (|x| < 1.8e308)") from None


def parse_grid(text: str, name="grid"):
    """A grid of floats: ``a,b,c`` or ``start:stop:num`` (linear) or ``start:stop:num:log``.

    Every number is read by :func:`read_float` (the one reader of numbers given as text).
    """
    import numpy as np

    from .checks import InputError

    text = str(text).strip()
    usage = f"--{name} must be 'a,b,c' or 'start:stop:num[:log]', got {text!r}"
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
            raise InputError(usage)
        start, stop = read_float(parts[0], f"--{name} start"), read_float(parts[1], f"--{name} stop")
        count = read_float(parts[2], f"--{name} number of points")
        if not count.is_integer():
            raise InputError(f"--{name}: number of points must be a whole number, got {parts[2].strip()!r}")
        num = int(count)
        if num < 1 or num > 100000:
            raise InputError(f"--{name}: number of points must be between 1 and 100000, got {num}")
        if len(parts) == 4 and parts[3] == "log":
            if start <= 0 or stop <= 0:
                raise InputError(f"--{name}: a log grid needs positive ends, got {text!r}")
            return [float(x) for x in np.geomspace(start, stop, num)]
        return [float(x) for x in np.linspace(start, stop, num)]
    out = []
    for item in split_list(text, name):
        out.append(read_float(item, f"--{name} value"))
    return out


def add_model_arguments(p, samples_required=True):
    """Options that describe a deep RF model and its data (shared by predict, theorem, curve)."""
    p.add_argument("--input-dim", required=True, metavar="D", help="input dimension d (any positive real)")
    p.add_argument(
        "--widths",
        required=True,
        metavar="K1,K2,...",
        help="comma-separated widths k_1,...,k_L (positive reals); their number sets the depth L",
    )
    p.add_argument(
        "--activations",
        required=True,
        metavar="SPEC[,SPEC...]",
        help="one activation for all layers or one per layer (commas inside parentheses belong to the "
        "expression): " + ACTIVATION_HELP,
    )
    p.add_argument(
        "--quantizers",
        default="none",
        metavar="SPEC[,SPEC...]",
        help="one weight quantizer for all layers or one per layer (default none): " + QUANTIZER_HELP,
    )
    add_input_arguments(p)
    p.add_argument("--samples", required=samples_required, metavar="N", help="number of training samples n")
    p.add_argument(
        "--ridge", default="0", metavar="LAMBDA", help="ridge lambda >= 0 (default 0: minimum-norm interpolator)"
    )
    p.add_argument("--noise", default="0", metavar="DELTA", help="label-noise variance Delta >= 0 (default 0)")
    p.add_argument(
        "--target",
        default="linear",
        metavar="SPEC",
        help="target function f* of the labels, given like an activation (default linear)",
    )


def add_input_arguments(p):
    """``--input-spectrum`` and ``--teacher``: the covariance of ``x`` and the teacher's profile."""
    p.add_argument(
        "--input-spectrum",
        default="identity",
        metavar="SPEC",
        help="eigenvalues of the input covariance: identity (default), power:A (lambda_i ~ i^-A, mean 1), "
        "spiked:R:V (R eigenvalues V, the rest fill the mean to 1) or file:PATH (.npy or text, d values "
        "as given; sets d)",
    )
    p.add_argument(
        "--teacher",
        default="flat",
        metavar="SPEC",
        help="squared teacher coefficients in the eigenbasis of the input covariance: flat (default), "
        "power:B (~ rank^-B, largest eigenvalue first) or file:PATH; rescaled to unit signal variance",
    )


def model_from_args(args):
    """The :class:`~rfq_theory.model.DeepRF` described by :func:`add_model_arguments` options."""
    from .model import DeepRF

    widths = split_list(args.widths, "widths")
    activations = split_list(args.activations, "activations")
    quantizers = split_list(args.quantizers, "quantizers")
    spectrum = getattr(args, "input_spectrum", "identity")
    teacher = getattr(args, "teacher", "flat")
    return DeepRF(args.input_dim, tuple(widths), tuple(activations), tuple(quantizers), spectrum, teacher)


def short_repr(text, limit=80):
    """``repr(text)``, cut to ``limit`` characters (an error message stays one short line)."""
    r = repr(str(text))
    return r if len(r) <= limit else f"{r[: limit - 20]}...' ({len(str(text))} characters)"


def check_output_path(path, name, suffix=None):
    """Check that ``path`` can be written as a file before any work is done.

    Returns the path the command writes: ``path`` itself, or ``path + suffix``
    when ``path`` has no suffix and does not exist yet (``--plot fig`` writes
    ``fig.png``). Raises :class:`~rfq_theory.checks.InputError` naming the
    option when the path is empty, a folder, inside a folder that does not
    exist, or not writable.
    """
    from .checks import InputError

    text = str(path)
    if not text.strip():
        raise InputError(f"--{name} must be a file path, got an empty string")
    if "\0" in text:
        raise InputError(f"--{name} must be a file path, got a name with a null character")
    if os.path.isdir(text) or text.endswith(os.sep) or (os.altsep and text.endswith(os.altsep)):
        raise InputError(f"--{name}: {short_repr(text)} is a folder; give a file path")
    if suffix and not os.path.splitext(text)[1] and not os.path.lexists(text):
        text += suffix
        if os.path.isdir(text):
            raise InputError(f"--{name}: {short_repr(text)} is a folder; give a file path")
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(parent):
        raise InputError(f"--{name}: folder {short_repr(parent)} does not exist")
    if os.path.exists(text) and not os.access(text, os.W_OK) or not os.access(parent, os.W_OK):
        raise InputError(f"--{name}: {short_repr(text)} is not writable")
    return text


def same_file(a, b) -> bool:
    """Whether two output paths name the same file (also through links)."""
    return os.path.realpath(a) == os.path.realpath(b)
