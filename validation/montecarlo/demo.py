"""``rfq demo``: a learning curve of a 2-layer model, theory vs simulation, in seconds.

Model: ``d = 300``, widths ``(600, 450)``, activations ``(tanh, relu)``,
ridge ``1e-2``, noise ``0.1``, linear target.  The theory curve (many
points, each a fast :func:`rfq_theory.predict`) is drawn for full
precision, ``sign`` and ``sign-scaled`` weights; Monte Carlo networks are
simulated at a handful of sample sizes and compared with the rule of
:mod:`validation.montecarlo.tolerance`.  The terminal output names the model first.  Writes ``demo.png`` to ``--out``.
"""

from __future__ import annotations

import sys
import time

from rfq_theory.checks import check_scalar

from .compare import ValidationConfig, describe_model, format_table, run_validation, theory_curves
from .records import check_out_dir, dumps

__all__ = ["DEMO_CONFIG", "run_demo", "demo_curves"]

#: The demo's configuration (MC at n/d = 0.5, 1, 2, 3; n/d = 1.5 is the width of the last layer).
DEMO_CONFIG = dict(
    input_dim=300,
    widths=(600, 450),
    activations=("tanh", "relu"),
    variants=("none", "sign", "sign-scaled"),
    ridge=1e-2,
    noise=0.1,
    vary="samples",
    grid=(0.5, 1.0, 2.0, 3.0),
    trials=8,
    test_samples=2000,
)


def demo_curves(config: ValidationConfig, lo: float = 0.05, hi: float = 4.0, points: int = 200) -> dict:
    """Theory learning curves (test and train error vs ``n/d``) for every variant.

    The same computation as :func:`validation.montecarlo.compare.theory_curves`, over ``[lo, hi]``.
    """
    return theory_curves(config, points=points, lo=lo, hi=hi)


def run_demo(args) -> int:
    """Entry point of ``rfq demo``: 0 when every Monte Carlo point passes, 1 otherwise, 2 on bad input."""
    start = time.perf_counter()
    try:
        seed = check_scalar(args.seed, "seed", int, min_val=0)
        trials = DEMO_CONFIG["trials"] if args.trials is None else check_scalar(args.trials, "trials", int, min_val=2)
        config = ValidationConfig(**dict(DEMO_CONFIG, seed=seed, trials=trials))
        out = check_out_dir(args.out)
    except (ValueError, TypeError) as exc:
        print(f"rfq demo: error: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        print(f"model: {describe_model(config)}; quantizers {', '.join(config.labels)}", flush=True)
    report = run_validation(config, out=None, progress=not args.no_progress, figure=False)
    from .compare import figure_title
    from .plotting import plot_comparison

    fig = out / "demo.png"
    try:
        plot_comparison(
            report["rows"],
            demo_curves(config),
            "samples",
            fig,
            "rfq demo (sign and full precision share one theory curve)\n" + figure_title(config, report),
        )
    except OSError as exc:
        print(f"rfq demo: error: cannot write {str(fig)!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    report["files"] = {"figure": str(fig)}
    report["elapsed_s"] = time.perf_counter() - start
    if args.json:
        print(dumps(report, indent=1))
    else:
        print(format_table(report))
        print(f"figure: {fig}   ({report['elapsed_s']:.1f} s)")
    return 0 if report["summary"]["verdict"] == "pass" else 1
