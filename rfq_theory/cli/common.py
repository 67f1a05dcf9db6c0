"""Shared pieces of the ``rfq`` command line: the parser class, the one list
and grid syntax every command uses, model options, output helpers.

This module is imported on every ``rfq`` call, so it imports nothing heavy
(no SymPy, mpmath, NumPy) at module level.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

__all__ = [
    "EXIT_INPUT",
    "EXIT_SOLVER",
    "UsageError",
    "Parser",
    "split_list",
    "parse_grid",
    "add_model_arguments",
    "model_from_args",
    "fmt",
    "check_output_path",
    "note",
    "same_file",
    "short_repr",
    "names",
    "ACTIVATION_HELP",
    "QUANTIZER_HELP",
    "HelpFormatter",
]

EXIT_INPUT = 2
EXIT_SOLVER = 3

#: help text of every activation option
ACTIVATION_HELP = (
    "a built-in name (see 'rfq list'), name:param such as leaky_relu:0.1, or an expression in u such as 'u*tanh(u)'"
)
#: help text of every quantizer option
QUANTIZER_HELP = "none, sign, sign-scaled, ternary:t, uniform:b[:clip] or expr:<expression in g> (see 'rfq list')"


class UsageError(Exception):
    """A command-line usage error (one line, exit code 2)."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps prose paragraphs of descriptions and epilogs to the terminal
    width; keeps paragraphs with indented lines (examples) exactly as written."""

    def _fill_text(self, text, width, indent):
        out = []
        for para in textwrap.dedent(text).strip("\n").split("\n\n"):
            lines = para.splitlines()
            if any(line[:1].isspace() for line in lines) or any(line.endswith(":") for line in lines[:1]):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out) + "\n"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line and exit code 2.

    Prose in descriptions and epilogs is wrapped; example blocks print as
    written.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: error: {message}")


def split_list(text, name):
    """Split a comma-separated option value into items.

    Commas inside parentheses belong to the item (``Max(u,0.1*u)`` is one
    activation), so this is the one list syntax of every command.

    >>> split_list("tanh, Max(u,0.1*u)", "activations")
    ['tanh', 'Max(u,0.1*u)']
    """
    from ..checks import InputError

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


def parse_grid(text: str, name="grid"):
    """A grid of floats: ``a,b,c`` or ``start:stop:num`` (linear) or ``start:stop:num:log``."""
    import math

    import numpy as np

    from ..checks import InputError

    text = str(text).strip()
    usage = f"--{name} must be 'a,b,c' or 'start:stop:num[:log]', got {text!r}"
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] not in ("log", "lin")):
            raise InputError(usage)
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise InputError(usage) from None
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise InputError(f"--{name}: ends must be finite numbers, got {text!r}")
        if num < 1 or num > 100000:
            raise InputError(f"--{name}: number of points must be between 1 and 100000, got {num}")
        if len(parts) == 4 and parts[3] == "log":
            if start <= 0 or stop <= 0:
                raise InputError(f"--{name}: a log grid needs positive ends, got {text!r}")
            return [float(x) for x in np.geomspace(start, stop, num)]
        return [float(x) for x in np.linspace(start, stop, num)]
    out = []
    for item in split_list(text, name):
        try:
            value = float(item)
        except ValueError:
            raise InputError(f"--{name} values must be numbers, got {item!r}") from None
        if not math.isfinite(value):
            raise InputError(f"--{name} values must be finite numbers, got {item!r}")
        out.append(value)
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


def model_from_args(args):
    """The :class:`~rfq_theory.model.DeepRF` described by :func:`add_model_arguments` options."""
    from ..model import DeepRF

    widths = split_list(args.widths, "widths")
    activations = split_list(args.activations, "activations")
    quantizers = split_list(args.quantizers, "quantizers")
    return DeepRF(args.input_dim, tuple(widths), tuple(activations), tuple(quantizers))


def short_repr(text, limit=80):
    """``repr(text)``, cut to ``limit`` characters (an error message stays one short line)."""
    r = repr(str(text))
    return r if len(r) <= limit else f"{r[: limit - 20]}...' ({len(str(text))} characters)"


def names(items):
    """Display names of activations or quantizers given as objects or spec strings."""
    return [getattr(x, "name", None) or str(x) for x in items]


def model_header(args, model):
    """The first line of a command's text report: the model as the user gave it."""
    return (
        f"deep RF: d={args.input_dim}, widths={','.join(map(str, model.widths))}, "
        f"activations={','.join(names(model.activations))}, quantizers={','.join(names(model.quantizers))}"
    )


def prediction_settings(args, model, ridge_text, digits):
    """The settings of a ``predict``-like command as JSON fields (numbers as given, as text)."""
    return {
        "input_dim": args.input_dim,
        "widths": [str(w) for w in model.widths],
        "activations": names(model.activations),
        "quantizers": names(model.quantizers),
        "samples": args.samples,
        "ridge": ridge_text,
        "noise": args.noise,
        "target": args.target,
        "digits": digits,
        "path": "float" if digits is None else "mpmath",
    }


def fmt(x, digits):
    """A number as text with ``digits`` significant digits.

    ``-`` for None and ``0`` for an exact zero (which has no significant digits).
    """
    from ..checks import format_number

    if x is None:
        return "-"
    if not isinstance(x, str) and x == 0:
        return "0"
    return format_number(x, digits)


def check_output_path(path, name, suffix=None):
    """Check that ``path`` can be written as a file before any work is done.

    Returns the path the command writes: ``path`` itself, or ``path + suffix``
    when ``path`` has no suffix and does not exist yet (``--plot fig`` writes
    ``fig.png``). Raises :class:`~rfq_theory.checks.InputError` naming the
    option when the path is empty, a folder, inside a folder that does not
    exist, or not writable.
    """
    from ..checks import InputError

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


#: From these sizes on a command says up front, on standard error, that the work is slow or large.
SLOW_SPECTRUM_DIGITS = 100
SLOW_GLM_DIGITS = 40
LARGE_MAP_POINTS = 10**6


def note(command: str, text: str) -> None:
    """One line ``rfq <command>: note: <text>`` on standard error, flushed at once."""
    print(f"rfq {command}: note: {text}", file=sys.stderr, flush=True)


def note_slow_digits(command: str, digits, threshold: int, what: str) -> None:
    """Say before the work starts that solving ``what`` at ``digits`` digits is slow."""
    if digits is not None and digits >= threshold:
        note(
            command,
            f"{what} at {digits} digits is slow: the cost grows steeply with the digits and it prints "
            "nothing until it ends (fewer digits, or none for the float path, are much faster)",
        )


def note_large_map(command: str, points: int) -> None:
    """Say before a large phase map starts how many points it solves and what its arrays hold."""
    if points >= LARGE_MAP_POINTS:
        mb = points * 8 * 2 / 2**20  # the map values and their thresholds, float64 each
        note(
            command,
            f"solving {points:,} points; the map's arrays alone take {mb:,.0f} MiB and the solver "
            "needs several times that; progress is shown with --progress",
        )


def same_file(a, b) -> bool:
    """Whether two output paths name the same file (also through links)."""
    return os.path.realpath(a) == os.path.realpath(b)


def stdout_closed() -> int:
    """Exit quietly when the reader of standard output went away (``| head``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 0
