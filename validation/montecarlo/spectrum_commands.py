"""``rfq validate-spectrum``: layer spectra of drawn networks against the theory.

Registered through the ``rfq.commands`` entry point; this module only
defines options (light to import), the work is imported when the command runs.
"""

from __future__ import annotations

__all__ = ["register"]

EXAMPLES = """\
examples:
  rfq validate-spectrum --input-dim 1000 --widths 2000,1500,1000 --activations tanh,relu,erf \\
      --samples 1200 --out spectra-check
  rfq validate-spectrum --input-dim 300 --widths 600,450,300 --activations relu \\
      --quantizers none,sign --samples 360 --trials 2 --out small
"""


def register(sub) -> None:
    """Add ``validate-spectrum`` to the ``rfq`` subparsers ``sub``."""
    p = sub.add_parser(
        "validate-spectrum",
        help="eigenvalues of drawn networks vs the predicted layer spectra",
        description="Draw networks at the given sizes, once per quantizer, and compare (a) the eigenvalues of "
        "the realized Gaussian-equivalent Omega_l and (b) the eigenvalues of the conjugate kernel "
        "Z_l Z_l^T / k_l of the actual nonlinear features on n samples with the predicted densities: "
        "Kolmogorov-Smirnov distance and relative errors of the first four moments per layer, pass when "
        "KS <= 10/N and the error of the j-th moment <= 5 s j/N (N the smallest dimension of the matrix's chain, "
        "s its number of random stages: l for Omega_l, l + 1 for the kernel of layer l). "
        "Rows are written to OUT/results.jsonl as they finish (--resume skips finished quantizers and "
        "trials); OUT/spectra.png shows histograms against the densities for every quantizer.",
        epilog=EXAMPLES,
    )
    p.add_argument("--input-dim", required=True, metavar="D", help="input dimension d (an integer)")
    p.add_argument("--widths", required=True, metavar="K1,K2,...", help="comma-separated integer widths")
    p.add_argument("--activations", required=True, metavar="SPEC[,SPEC...]", help="one activation or one per layer")
    p.add_argument(
        "--quantizers",
        default="none,sign,sign-scaled",
        metavar="Q1,Q2,...",
        help="quantizers to compare, one network each (default none,sign,sign-scaled); each applies to every layer",
    )
    p.add_argument("--samples", required=True, metavar="N", help="number of inputs n for the conjugate kernel")
    p.add_argument(
        "--trials",
        default="1",
        metavar="T",
        help="independent draws per quantizer (default 1); with more than one, the moment errors of the "
        "mean over the draws are printed and written to OUT/means.json",
    )
    p.add_argument("--seed", default="0", metavar="S", help="random seed (default 0)")
    p.add_argument("--points", default="800", metavar="P", help="grid points per predicted density (default 800)")
    p.add_argument("--out", default="spectrum-validation", metavar="DIR", help="output folder (created)")
    p.add_argument("--resume", action="store_true", help="keep finished rows of OUT/results.jsonl")
    p.add_argument("--no-plot", action="store_true", help="skip the figure")
    p.set_defaults(func=_run)


def _run(args):
    import json
    import os

    import numpy as np
    from tqdm import tqdm

    from rfq_theory.checks import InputError, check_scalar
    from rfq_theory.cli.common import split_list
    from rfq_theory.model import DeepRF

    from .spectrum_check import check_spectra, plot_spectra, trial_means

    d = check_scalar(args.input_dim, "input-dim", int, min_val=2, max_val=20000)
    widths = tuple(check_scalar(w, "widths", int, min_val=2, max_val=20000) for w in split_list(args.widths, "widths"))
    acts = tuple(split_list(args.activations, "activations"))
    quants = split_list(args.quantizers, "quantizers")
    n = check_scalar(args.samples, "samples", int, min_val=2, max_val=20000)
    trials = check_scalar(args.trials, "trials", int, min_val=1, max_val=1000)
    seed = check_scalar(args.seed, "seed", int, min_val=0)
    points = check_scalar(args.points, "points", int, min_val=50, max_val=100000)
    models = {q: DeepRF(d, widths, acts, q) for q in quants}  # validates every spec first
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise InputError(f"--out: {args.out!r} is a file; give a folder")
    os.makedirs(args.out, exist_ok=True)
    results = os.path.join(args.out, "results.jsonl")
    done = set()
    if args.resume and os.path.exists(results):
        with open(results) as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                done.add((row.get("quantizer_spec"), row.get("trial")))
    elif os.path.exists(results):
        os.remove(results)
    panels = {}
    failures = 0
    jobs = [(q, t) for q in quants for t in range(trials)]
    for q, t in tqdm(jobs, desc="draws", disable=None):
        model = models[q]
        eig_file = os.path.join(args.out, f"eigenvalues-{_slug(q)}-trial{t}.npz")
        if (q, t) in done and os.path.exists(eig_file):
            if t == 0 and not args.no_plot:
                saved = np.load(eig_file)
                from rfq_theory.spectrum import layer_spectrum

                for key in saved.files:
                    kind, layer = key.split("-")
                    spec = layer_spectrum(model, int(layer), n if kind == "gram" else None, points=points)
                    panels[(q, _column(kind, int(layer)))] = (saved[key], spec)
            continue
        rows, data = check_spectra(model, n, seed=seed, trial=t, points=points)
        np.savez_compressed(eig_file, **{f"{kind}-{layer}": eigs for (layer, kind), (eigs, _) in data.items()})
        with open(results, "a") as fh:
            for r in rows:
                fh.write(json.dumps(dict(r.as_dict(), quantizer_spec=q, trial=t, seed=seed)) + "\n")
        for r in rows:
            failures += not r.passed
            print(
                f"{q:<12} trial {t} layer {r.layer} {r.kind:<5} N={r.n_min:<5} KS={r.ks:.4f} (tol {r.ks_tol:.4f}) "
                f"moment errors {' '.join(f'{e:+.4f}' for e in r.moment_errors)} (tol {r.moment_tol:.4f} j) "
                f"{'pass' if r.passed else 'FAIL'}"
            )
        if t == 0:
            for (layer, kind), value in data.items():
                panels[(q, _column(kind, layer))] = value
    if panels and not args.no_plot:
        path = os.path.join(args.out, "spectra.png")
        plot_spectra(
            panels, path, title=f"d={d}, widths={','.join(map(str, widths))}, n={n}, activations={','.join(acts)}"
        )
        print(f"wrote {path}")
    if trials > 1:
        stored = []
        with open(results) as fh:
            for line in fh:
                try:
                    stored.append(json.loads(line))
                except ValueError:  # a torn line of an interrupted run
                    continue
        stored = [r for r in stored if r.get("quantizer_spec") in quants and r.get("trial", 0) < trials]
        means = trial_means(stored)
        print("moment errors of the mean over the draws (per-draw fluctuations average out; a bias would not):")
        for m in means:
            print(
                f"{m['quantizer']:<12} layer {m['layer']} {m['kind']:<5} {m['draws']} draws  "
                f"mean {' '.join(f'{e:+.4f}' for e in m['mean_errors'])}  "
                f"largest single draw {' '.join(f'{e:.4f}' for e in m['max_single_errors'])}"
            )
        with open(os.path.join(args.out, "means.json"), "w") as fh:
            json.dump(means, fh, indent=1)
    print(f"{'all rows pass' if failures == 0 else f'{failures} row(s) FAIL'}; rows in {results}")
    return 0 if failures == 0 else 1


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text)


def _column(kind, layer):
    return f"$\\Omega_{layer}$" if kind == "omega" else f"kernel, layer {layer}"
