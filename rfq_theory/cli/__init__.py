"""Command-line interface: ``rfq <command>`` (also ``python -m rfq_theory``).

The theory commands live in this package (``coefficients``, ``layers``,
``list``, ``predict``, ``theorem``, ``curve``, ``scaling``); other installed packages add
theirs through the ``rfq.commands`` entry-point group (the ``validation``
package registers ``validate``, ``demo`` and ``bench``), so the theory
package never imports them. A plugin that fails to load or to register, or
that redefines an existing command, is left out with one warning line
``rfq: warning: plugin '<name>' ...``; the other commands keep working. Every command calls the same library functions as
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
THEORY_COMMANDS = ("coefficients", "predict", "curve", "spectrum", "phase", "scaling")

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


def _warn_plugin(ep, what, exc) -> None:
    """One warning line naming the plugin whose commands are left out."""
    detail = f"{type(exc).__name__}: {_one_line(exc, 200)}" if isinstance(exc, BaseException) else exc
    print(
        f"rfq: warning: plugin {ep.name!r} ({ep.value}) {what}, its commands are left out ({detail})", file=sys.stderr
    )


def _entry_points():
    """Entry points of the group ``rfq.commands``, sorted by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def _plugin_registrars():
    """``(entry point, register)`` of installed packages (entry points ``rfq.commands``).

    A plugin that fails to import (any exception, a syntax error, even
    ``sys.exit``) or whose object is not callable is left out with one
    warning line on standard error; the other commands keep working.
    """
    out = []
    for ep in _entry_points():
        try:
            register = ep.load()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin never breaks rfq
            _warn_plugin(ep, "failed to load", exc)
            continue
        if not callable(register):
            _warn_plugin(ep, "is not a register function", f"got {type(register).__name__}")
            continue
        out.append((ep, register))
    return out


def _register_plugin(ep, register, sub) -> None:
    """Run a plugin's ``register(sub)``; on failure remove what it added and warn.

    A command name that is already taken is refused (the earlier command keeps it).
    """
    before = dict(sub.choices)
    before_actions = list(sub._choices_actions)
    try:
        register(sub)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin never breaks rfq
        _restore(sub, before, before_actions)
        _warn_plugin(ep, "failed to register", exc)
        return
    clash = [name for name in before if sub.choices.get(name) is not before[name]]
    if clash:
        _restore(sub, before, before_actions)
        _warn_plugin(ep, "redefines existing commands", ", ".join(sorted(clash)))


def _restore(sub, before, before_actions) -> None:
    sub.choices.clear()
    sub.choices.update(before)
    sub._choices_actions[:] = before_actions


def build_parser():
    """The ``rfq`` argument parser, theory commands and installed plugin commands."""
    from importlib import import_module

    from .. import __version__

    parser = Parser(prog="rfq", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"rfq-theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)
    for name in THEORY_COMMANDS:
        import_module(f"{__name__}.{name}").register(sub)
    for ep, register in _plugin_registrars():
        _register_plugin(ep, register, sub)
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
