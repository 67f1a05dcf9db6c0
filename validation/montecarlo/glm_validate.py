"""Convex-loss readouts: theory vs Monte Carlo with real classifiers.

One draw of a configuration uses the network code of
:mod:`validation.montecarlo.simulate` (same seeds, streams and weights:
:func:`~validation.montecarlo.simulate.draw_weights`,
:func:`~validation.montecarlo.simulate.trial_generators` and the drawn
network's ``features``; the inputs and the teacher ``g`` of
:mod:`validation.montecarlo.inputs`, ``x ~ N(0, Sigma)`` for a structured
model in the configuration's ``basis``), with

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
(:func:`finite_size_glm`); :func:`validation.montecarlo.tolerance.verdict`
judges each of the four metrics and a row passes when all four pass
(:func:`score`).

``rfq validate --labels sign --loss LOSS`` runs :class:`ConvexExperiment`
(the rows, grid, result store, executors and report of ridge validation).
``python -m validation.montecarlo.glm_validate --out DIR`` runs the
default table :data:`DEFAULT_CONFIGS` (rows in the same locked store,
``--resume`` skips finished rows).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rfq_theory import DeepRF
from rfq_theory.checks import InputError
from rfq_theory.glm import predict_glm

from ..network import SimulatedNetwork
from .backends import get_backend
from .compare import RidgeExperiment, format_table, spec_label
from .inputs import input_law, teacher_vector
from .records import CSV_COLUMNS, check_numbers, check_ridge_row
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
    "ConvexExperiment",
    "ConvexDrawTask",
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
    input_spectrum: str = "identity"
    teacher: str = "flat"
    basis: str = "axis"

    def model(self) -> DeepRF:
        return DeepRF(
            self.input_dim,
            tuple(self.widths),
            tuple(self.activations),
            self.quantizer,
            self.input_spectrum,
            self.teacher,
        )

    @property
    def key(self) -> str:
        """The row key: the fields as JSON (the input fields only when not the defaults, so older keys hold)."""
        fields = asdict(self)
        for name, default in _INPUT_DEFAULTS.items():
            if fields[name] == default:
                del fields[name]
        return json.dumps(fields, sort_keys=True)


_INPUT_DEFAULTS = {"input_spectrum": "identity", "teacher": "flat", "basis": "axis"}


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
    network_sizes(model)  # whole sizes
    gens = trial_generators(config.seed, trial)
    weights = draw_weights(model, config.seed, trial)
    law = input_law(model, config.seed, trial, config.basis)
    theta = teacher_vector(law, gens["theta"])
    features = SimulatedNetwork(model, weights=weights).features
    sd = math.sqrt(config.noise)
    n = int(config.samples)

    def labels(X, noise_gen, count):
        raw = X @ theta + sd * noise_gen.standard_normal(count)
        if config.labels == "sign":
            return np.where(raw >= 0, 1.0, -1.0)
        return raw

    X = law.inputs(gens["train"], n)
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
        Xt = law.inputs(gens["test"], c)
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

    spec = finite_size_spectrum(config.model(), config.seed, trial, basis=config.basis)
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
    an error rate of order ``1 / (N T)``.  The row's ``status`` combines the
    four: ``fail`` when one fails, ``inconclusive`` when one lacks draws,
    else ``pass`` (so a verdict never contradicts the per-metric columns).
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
    row["status"] = _combined_status(row[k]["status"] for k in METRICS)
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
    """Validate each configuration (:func:`validate_row`); rows appended to ``out_dir/results.jsonl``.

    The rows go to the locked :class:`~validation.montecarlo.records.ResultStore`
    (one run at a time, torn or damaged lines set aside, a run without
    ``resume`` moves an earlier store aside); with ``resume`` the rows of
    configurations already stored are reused.
    """
    from tqdm.auto import tqdm

    from .records import ResultStore, fingerprint

    fp = fingerprint({"table": "convex-loss", "finite_size": bool(finite_size)})
    rows = []
    with ResultStore(out_dir, fp, fp, resume, check_draw=lambda rec: None, check_row=_check_table_row) as store:
        for cfg in tqdm(list(configs), desc="glm validate", disable=None if progress else True):
            if cfg.key in store.rows:
                rows.append(score(store.rows[cfg.key]))
                continue
            row = validate_row(cfg, finite_size)
            rows.append(store.add_row(dict(row, status=row["status"])))
    return rows


def _check_table_row(rec: dict) -> str | None:
    if not isinstance(rec.get("config"), dict):
        return "field 'config' missing or not an object"
    for key in METRICS:
        m = rec.get(key)
        if not isinstance(m, dict):
            return f"field {key!r} missing or not an object"
        problem = check_numbers(m, ("theory", "mc", "mc_se"))
        if problem:
            return f"{key}: {problem}"
    return None


def require_sklearn(loss: str) -> None:
    """Refuse (one line) a logistic or hinge readout without scikit-learn."""
    import importlib.util

    if loss in ("logistic", "hinge") and importlib.util.find_spec("sklearn") is None:
        raise InputError(
            f"the {loss} readout is fitted with scikit-learn, which is not installed: pip install 'rfq-theory[sklearn]'"
        )


@dataclass(frozen=True)
class ConvexDrawTask:
    """Draw ``trial`` of the convex-loss row ``key`` (:func:`simulate_glm_trial` of ``config``)."""

    key: str
    trial: int
    config: GLMConfig
    blas_threads: int | None = 1

    def run(self) -> dict:
        return simulate_glm_trial(self.config, self.trial)


def _combined_status(statuses) -> str:
    statuses = list(statuses)
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "inconclusive"
    if "pass" in statuses:
        return "pass"
    return "n/a"


#: Columns of ``results.csv`` for convex-loss rows: the ridge columns, the readout, every metric.
CONVEX_CSV_COLUMNS = (
    CSV_COLUMNS[:-2]
    + ["loss", "labels"]
    + [f"{m}_{f}" for m in METRICS for f in ("theory", "finite_size", "mc", "mc_se", "z", "status")]
    + CSV_COLUMNS[-2:]
)


class ConvexExperiment(RidgeExperiment):
    """Sign labels with a logistic, hinge or square readout: the four metrics of :data:`METRICS` per row.

    Rows, grid and axes are those of the ridge experiment (one
    :class:`~validation.montecarlo.compare.ValidationConfig`); the theory is
    :func:`rfq_theory.glm.predict_glm`, the finite-size route
    :func:`finite_size_glm` on draw 0, the draws :func:`simulate_glm_trial`.
    A row passes when all four metrics pass (:func:`score`).
    """

    csv_columns = CONVEX_CSV_COLUMNS

    def glm_config(self, key: str) -> GLMConfig:
        c = self.config
        label, g = self._items[key]
        widths, n, lam = c.point(g)
        return GLMConfig(
            c.input_dim,
            tuple(widths),
            tuple(spec_label(a) for a in c.activations),
            spec_label(c.variant_spec(label)),
            c.loss,
            n,
            lam,
            c.noise,
            "sign",
            c.trials,
            c.test_samples,
            c.seed,
            c.input_spectrum.spec,
            c.teacher.spec,
            c.basis,
        )

    def theory(self, key: str):
        if key not in self._theory:
            cfg = self.glm_config(key)
            self._theory[key] = predict_glm(
                self.config.model(self._items[key][0], cfg.widths),
                cfg.samples,
                cfg.ridge,
                cfg.noise,
                "linear",
                "sign",
                cfg.loss,
            )
        return self._theory[key]

    def task(self, key: str, trial: int) -> ConvexDrawTask:
        return ConvexDrawTask(key, trial, self.glm_config(key))

    def check_draw(self, rec: dict) -> str | None:
        return check_numbers(rec, METRICS)

    def check_row(self, rec: dict) -> str | None:
        problem = check_ridge_row(rec)
        if problem:
            return problem
        metrics = rec.get("metrics")
        if not isinstance(metrics, dict) or set(metrics) != set(METRICS):
            return "field 'metrics' missing or not the four metrics"
        for key in METRICS:
            if not isinstance(metrics[key], dict):
                return f"metrics[{key!r}] is not an object"
            problem = check_numbers(metrics[key], ("theory", "mc", "mc_se"))
            if problem:
                return f"metrics[{key!r}]: {problem}"
        return None

    def summarize_row(self, key: str, draws: dict[int, dict]) -> dict:
        c = self.config
        base = self.row_base(key)
        cfg = self.glm_config(key)
        theory = self.theory(key)
        try:
            fs = finite_size_glm(cfg)
        except (ImportError, ArithmeticError, ValueError):  # the route is informative, not part of the verdict
            fs = None
        trials = sorted(draws)[: c.trials]
        row = {"config": asdict(cfg)}
        for m in METRICS:
            v = np.array([draws[t][m] for t in trials], dtype=float)
            row[m] = {
                "theory": float(getattr(theory, m)),
                "finite_size": None if fs is None else fs[m],
                "mc": float(v.mean()),
                "mc_se": float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan"),
                "draws": [float(x) for x in v],
            }
        score(row)
        te, tr = row["test_error"], row["train_error"]
        flat = {
            f"{m}_{f}": row[m].get(f) for m in METRICS for f in ("theory", "finite_size", "mc", "mc_se", "z", "status")
        }
        return {
            **base,
            "loss": c.loss,
            "labels": "sign",
            "theory_test": te["theory"],
            "theory_train": tr["theory"],
            "finite_size_test": te["finite_size"],
            "finite_size_train": tr["finite_size"],
            "mc_test": te["mc"],
            "mc_test_se": te["mc_se"],
            "mc_train": tr["mc"],
            "mc_train_se": tr["mc_se"],
            "draws": len(trials),
            "mc_test_draws": te["draws"],
            "mc_train_draws": tr["draws"],
            "mc_seconds": float(sum(draws[t].get("seconds") or 0.0 for t in trials)),
            "z": te["z"],
            "z_crit": te["z_crit"],
            "allowance": te["allowance"],
            "status": row["status"],
            "all_metrics_pass": row["all_metrics_pass"],
            "metrics": {m: {k: v for k, v in row[m].items() if k != "draws"} for m in METRICS},
            **flat,
            "warnings": regime_warnings(c.input_dim, cfg.widths, cfg.samples),
        }

    def curves(self, points: int = 16) -> dict:
        """Theory curves of the classification errors (fewer points: each is a saddle-point solve)."""
        from rfq_theory.sweeps import model_at

        c = self.config
        lo, hi = min(c.grid), max(c.grid)
        xs = np.geomspace(lo, hi, points) if c.vary == "ridge" and lo > 0 else np.linspace(lo, hi, points)
        out = {}
        for label in c.labels:
            test, train = [], []
            for g in xs:
                value = float(g) * c.input_dim if c.vary in ("samples", "width") else float(g)
                m, n, lam = model_at(c.model(label), c.vary, value, c.samples, c.ridge)
                try:
                    p = predict_glm(m, n, lam, c.noise, "linear", "sign", c.loss)
                    test.append(float(p.test_error))
                    train.append(float(p.train_error))
                except (ArithmeticError, ValueError):
                    test.append(float("nan"))
                    train.append(float("nan"))
            out[label] = {"x": [float(g) for g in xs], "test": test, "train": train}
        return out

    def format(self, report: dict) -> str:
        lines = [format_table(report), "metrics per row (theory, MC +- SE, z, status):"]
        for r in report["rows"]:
            parts = []
            for m in METRICS:
                x = r["metrics"][m]
                z = "-" if x.get("z") is None else f"{x['z']:+.2f}"
                parts.append(f"{m} {x['theory']:.4g} vs {x['mc']:.4g} +- {x['mc_se']:.2g} (z {z}) {x['status']}")
            lines.append(f"  {r['variant']} {r['value']:g}: " + "; ".join(parts))
        return "\n".join(lines)


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

    bar = tqdm(total=len(variants) * len(grid), desc="glm figure", disable=None if progress else True)
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
