"""Command-line interface: ``rfq <command>`` (also ``python -m rfq_theory``).

The theory commands live in this package (``coefficients``, ``layers``,
``list``, ``predict``, ``theorem``, ``curve``); other installed packages add
theirs through the ``rfq.commands`` entry-point group (the ``validation``
package registers ``validate``, ``demo`` and ``bench``), so the theory
package never imports them. Every command calls the same library functions as
the Python API.

Every failure prints one line ``rfq <command>: error: ...`` on standard error
(``rfq: error: ...`` before a command is known). Exit codes: 0 success, 1 a
check that ran and failed (``rfq theorem``, a failed validation verdict) or an
internal error, 2 bad input or an unwritable path, 3 the solver did not
converge, 130 interrupted. A closed standard output (``rfq ... | head -1``)
ends the command quietly.
"""

from __future__ import annotations

import sys

from .common import EXIT_INPUT, EXIT_SOLVER, Parser, UsageError, short_repr

__all__ = ["main", "build_parser", "THEORY_COMMANDS"]

#: modules of this package whose ``register(subparsers)`` adds commands
THEORY_COMMANDS = ("coefficients", "predict", "curve", "spectrum", "phase")

ENTRY_POINT_GROUP = "rfq.commands"

DESCRIPTION = """\
Exact error predictions for one-bit quantized deep random-features models.

examples:
  rfq list                                          # activations, quantizers, syntax
  rfq coefficients --activation gelu --variance 0.7 --digits 40
  rfq predict --input-dim 1000 --widths 2000,1500 --activations tanh,relu \\
      --quantizers sign --samples 1200 --ridge 1e-3 --digits 30
  rfq demo                                          # theory vs simulation, writes demo.png

'rfq COMMAND --help' describes a command and its options.
"""


def _plugin_registrars():
    """``register`` functions of installed packages (entry points ``rfq.commands``)."""
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            out.append(ep.load())
        except ImportError as exc:  # pragma: no cover - a broken plugin install
            print(f"rfq: warning: commands of {ep.value} not available ({exc})", file=sys.stderr)
    return out


def build_parser():
    """The ``rfq`` argument parser, theory commands and installed plugin commands."""
    from importlib import import_module

    from .. import __version__

    parser = Parser(prog="rfq", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"rfq-theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    for name in THEORY_COMMANDS:
        import_module(f"{__name__}.{name}").register(sub)
    for register in _plugin_registrars():
        register(sub)
    parser.set_defaults(_subparsers=sub.choices)
    return parser


def _parse(parser, argv):
    """Parse ``argv``; unknown options are reported by the command's parser
    (``rfq predict: error: unrecognized arguments: ...``)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = getattr(args, "command", None)
        owner = args._subparsers.get(command, parser) if command else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _one_line(exc, limit=500) -> str:
    """The first line of ``str(exc)``, at most ``limit`` characters."""
    text = str(exc)
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line)} characters)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rfq`` console script; returns the exit code."""
    parser = build_parser()
    command = "rfq"
    try:
        args = _parse(parser, argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_INPUT
        command = f"rfq {args.command}"
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        from .common import stdout_closed

        return stdout_closed()
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line
        return _report(command, exc)


def _report(command, exc) -> int:
    """One line on standard error for ``exc``; the exit code."""
    from ..solver import SolverError

    if isinstance(exc, SolverError):
        print(f"{command}: error: solver: {_one_line(exc)}", file=sys.stderr)
        return EXIT_SOLVER
    if isinstance(exc, OSError):
        where = f" {short_repr(exc.filename)}" if getattr(exc, "filename", None) else ""
        print(f"{command}: error: cannot write or read{where}: {exc.strerror or _one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, MemoryError):
        print(f"{command}: error: out of memory ({_one_line(exc) if str(exc) else 'input too large'})", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, RecursionError):
        print(f"{command}: error: input nested too deeply", file=sys.stderr)
        return EXIT_INPUT
    if isinstance(exc, (ValueError, ArithmeticError, TypeError)):
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    print(f"{command}: error: internal error ({type(exc).__name__}): {_one_line(exc)}", file=sys.stderr)
    return 1
