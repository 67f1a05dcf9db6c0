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

from ..options import (  # noqa: F401 - re-exported: the public home is rfq_theory.options
    ACTIVATION_HELP,
    QUANTIZER_HELP,
    add_model_arguments,
    check_output_path,
    model_from_args,
    parse_grid,
    same_file,
    short_repr,
    split_list,
)

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


def names(items):
    """Display names of activations or quantizers given as objects or spec strings."""
    return [getattr(x, "name", None) or str(x) for x in items]


def model_header(args, model):
    """The first line of a command's text report: the model as the user gave it."""
    head = (
        f"deep RF: d={model.input_dim if model.structured else args.input_dim}, "
        f"widths={','.join(map(str, model.widths))}, "
        f"activations={','.join(names(model.activations))}, quantizers={','.join(names(model.quantizers))}"
    )
    if model.structured:
        head += f", input spectrum={model.input_spectrum.spec}, teacher={model.teacher.spec}"
    return head


def prediction_settings(args, model, ridge_text, digits):
    """The settings of a ``predict``-like command as JSON fields (numbers as given, as text)."""
    return {
        "input_dim": str(model.input_dim) if model.structured else args.input_dim,
        "input_spectrum": model.input_spectrum.spec,
        "teacher": model.teacher.spec,
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


def stdout_closed() -> int:
    """Exit quietly when the reader of standard output went away (``| head``)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 0
