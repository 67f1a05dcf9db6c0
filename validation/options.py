"""From command-line options to a validation configuration, and the command driver.

One path for ``rfq validate`` (ridge and convex losses) and ``rfq
validate-spectrum``: the model options are parsed by the same functions
(:func:`model_fields`), the grid axis has one definition (:data:`AXES`),
and :func:`run_command` runs any :class:`~validation.runner.Experiment`
with the same execution options (``--workers``, ``--scheduler``,
``--resume``, ``--out``), the same one-line errors (exit 2), and an exit
code that follows the verdict (0 only for a pass).

Light to import: the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from rfq_theory.axes import RATIO_AXES, VARY_CHOICES

__all__ = [
    "Axis",
    "AXES",
    "axis_help",
    "add_execution_arguments",
    "model_fields",
    "add_input_options",
    "input_fields",
    "check_execution",
    "run_command",
]


@dataclass(frozen=True)
class Axis:
    """One grid axis of ``rfq validate``: the name, how a grid value ``g`` is read, and the rule.

    ``scale`` is ``ratio`` (a size ``round(g d)``, ``g`` a ratio to the input
    dimension), ``multiplier`` (every width times ``g``) or ``absolute``
    (``g`` itself).
    """

    name: str
    scale: str
    rule: str


#: The axes a validation grid can vary (the names of :data:`rfq_theory.axes.VARY_CHOICES`).
AXES = {
    "samples": Axis("samples", "ratio", "n = round(g d)"),
    "width": Axis("width", "ratio", "last width k_L = round(g d), the others kept"),
    "widths": Axis("widths", "multiplier", "every width k_l = round(g k_l)"),
    "ridge": Axis("ridge", "absolute", "lambda = g"),
}
assert tuple(AXES) == VARY_CHOICES
assert tuple(a.name for a in AXES.values() if a.scale == "ratio") == RATIO_AXES


def axis_help() -> str:
    """Help text of ``--vary``, built from :data:`AXES`."""
    return "what the grid varies: " + "; ".join(f"{a.name} ({a.rule})" for a in AXES.values())


def add_execution_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out``, ``--resume``, ``--workers``, ``--scheduler``, ``--json``, ``--no-plot`` and ``--no-progress``."""
    a = parser.add_argument
    a("--out", type=str, default=default_out, help=f"output folder (default ./{default_out})")
    a("--resume", action="store_true", help="continue: reuse the draws and rows of this configuration in OUT")
    a(
        "--workers",
        type=str,
        default="1",
        help="run draws on a local Dask cluster of N single-threaded processes (default 1: in this process)",
    )
    a(
        "--scheduler",
        type=str,
        default=None,
        metavar="ADDRESS",
        help="run draws on an existing Dask scheduler, e.g. tcp://host:8786",
    )
    a("--json", action="store_true", help="print the report as JSON instead of a table")
    a("--no-plot", action="store_true", help="skip the figure (the other files are written as usual)")
    a("--no-progress", action="store_true", help="hide the progress bar")


def model_fields(args) -> dict:
    """The model options shared by every validation command, as configuration fields.

    ``input_dim``, ``widths``, ``activations`` and ``variants`` (the
    quantizers, one network each) from ``--input-dim``, ``--widths``,
    ``--activations`` and ``--quantizers`` (the list syntax of
    :func:`rfq_theory.options.split_list`), plus ``samples``, ``trials`` and
    ``seed`` as given; the configuration classes check the values.
    """
    from rfq_theory.options import split_list

    return {
        "input_dim": args.input_dim,
        "widths": tuple(split_list(args.widths, "widths")),
        "activations": tuple(split_list(args.activations, "activations")),
        "variants": tuple(split_list(args.quantizers, "quantizers")),
        "samples": args.samples,
        "trials": args.trials,
        "seed": args.seed,
    }


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--input-spectrum`` and ``--teacher`` (:func:`rfq_theory.options.add_input_arguments`) and ``--basis``."""
    from rfq_theory.options import add_input_arguments

    add_input_arguments(parser)
    parser.add_argument(
        "--basis",
        choices=("axis", "rotated"),
        default="axis",
        help="where the input covariance is diagonal: axis (the input coordinates, default) or rotated "
        "(a Haar-random basis drawn per draw); no effect for the identity spectrum",
    )


def input_fields(args) -> dict:
    """``input_spectrum``, ``teacher`` and ``basis`` of :func:`add_input_options` as configuration fields."""
    return {
        "input_spectrum": getattr(args, "input_spectrum", "identity"),
        "teacher": getattr(args, "teacher", "flat"),
        "basis": getattr(args, "basis", "axis"),
    }


def _execution(args) -> tuple[int, str | None]:
    from rfq_theory.checks import InputError, check_scalar

    from .montecarlo.executors import check_address, require_dask

    workers = check_scalar(getattr(args, "workers", 1), "workers", int, min_val=1, max_val=4096)
    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and workers > 1:
        raise InputError("give --workers or --scheduler, not both")
    if workers > 1 or scheduler is not None:
        require_dask()
        if scheduler is not None:
            scheduler = check_address(scheduler)
    return workers, scheduler


def check_execution(args, prog: str) -> int | None:
    """Check ``--workers``/``--scheduler`` before the heavy imports of a command: 2 (one line) or ``None``.

    A wrong scheduler address, or a port that is not a Dask scheduler, is
    refused within seconds (:func:`~validation.montecarlo.executors.probe_scheduler`).
    """
    from rfq_theory.checks import InputError

    try:
        _, scheduler = _execution(args)
        if scheduler is not None:
            from .montecarlo.executors import probe_scheduler

            probe_scheduler(scheduler, timeout=3.0)
    except InputError as exc:
        print(f"{prog}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return None


def run_command(args, build, prog: str, after=None) -> int:
    """Run the experiment ``build(args)`` as command ``prog``; print the table; return the exit code.

    0: the verdict is a pass; 1: it is not; 2: bad input (one line on
    stderr, before any work); 3: a theory solver did not converge.
    ``after(experiment, report)`` may add to the report before it is printed.
    """
    from rfq_theory.checks import InputError

    from .montecarlo.records import check_out_dir, dumps
    from .runner import run_experiment

    def err(msg: str, code: int = 2) -> int:
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return code

    try:
        workers, scheduler = _execution(args)
        experiment = build(args)
        check_out_dir(args.out)
        report = run_experiment(
            experiment,
            out=args.out,
            resume=args.resume,
            progress=not args.no_progress,
            figure=not getattr(args, "no_plot", False),
            workers=workers,
            scheduler=scheduler,
            log=lambda m: print(m, file=sys.stderr),
        )
        if after is not None:
            after(experiment, report)
    except ArithmeticError as exc:  # a theory solver that did not converge
        return err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 3)
    except (InputError, ValueError, TypeError) as exc:  # ActivationError, QuantizerError are ValueErrors
        return err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return err(f"cannot write{where}: {exc.strerror or exc}")
    if args.json:
        print(dumps(report, indent=1))
    else:
        print(experiment.format(report))
        print(f"files: {', '.join(report['files'].values())}")
    return 0 if report["summary"]["verdict"] == "pass" else 1
