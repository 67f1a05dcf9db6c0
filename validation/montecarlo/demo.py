"""``rfq demo``: a learning curve of a 2-layer model, theory vs simulation, in seconds.

Model: ``d = 300``, widths ``(600, 450)``, activations ``(tanh, relu)``,
ridge ``1e-2``, noise ``0.1``, linear target.  The theory curve (many
points, each a fast :func:`rfq_theory.predict`) is drawn for full
precision, ``sign`` and ``sign-scaled`` weights; Monte Carlo networks are
simulated at a handful of sample sizes and compared with the rule of
:mod:`validation.montecarlo.tolerance`.  Writes ``demo.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rfq_theory import predict

from .compare import ValidationConfig, format_table, run_validation

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
    """Theory learning curves (test and train error vs ``n/d``) for every variant."""
    xs = np.linspace(lo, hi, points)
    out = {}
    for var in config.variants:
        model = config.model(var)
        preds = [predict(model, x * config.input_dim, config.ridge, config.noise, config.target) for x in xs]
        out[var] = {"x": list(map(float, xs)), "test": [float(p.test_error) for p in preds],
                    "train": [float(p.train_error) for p in preds]}
    return out


def run_demo(args) -> int:
    """Entry point of ``rfq demo``: 0 when every Monte Carlo point passes, 1 otherwise, 2 on bad input."""
    start = time.perf_counter()
    try:
        config = ValidationConfig(**dict(DEMO_CONFIG, seed=args.seed, trials=args.trials if args.trials is not None else DEMO_CONFIG["trials"]))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as exc:
        print(f"rfq demo: error: {exc}", file=sys.stderr)
        return 2
    report = run_validation(config, out=None, progress=not args.no_progress, figure=False)
    from .plotting import plot_comparison

    fig = out / "demo.png"
    plot_comparison(report["rows"], demo_curves(config), "samples", fig,
                    "rfq demo: d=300, widths (600, 450), tanh/relu, ridge 1e-2, noise 0.1 "
                    "(sign and full precision share one theory curve)")
    report["files"] = {"figure": str(fig)}
    report["elapsed_s"] = time.perf_counter() - start
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_table(report))
        print(f"figure: {fig}   ({report['elapsed_s']:.1f} s)")
    return 0 if report["summary"]["verdict"] == "pass" else 1
