"""Convex-loss readouts: theory vs Monte Carlo with real classifiers.

One draw of a configuration uses the network code of
:mod:`validation.montecarlo.simulate` (same seeds, streams and weights:
:func:`~validation.montecarlo.simulate.draw_weights`,
:func:`~validation.montecarlo.simulate.trial_generators` and the drawn
network's ``features``), with

- labels ``y = sign(g + sqrt(Delta) xi)`` (``labels="sign"``), or the
  linear regression target ``y = g + eps``, ``eps ~ N(0, Delta)``;
- the readout ``w = argmin (1/n) sum loss(y_mu, <w, z_mu>) + lambda ||w||^2``
  fitted by a real solver:

  - ``logistic``: scikit-learn ``LogisticRegression(C=1/(2 lambda n),
    fit_intercept=False, tol=1e-10)`` (scikit-learn minimises
    ``0.5||w||^2 + C sum loss``, which is the objective above times
    ``1/(2 lambda)``);
  - ``hinge``: scikit-learn ``LinearSVC(loss="hinge", penalty="l2",
    C=1/(2 lambda n), dual=True, fit_intercept=False, tol=1e-8)`` (the same
    mapping);
  - ``square``: the ridge normal equations
    (:func:`~validation.montecarlo.simulate.fit_readout`);

- on a fresh test set: classification error ``mean(y != sign(<w, z>))``
  and mean loss; on the training set: mean loss and classification error.

Theory is :func:`rfq_theory.glm.predict_glm`; the finite-size route solves
the same saddle point on the realized ``Omega_L`` spectrum of draw 0
(:func:`finite_size_glm`); the verdict is
:func:`validation.montecarlo.tolerance.verdict` on the test error.

Run ``python -m validation.montecarlo.glm_validate --out DIR`` for the
default table (rows written to ``DIR/results.jsonl`` as they finish,
``--resume`` skips finished rows).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rfq_theory import DeepRF
from rfq_theory.glm import predict_glm

from ..network import SimulatedNetwork
from .backends import get_backend
from .simulate import draw_weights, fit_readout, network_sizes, trial_generators
from .tolerance import regime_warnings, verdict

__all__ = [
    "GLMConfig",
    "DEFAULT_CONFIGS",
    "fit_classifier",
    "simulate_glm_trial",
    "simulate_glm",
    "finite_size_glm",
    "validate_row",
    "score",
    "run_glm_validate",
    "figure",
    "main",
]

METRICS = ("test_error", "test_loss", "train_loss", "train_error")


@dataclass(frozen=True)
class GLMConfig:
    """One validation row: a model, the readout and the data."""

    input_dim: int
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    quantizer: str
    loss: str
    samples: int
    ridge: float
    noise: float
    labels: str = "sign"
    trials: int = 8
    test_samples: int = 4000
    seed: int = 0

    def model(self) -> DeepRF:
        return DeepRF(self.input_dim, tuple(self.widths), tuple(self.activations), self.quantizer)

    @property
    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


#: The validation table of ``docs/classification.md`` (d = 400).
DEFAULT_CONFIGS = (
    GLMConfig(400, (800,), ("tanh",), "none", "logistic", 400, 1e-2, 0.0),
    GLMConfig(400, (800,), ("tanh",), "sign", "logistic", 1600, 1e-3, 0.1),
    GLMConfig(400, (600,), ("relu",), "sign-scaled", "hinge", 1200, 1e-2, 0.0),
    GLMConfig(400, (800,), ("erf",), "sign", "square", 3200, 1e-1, 0.1),
    GLMConfig(400, (800, 600), ("tanh", "relu"), "none", "logistic", 1200, 1e-2, 0.1),
    GLMConfig(400, (800, 600), ("tanh", "relu"), "sign", "hinge", 600, 1e-1, 0.1),
    GLMConfig(400, (600, 600, 500), ("erf", "tanh", "relu"), "sign", "logistic", 2000, 1.0, 0.0),
    GLMConfig(400, (800, 600, 400), ("relu", "relu", "tanh"), "sign-scaled", "square", 800, 1e-3, 0.0),
    GLMConfig(400, (500,), ("erf",), "none", "hinge", 2000, 1e-3, 0.1),
    GLMConfig(400, (600, 400), ("relu", "erf"), "sign-scaled", "logistic", 200, 1e-1, 0.1),
)


def fit_classifier(Z: np.ndarray, y: np.ndarray, loss: str, ridge: float) -> np.ndarray:
    """``argmin (1/n) sum loss(y, Z w) + ridge ||w||^2`` with a real solver (module docstring)."""
    n = Z.shape[0]
    C = 1.0 / (2.0 * ridge * n)
    if loss == "square":
        return np.asarray(fit_readout(get_backend("numpy"), Z, y, ridge))
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        if loss == "logistic":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=C, fit_intercept=False, tol=1e-10, max_iter=100000, solver="lbfgs")
        elif loss == "hinge":
            from sklearn.svm import LinearSVC

            clf = LinearSVC(C=C, loss="hinge", penalty="l2", dual=True, fit_intercept=False, tol=1e-8, max_iter=1000000)
        else:
            raise ValueError(f"loss must be square, logistic or hinge, got {loss!r}")
        clf.fit(Z, y)
    return clf.coef_.ravel().copy()


def _loss_values(loss, y, t):
    u = y * t
    if loss == "square":
        return (y - t) ** 2
    if loss == "logistic":
        return np.logaddexp(0.0, -u)
    return np.maximum(0.0, 1.0 - u)


def simulate_glm_trial(config: GLMConfig, trial: int, chunk: int = 2048) -> dict:
    """The four metrics of one draw (see the module docstring)."""
    model = config.model()
    sizes = network_sizes(model)
    gens = trial_generators(config.seed, trial)
    weights = draw_weights(model, config.seed, trial)
    theta = gens["theta"].standard_normal(sizes[0]) / math.sqrt(sizes[0])
    features = SimulatedNetwork(model, weights=weights).features
    sd = math.sqrt(config.noise)
    n = int(config.samples)

    def labels(X, noise_gen, count):
        raw = X @ theta + sd * noise_gen.standard_normal(count)
        if config.labels == "sign":
            return np.where(raw >= 0, 1.0, -1.0)
        return raw

    X = gens["train"].standard_normal((n, sizes[0]))
    y = labels(X, gens["train_noise"], n)
    Z = features(X)
    w = fit_classifier(Z, y, config.loss, config.ridge)
    t = Z @ w
    out = {
        "train_loss": float(np.mean(_loss_values(config.loss, y, t))),
        "train_error": float(np.mean(np.sign(t) != y)) if config.labels == "sign" else float(np.mean((y - t) ** 2)),
    }
    del Z, X
    err = los = 0.0
    done = 0
    nt = int(config.test_samples)
    while done < nt:
        c = min(chunk, nt - done)
        Xt = gens["test"].standard_normal((c, sizes[0]))
        yt = labels(Xt, gens["test_noise"], c)
        tt = features(Xt) @ w
        if config.labels == "sign":
            err += float(np.sum(np.sign(tt) != yt))
        else:
            err += float(np.sum((yt - tt) ** 2))
        los += float(np.sum(_loss_values(config.loss, yt, tt)))
        done += c
    out["test_error"] = err / nt
    out["test_loss"] = los / nt
    return out


def simulate_glm(config: GLMConfig, first_trial: int = 0) -> dict:
    """Means and standard errors of the metrics over ``config.trials`` draws."""
    rows = [simulate_glm_trial(config, t) for t in range(first_trial, first_trial + config.trials)]
    out = {}
    for key in METRICS:
        v = np.array([r[key] for r in rows])
        out[key] = float(v.mean())
        out[key + "_se"] = float(v.std(ddof=1) / math.sqrt(v.size))
        out[key + "_draws"] = [float(x) for x in v]
    return out


def finite_size_glm(config: GLMConfig, trial: int = 0) -> dict | None:
    """The saddle point solved on the realized ``Omega_L`` spectrum of draw ``trial``.

    Uses :func:`validation.montecarlo.finite_size.finite_size_spectrum` and
    :func:`rfq_theory.glm.predict_glm_spectrum`; returns the four metrics.
    """
    from rfq_theory.glm import predict_glm_spectrum

    from .finite_size import finite_size_spectrum

    spec = finite_size_spectrum(config.model(), config.seed, trial)
    pred = predict_glm_spectrum(
        spec.omega, spec.r, spec.input_dim, config.samples, config.ridge, config.noise, config.labels, config.loss
    )
    return {k: float(getattr(pred, k)) for k in METRICS}


def validate_row(config: GLMConfig, finite_size: bool = True) -> dict:
    """Theory, finite-size route and Monte Carlo for one configuration, with the verdicts."""
    model = config.model()
    t0 = time.perf_counter()
    theory = predict_glm(model, config.samples, config.ridge, config.noise, "linear", config.labels, config.loss)
    t_theory = time.perf_counter() - t0
    fs = None
    if finite_size:
        try:
            fs = finite_size_glm(config)
        except ImportError:
            fs = None
    t0 = time.perf_counter()
    mc = simulate_glm(config)
    t_mc = time.perf_counter() - t0
    row = {
        "key": config.key,
        "config": asdict(config),
        "theory_seconds": t_theory,
        "mc_seconds": t_mc,
        "warnings": regime_warnings(config.input_dim, config.widths, config.samples),
    }
    for key in METRICS:
        th = float(getattr(theory, key))
        row[key] = {
            "theory": th,
            "finite_size": None if fs is None else fs[key],
            "mc": mc[key],
            "mc_se": mc[key + "_se"],
        }
    return score(row)


def score(row: dict) -> dict:
    """Add the verdicts of :func:`validation.montecarlo.tolerance.verdict` to a row (in place; returns it).

    For the two classification errors the standard error is floored at the
    binomial one, ``sqrt(p (1 - p) / (N T))`` with ``p`` the theory value,
    ``N`` the points per draw and ``T`` the draws: when no draw misclassifies
    a single point the draw-to-draw estimate is 0, which says nothing about
    an error rate of order ``1 / (N T)``.
    """
    c = row["config"]
    sizes = (c["input_dim"],) + tuple(c["widths"]) + (c["samples"],)
    for key in METRICS:
        m = row[key]
        se = m["mc_se"]
        if key in ("test_error", "train_error") and c.get("labels", "sign") == "sign":
            count = c["test_samples"] if key == "test_error" else c["samples"]
            p = min(max(m["theory"], 0.0), 1.0)
            se = max(se, math.sqrt(p * (1 - p) / (count * c["trials"])))
        m["se_used"] = se
        m.update(verdict(m["mc"], se, m["theory"], c["trials"], sizes))
    row["status"] = row["test_error"]["status"]
    row["all_metrics_pass"] = all(row[k]["status"] == "pass" for k in METRICS)
    return row


def _describe(c: dict) -> str:
    return (
        f"L={len(c['widths'])} {','.join(c['activations'])} {c['quantizer']} {c['loss']} "
        f"n/kL={c['samples'] / c['widths'][-1]:.3g} lam={c['ridge']:g} Delta={c['noise']:g}"
    )


def format_rows(rows) -> str:
    """Markdown table of validation rows."""
    head = (
        "| config | d | widths | n | theory test error | finite-size | MC (± SE) | z | verdict | "
        "theory train loss | MC train loss | z | verdict | all 4 metrics |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        c = r["config"]
        if r["status"] == "error":
            lines.append(
                f"| {_describe(c)} | {c['input_dim']} | {','.join(map(str, c['widths']))} | {c['samples']} | "
                f"error: {r['error']} |" + " |" * 9
            )
            continue
        te, tl = r["test_error"], r["train_loss"]
        fs = "-" if te["finite_size"] is None else f"{te['finite_size']:.4f}"
        lines.append(
            f"| {_describe(c)} | {c['input_dim']} | {','.join(map(str, c['widths']))} | {c['samples']} | "
            f"{te['theory']:.4f} | {fs} | {te['mc']:.4f} ± {te['mc_se']:.4f} | {te['z']:+.2f} | {te['status']} | "
            f"{tl['theory']:.4f} | {tl['mc']:.4f} ± {tl['mc_se']:.4f} | {tl['z']:+.2f} | {tl['status']} | "
            f"{'pass' if r.get('all_metrics_pass') else 'fail'} |"
        )
    return "\n".join(lines)


def run_configs(configs, out_dir, resume=False, progress=True, finite_size=True):
    """Validate each configuration; rows appended to ``out_dir/results.jsonl`` as they finish."""
    from rfq_theory.checks import InputError

    out = Path(out_dir)
    path = out / "results.jsonl"
    try:
        out.mkdir(parents=True, exist_ok=True)
        done = {}
        if resume and path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn line of an interrupted run
                if isinstance(row, dict) and isinstance(row.get("key"), str):
                    done[row["key"]] = row
        elif path.exists():  # a new run never deletes finished rows: the old file is kept aside
            i = 1
            while (out / f"results.{i}.jsonl").exists():
                i += 1
            path.rename(out / f"results.{i}.jsonl")
            print(f"rfq validate: note: earlier results moved to {out / f'results.{i}.jsonl'}", file=sys.stderr)
        fh = open(path, "a")
    except OSError as exc:
        raise InputError(f"--out: cannot write to {str(out)!r}: {exc.strerror or exc}") from None
    from tqdm.auto import tqdm

    rows = []
    with fh:
        for cfg in tqdm(list(configs), desc="glm validate", disable=not progress):
            if cfg.key in done:
                rows.append(score(done[cfg.key]) if done[cfg.key].get("status") != "error" else done[cfg.key])
                continue
            try:
                row = validate_row(cfg, finite_size)
            except (ArithmeticError, ValueError) as exc:  # recorded, not fatal: the table shows it
                row = {
                    "key": cfg.key,
                    "config": asdict(cfg),
                    "status": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            rows.append(row)
    return rows


def run_glm_validate(args) -> int:
    """``rfq validate --labels sign --loss ...``: one row per quantizer variant and grid value."""
    import importlib.util

    from rfq_theory.checks import InputError, check_scalar
    from rfq_theory.cli.common import split_list

    if args.loss in ("logistic", "hinge") and importlib.util.find_spec("sklearn") is None:
        raise InputError(
            f"the {args.loss} readout is fitted with scikit-learn, which is not installed: "
            "pip install 'rfq-theory[sklearn]'"
        )
    if str(getattr(args, "workers", "1")) not in ("1", "None") or getattr(args, "scheduler", None):
        raise InputError("--workers and --scheduler run ridge validations only; drop them with --labels/--loss")
    widths = tuple(check_scalar(k, "widths", int, min_val=1, max_val=10**6) for k in split_list(args.widths, "widths"))
    acts = split_list(args.activations, "activations")
    if len(acts) == 1:
        acts = acts * len(widths)
    d = check_scalar(args.input_dim, "input-dim", int, min_val=1, max_val=10**6)
    trials = check_scalar(args.trials, "trials", int, min_val=2, max_val=10**5)
    test_samples = check_scalar(args.test_samples, "test-samples", int, min_val=1, max_val=10**7)
    seed = check_scalar(args.seed, "seed", int, min_val=0, max_val=2**63 - 1)
    noise = check_scalar(args.noise, "noise", float, min_val=0)
    configs = []
    for variant in split_list(args.quantizers, "quantizers"):
        for g in [float(x) for x in split_list(args.grid, "grid")]:
            n = int(round(g * d)) if args.vary == "samples" else int(float(args.samples or d))
            lam = g if args.vary == "ridge" else float(args.ridge)
            ws = tuple(max(1, int(round(g * k))) for k in widths) if args.vary in ("width", "widths") else widths
            configs.append(
                GLMConfig(
                    d,
                    ws,
                    tuple(acts),
                    variant,
                    args.loss,
                    n,
                    lam,
                    noise,
                    args.labels,
                    trials,
                    test_samples,
                    seed,
                )
            )
    rows = run_configs(configs, args.out, args.resume, not args.no_progress)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_rows(rows))
        counts = {k: sum(r["status"] == k for r in rows) for k in ("pass", "fail", "inconclusive", "error")}
        verdict = "PASS" if counts["pass"] == len(rows) else "FAIL"
        print(
            f"verdict: {verdict}  ({counts['pass']} pass, {counts['fail']} fail, {counts['inconclusive']} "
            f"inconclusive, {counts['error']} error of {len(rows)} rows)"
        )
        print(f"files: {Path(args.out) / 'results.jsonl'}")
    return 0 if all(r["status"] == "pass" for r in rows) else 1


def figure(
    path,
    input_dim=300,
    widths=(450,),
    activations=("tanh",),
    loss="logistic",
    ridge=1e-2,
    noise=0.1,
    grid=(0.5, 1.0, 2.0, 3.0),
    trials=5,
    test_samples=3000,
    seed=0,
    progress=True,
):
    """Classification error vs ``n/d`` for full precision, sign and scaled sign: theory lines, Monte Carlo error bars.

    Returns the plotted numbers (theory curves and Monte Carlo means/SEs).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rfq_theory.glm import glm_sweep

    variants = ("none", "sign", "sign-scaled")
    labels = {"none": "full precision", "sign": "one-bit (sign)", "sign-scaled": "one-bit (scaled sign)"}
    styles = {"none": ("-", 3.0, 0.45, "o"), "sign": ("--", 1.6, 1.0, "s"), "sign-scaled": (":", 2.0, 1.0, "^")}
    xs = np.linspace(min(grid) * 0.8, max(grid) * 1.05, 80)
    data = {"grid": list(grid), "x": list(xs), "theory": {}, "mc": {}}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(variants) * len(grid), desc="glm figure", disable=not progress)
    for k, var in enumerate(variants):
        model = DeepRF(input_dim, tuple(widths), tuple(activations), var)
        preds = glm_sweep(
            model, "samples", [x * input_dim for x in xs], None, ridge, noise, "linear", "sign", loss, progress=False
        )
        th = [float(p.test_error) for p in preds]
        data["theory"][var] = th
        ls, lw, alpha, marker = styles[var]
        (line,) = ax.plot(xs, th, ls, lw=lw, alpha=alpha, label=labels[var])
        means, ses = [], []
        for g in grid:
            cfg = GLMConfig(
                input_dim,
                tuple(widths),
                tuple(activations),
                var,
                loss,
                int(round(g * input_dim)),
                ridge,
                noise,
                "sign",
                trials,
                test_samples,
                seed,
            )
            mc = simulate_glm(cfg)
            means.append(mc["test_error"])
            ses.append(mc["test_error_se"])
            bar.update()
        data["mc"][var] = {"mean": means, "se": ses}
        offset = (k - 1) * 0.02 * (max(grid) - min(grid))
        ax.errorbar(
            np.array(grid) + offset, means, yerr=3 * np.array(ses), fmt=marker, ms=4, capsize=3, color=line.get_color()
        )
    bar.close()
    ax.set_xlabel("n / d")
    ax.set_ylabel("test classification error")
    ax.set_title(
        f"{loss} loss, d {input_dim}, widths {'x'.join(map(str, widths))}, {'/'.join(activations)}, "
        f"ridge {ridge:g}, Delta {noise:g}; bars: MC mean +- 3 SE ({trials} draws)",
        fontsize=8,
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return data


def main(argv=None) -> int:
    """Run :data:`DEFAULT_CONFIGS` and print the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="glm-validation-out")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--only", type=int, nargs="*", default=None, help="indices of DEFAULT_CONFIGS to run")
    p.add_argument("--trials", type=int, default=None)
    p.add_argument("--no-finite-size", action="store_true")
    p.add_argument("--figure", default=None, help="draw the error-vs-n/d figure to this PNG instead of the table")
    args = p.parse_args(argv)
    if args.figure:
        data = figure(args.figure, trials=args.trials or 5)
        with open(str(Path(args.figure).with_suffix(".json")), "w") as fh:
            json.dump(data, fh, indent=1)
        return 0
    configs = [c for i, c in enumerate(DEFAULT_CONFIGS) if args.only is None or i in args.only]
    if args.trials:
        from dataclasses import replace

        configs = [replace(c, trials=args.trials) for c in configs]
    rows = run_configs(configs, args.out, args.resume, finite_size=not args.no_finite_size)
    print(format_rows(rows))
    return 0 if all(r["status"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
