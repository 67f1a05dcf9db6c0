"""Layer spectra of drawn networks against the limiting densities of :mod:`rfq_theory.spectra`.

For one drawn network (the matrices of :func:`~validation.montecarlo.simulate.draw_weights`):

(a) the realized Gaussian-equivalent covariances, with the unit-variance
    rescaled quantized weights ``F_l`` of
    :func:`~validation.montecarlo.finite_size.unit_variance_matrices`,
    ``Omega_0 = I_d``, ``Omega_l = kappa1_l^2 F_l Omega_{l-1} F_l^T + kappastar_l^2 I``;
(b) the conjugate kernel of the actual nonlinear features: ``n`` inputs
    ``x ~ N(0, I_d)`` (the draw's ``train`` stream), features
    ``z_l = sigma_l(Q_l(W_l) z_{l-1} / sqrt(k_{l-1})) - m_l`` and
    ``K_l = Z_l Z_l^T / k_l`` (``n x n``).

Each eigenvalue set is compared with the predicted law of the same matrix:

- Kolmogorov-Smirnov distance ``sup_x |F_emp(x) - F_pred(x)|``, with
  ``F_pred`` the atoms plus the integrated density (:func:`rfq_theory.spectra.cdf`);
- relative errors of the moments ``(1/N) tr M^j``, ``j = 1..4``, against the
  exact recursion.

Pass/fail rule.  Eigenvalues of an ``N x N`` random matrix are rigid: the
empirical distribution function deviates from its limit by ``O(1/N)`` up to
logarithms (not ``1/sqrt(N)`` as for independent samples), and normalized
traces ``(1/N) tr M^j`` have ``O(1/N)`` fluctuations and an ``O(1/N)`` bias
(for the kernel of real features, the second Hermite coefficient of an
activation that is not odd adds such a bias).  A relative error ``e`` of
the overall scale of the eigenvalues moves ``M_j`` by ``j e``, so the moment
tolerance grows with ``j``; every random stage of the matrix (a layer's
weights, and the data for a kernel) adds its own such error, so it also
grows with the number of stages ``s`` (``s = l`` for ``Omega_l``,
``s = l + 1`` for the kernel of layer ``l``).  With ``N`` the smallest
dimension in the matrix's chain (``d``, the widths up to layer ``l``, and
``n`` for a kernel) a row passes when

    KS <= KS_CONSTANT / N   and   |M_j,emp / M_j - 1| <= MOMENT_CONSTANT * s * j / N,  j = 1..4,

with ``KS_CONSTANT = 10`` and ``MOMENT_CONSTANT = 5``: at ``N = 1000`` a KS
distance of 0.01 and, for ``Omega_1``, moment errors of 0.5%, 1%, 1.5%, 2%
(for ``Omega_3``: 1.5%, 3%, 4.5%, 6%).  Both tolerances shrink like
``1 / size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rfq_theory import DeepRF
from rfq_theory.spectra import cdf, layer_spectrum, spectral_moments, spectrum_chain

from ..network import SimulatedNetwork
from ..runner import Experiment
from .simulate import network_sizes, trial_generators

__all__ = [
    "KS_CONSTANT",
    "MOMENT_CONSTANT",
    "SpectrumRow",
    "omega_eigenvalues",
    "kernel_eigenvalues",
    "ks_distance",
    "moment_errors",
    "check_spectra",
    "plot_spectra",
    "plot_theory",
    "SpectrumConfig",
    "SpectrumDrawTask",
    "SpectrumExperiment",
    "eigenvalue_file",
]

KS_CONSTANT = 10.0
MOMENT_CONSTANT = 5.0


@dataclass(frozen=True)
class SpectrumRow:
    """One comparison: a matrix (``omega`` or ``gram``) of one layer of one drawn network."""

    quantizer: str
    layer: int
    kind: str
    size: int
    n_min: int
    ks: float
    ks_tol: float
    moments_pred: tuple
    moments_emp: tuple
    moment_errors: tuple
    moment_tol: float  # tolerance of M_1 (MOMENT_CONSTANT * stages / N); M_j gets j * moment_tol
    passed: bool

    def as_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "quantizer": self.quantizer,
            "layer": self.layer,
            "kind": self.kind,
            "size": self.size,
            "n_min": self.n_min,
            "ks": self.ks,
            "ks_tol": self.ks_tol,
            "moments_pred": list(self.moments_pred),
            "moments_emp": list(self.moments_emp),
            "moment_errors": list(self.moment_errors),
            "moment_tol": self.moment_tol,
            "passed": self.passed,
        }


def omega_eigenvalues(model: DeepRF, seed: int = 0, trial: int = 0) -> list[np.ndarray]:
    """Eigenvalues of the realized ``Omega_1 .. Omega_L`` of draw ``(seed, trial)`` (ascending)."""
    return [np.linalg.eigvalsh(omega) for omega in SimulatedNetwork(model, seed, trial).omegas()]


def kernel_eigenvalues(model: DeepRF, samples: int, seed: int = 0, trial: int = 0) -> list[np.ndarray]:
    """Eigenvalues of ``K_l = Z_l Z_l^T / k_l`` (``n x n``) of the real features, layers ``1..L``."""
    net = SimulatedNetwork(model, seed, trial)
    x = trial_generators(seed, trial)["train"].standard_normal((int(samples), net.sizes[0]))
    return [np.linalg.eigvalsh(k) for k in net.kernels(x)]


def ks_distance(eigs: np.ndarray, spec) -> float:
    """``sup |F_emp - F_pred|`` over the sorted eigenvalues (both sides of each step).

    Eigenvalues within ``1e-8`` (relative to the largest) of an atom are read
    as lying on it.
    """
    lam = np.sort(np.asarray(eigs, dtype=float))
    tol = 1e-8 * max(abs(lam[-1]), 1.0)
    for loc, _ in spec.atoms:
        lam = np.where(np.abs(lam - float(loc)) <= tol, float(loc), lam)
    N = lam.size
    v = np.unique(lam)  # ties (an atom) count as one step
    emp_upper = np.searchsorted(lam, v, side="right") / N
    emp_lower = np.searchsorted(lam, v, side="left") / N
    upper = cdf(spec, v)
    lower = cdf(spec, np.nextafter(v, -np.inf))
    return float(max(np.max(np.abs(emp_upper - upper)), np.max(np.abs(emp_lower - lower))))


def moment_errors(eigs: np.ndarray, predicted) -> tuple:
    """``(emp, rel_err)``: empirical moments ``mean(eig^j)`` and ``emp / pred - 1``, ``j = 1..4``."""
    lam = np.asarray(eigs, dtype=float)
    emp = tuple(float(np.mean(lam**j)) for j in range(1, 5))
    err = tuple(e / float(p) - 1 for e, p in zip(emp, predicted))
    return emp, err


def trial_means(rows) -> list[dict]:
    """Moment errors of the mean over draws, per ``(quantizer, layer, kind)``.

    ``rows``: result dicts (:meth:`SpectrumRow.as_dict` plus ``quantizer_spec`` and
    ``trial``).  For each matrix, the empirical moments averaged over its draws against the
    prediction: ``mean_errors[j] = mean_t(M_j,emp) / M_j - 1``, next to ``max_single_errors``
    (the largest ``|error|`` of one draw).  Draw-to-draw fluctuations of ``O(1/N)`` average
    out in the mean; a bias of the prediction would not.
    """
    groups: dict = {}
    for r in rows:
        key = (r.get("quantizer_spec", r["quantizer"]), r["layer"], r["kind"])
        groups.setdefault(key, []).append(r)
    out = []
    for (q, layer, kind), rs in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], kv[0][2])):
        pred = rs[0]["moments_pred"]
        emp = np.mean([r["moments_emp"] for r in rs], axis=0)
        out.append(
            {
                "quantizer": q,
                "layer": layer,
                "kind": kind,
                "draws": len(rs),
                "mean_errors": [float(e / p - 1) for e, p in zip(emp, pred)],
                "max_single_errors": [float(max(abs(r["moment_errors"][j]) for r in rs)) for j in range(4)],
            }
        )
    return out


def _row(model, quantizer, layer, kind, eigs, samples, points):
    sizes = network_sizes(model)
    n_min = min(sizes[: layer + 1]) if kind == "omega" else min(min(sizes[: layer + 1]), int(samples))
    spec = layer_spectrum(model, layer, samples if kind == "gram" else None, points=points)
    pred = spectral_moments(spectrum_chain(model, layer, samples if kind == "gram" else None))
    emp, err = moment_errors(eigs, pred)
    ks = ks_distance(eigs, spec)
    stages = layer if kind == "omega" else layer + 1
    ks_tol, m_tol = KS_CONSTANT / n_min, MOMENT_CONSTANT * stages / n_min
    ok = ks <= ks_tol and all(abs(e) <= m_tol * j for j, e in enumerate(err, start=1))
    return SpectrumRow(
        quantizer,
        layer,
        kind,
        int(eigs.size),
        n_min,
        ks,
        ks_tol,
        tuple(float(p) for p in pred),
        emp,
        err,
        m_tol,
        bool(ok),
    ), spec


def check_spectra(model: DeepRF, samples: int, seed: int = 0, trial: int = 0, points: int = 800):
    """Rows for every layer of ``model``: ``omega`` (realized Gaussian equivalent) and ``gram`` (real features).

    Returns ``(rows, data)`` with ``data[(layer, kind)] = (eigenvalues, LayerSpectrum)``
    for plotting.
    """
    quant = ",".join(dict.fromkeys(model.quantizers))
    rows, data = [], {}
    for kind, eig_list in (
        ("omega", omega_eigenvalues(model, seed, trial)),
        ("gram", kernel_eigenvalues(model, samples, seed, trial)),
    ):
        for layer, eigs in enumerate(eig_list, start=1):
            row, spec = _row(model, quant, layer, kind, eigs, samples, points)
            rows.append(row)
            data[(layer, kind)] = (eigs, spec)
    return rows, data


def plot_spectra(panels: dict, path, title: str = "", bins: int = 60, logx: bool = True) -> None:
    """Paper figure: rows = quantizers, columns = matrices; histograms vs predicted densities.

    ``panels[(quantizer, column_label)] = (eigenvalues, LayerSpectrum)``.
    With ``logx`` (default) the horizontal axis is ``log10(eigenvalue)`` and
    the density shown is that of ``log10(eigenvalue)``, ``x rho(x) ln 10``,
    which resolves the sharp peaks near the lower edges.  Histograms show the
    eigenvalues off the atoms, normalized by the total count so that they
    overlay the continuous density; atoms are marked with their predicted and
    observed masses.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quants = list(dict.fromkeys(q for q, _ in panels))
    cols = list(dict.fromkeys(c for _, c in panels))
    fig, axes = plt.subplots(len(quants), len(cols), figsize=(2.9 * len(cols), 2.3 * len(quants)), squeeze=False)
    for i, q in enumerate(quants):
        for j, c in enumerate(cols):
            ax = axes[i][j]
            if (q, c) not in panels:
                ax.axis("off")
                continue
            eigs, spec = panels[(q, c)]
            lam = np.asarray(eigs, dtype=float)
            tol = 1e-8 * max(abs(lam.max()), 1.0)
            off = np.ones(lam.size, dtype=bool)
            notes = []
            for loc, w in spec.atoms:
                on = np.abs(lam - float(loc)) <= tol
                off &= ~on
                notes.append(f"atom {float(w):.3g} at {float(loc):.3g}\n(drawn {on.mean():.3g})")
            x = np.array([float(t) for t in spec.x])
            d = np.array([float(t) for t in spec.density])
            if x.size:
                xs = np.concatenate([[float(spec.support[0][0])], x, [float(spec.support[-1][1])]])
                ds = np.concatenate([[0.0], d, [0.0]])
            else:
                xs, ds = x, d
            good = lam[off][lam[off] > 0] if logx else lam[off]
            if good.size:
                if logx:
                    lo = min(good.min(), xs[xs > 0].min() if (xs > 0).any() else good.min())
                    hi = max(good.max(), xs.max() if xs.size else good.max())
                    edges = np.geomspace(lo, hi, bins + 1)
                    h, _ = np.histogram(good, bins=edges)
                    width = np.diff(np.log10(edges))
                    ax.bar(
                        edges[:-1],
                        h / (lam.size * width),
                        width=np.diff(edges),
                        align="edge",
                        color="0.8",
                        edgecolor="0.55",
                        lw=0.3,
                        label="drawn network",
                    )
                    ax.set_xscale("log")
                    from matplotlib.ticker import NullFormatter

                    ax.xaxis.set_minor_formatter(NullFormatter())
                else:
                    h, edges = np.histogram(good, bins=bins)
                    width = np.diff(edges)
                    ax.bar(
                        edges[:-1],
                        h / (lam.size * width),
                        width=width,
                        align="edge",
                        color="0.8",
                        edgecolor="0.55",
                        lw=0.3,
                        label="drawn network",
                    )
            if xs.size:
                pos = xs > 0
                shown = xs[pos] * ds[pos] * math.log(10) if logx else ds
                ax.plot(xs[pos] if logx else xs, shown, color="C3", lw=1.2, label="theory")
            if notes:
                ax.text(
                    0.97,
                    0.95,
                    "\n".join(notes),
                    transform=ax.transAxes,
                    ha="right",
                    va="top",
                    fontsize=6,
                    color="C0",
                    bbox=dict(facecolor="white", alpha=0.85, lw=0, pad=1.0),
                )
            ax.tick_params(labelsize=7)
            ax.set_ylim(bottom=0)
            if i == 0:
                ax.set_title(c, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{q}\n" + ("density of log10(eigenvalue)" if logx else "density"), fontsize=7)
            if i == len(quants) - 1:
                ax.set_xlabel("eigenvalue", fontsize=8)
    axes[0][0].legend(fontsize=6, frameon=False, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    plt.close(fig)


def plot_theory(curves: dict, path, title: str = "", logx: bool = True) -> None:
    """Predicted densities only: ``curves[(label, column)] = LayerSpectrum``; one line per label.

    Lines of labels with identical spectra lie on top of each other (the
    later ones are dashed).  With ``logx`` the density of ``log10(eigenvalue)``
    is drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(k for k, _ in curves))
    cols = list(dict.fromkeys(c for _, c in curves))
    fig, axes = plt.subplots(1, len(cols), figsize=(3.0 * len(cols), 2.6), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for j, c in enumerate(cols):
        ax = axes[0][j]
        notes = []
        for i, lab in enumerate(labels):
            spec = curves.get((lab, c))
            if spec is None:
                continue
            x = np.array([float(t) for t in spec.x])
            d = np.array([float(t) for t in spec.density])
            if x.size:
                xs = np.concatenate([[float(spec.support[0][0])], x, [float(spec.support[-1][1])]])
                ds = np.concatenate([[0.0], d, [0.0]])
                pos = xs > 0
                y = xs[pos] * ds[pos] * math.log(10) if logx else ds[pos]
                ax.plot(xs[pos], y, styles[i % 4], color=f"C{i}", lw=1.3, label=lab)
            for loc, w in spec.atoms:
                notes.append(f"{lab}: atom {float(w):.3g} at {float(loc):.3g}")
        if logx:
            ax.set_xscale("log")
            from matplotlib.ticker import NullFormatter

            ax.xaxis.set_minor_formatter(NullFormatter())
        if notes:
            ax.text(0.03, 0.97, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=5.5)
        ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.25)
        ax.set_title(c, fontsize=8)
        ax.set_xlabel("eigenvalue", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, frameon=False, loc="upper right")
    axes[0][0].set_ylabel("density of log10(eigenvalue)" if logx else "density", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    plt.close(fig)


# --------------------------------------------------------------------------
# the spectrum experiment (rfq validate-spectrum)
# --------------------------------------------------------------------------

#: Numeric fields of one matrix comparison in a stored draw.
_MATRIX_NUMBERS = ("ks", "ks_tol", "moment_tol")
_MATRIX_LISTS = ("moments_pred", "moments_emp", "moment_errors")


@dataclass(frozen=True)
class SpectrumConfig:
    """Everything ``rfq validate-spectrum`` depends on (checked on construction).

    One row per quantizer (``variants``, each on every layer); ``trials``
    draws per row; ``samples`` inputs for the conjugate kernels; ``points``
    grid points per predicted density.
    """

    input_dim: int
    widths: tuple[int, ...]
    activations: tuple = ("tanh",)
    variants: tuple = ("none", "sign", "sign-scaled")
    samples: int = 0
    trials: int = 1
    seed: int = 0
    points: int = 800

    def __post_init__(self):
        from rfq_theory.checks import InputError, check_scalar

        s = object.__setattr__
        s(self, "input_dim", check_scalar(self.input_dim, "input-dim", int, min_val=2, max_val=20000))
        widths = (self.widths,) if isinstance(self.widths, (int, str)) else tuple(self.widths)
        if not widths:
            raise InputError("widths must list at least one layer width")
        s(self, "widths", tuple(check_scalar(w, "widths", int, min_val=2, max_val=20000) for w in widths))
        acts = (self.activations,) if isinstance(self.activations, str) else tuple(self.activations)
        s(self, "activations", acts)
        variants = (self.variants,) if isinstance(self.variants, str) else tuple(self.variants)
        if not variants:
            raise InputError("quantizers: give at least one quantizer")
        if len(set(variants)) != len(variants):
            raise InputError(f"quantizers: each quantizer must appear once, got {', '.join(variants)}")
        s(self, "variants", variants)
        s(self, "samples", check_scalar(self.samples, "samples", int, min_val=2, max_val=20000))
        s(self, "trials", check_scalar(self.trials, "trials", int, min_val=1, max_val=1000))
        s(self, "seed", check_scalar(self.seed, "seed", int, min_val=0))
        s(self, "points", check_scalar(self.points, "points", int, min_val=50, max_val=100000))
        for q in variants:  # every spec is checked before any work
            self.model(q)

    def model(self, quantizer) -> DeepRF:
        """The network with ``quantizer`` on every layer."""
        return DeepRF(self.input_dim, self.widths, self.activations, quantizer)

    def as_dict(self) -> dict:
        return {
            "input_dim": self.input_dim,
            "widths": list(self.widths),
            "activations": [str(a) for a in self.activations],
            "variants": [str(q) for q in self.variants],
            "samples": self.samples,
            "trials": self.trials,
            "seed": self.seed,
            "points": self.points,
        }

    def draw_settings(self) -> dict:
        """The settings that determine a draw's numbers: not ``trials`` or ``variants``."""
        d = self.as_dict()
        d.pop("trials")
        d.pop("variants")
        return d

    def describe(self) -> str:
        return (
            f"d={self.input_dim}, widths={','.join(map(str, self.widths))}, n={self.samples}, "
            f"activations={','.join(map(str, self.activations))}"
        )


@dataclass(frozen=True)
class SpectrumDrawTask:
    """Draw ``trial`` of the quantizer row ``key``: :func:`check_spectra` plus the eigenvalues."""

    key: str
    trial: int
    model: DeepRF
    samples: int
    seed: int
    points: int
    blas_threads: int | None = 1

    def run(self) -> dict:
        rows, data = check_spectra(self.model, self.samples, seed=self.seed, trial=self.trial, points=self.points)
        return {
            "matrices": [r.as_dict() for r in rows],
            "eigenvalues": {f"{kind}-{layer}": eigs for (layer, kind), (eigs, _) in data.items()},
        }


def _check_matrices(items, with_trial: bool) -> str | None:
    from .records import check_number_list, check_numbers

    if not isinstance(items, list) or not items:
        return "field 'matrices' missing or empty"
    for m in items:
        if not isinstance(m, dict) or m.get("kind") not in ("omega", "gram") or not isinstance(m.get("layer"), int):
            return "a matrix entry lacks 'kind' or 'layer'"
        if not isinstance(m.get("passed"), bool) or (with_trial and not isinstance(m.get("trial"), int)):
            return "a matrix entry lacks 'passed' or 'trial'"
        problem = check_numbers(m, _MATRIX_NUMBERS)
        for field in _MATRIX_LISTS:
            problem = problem or check_number_list(m, field, 4)
        if problem:
            return problem
    return None


class SpectrumExperiment(Experiment):
    """Layer spectra of drawn networks against the predicted laws: one row per quantizer.

    A draw compares every ``Omega_l`` and kernel ``K_l`` of one drawn network
    (:func:`check_spectra`); a row passes when every matrix of every draw
    passes; with more than one draw the row also holds the moment errors of
    the mean over the draws (:func:`trial_means`).
    """

    name = "validate-spectrum"
    csv_columns = ["variant", "draws", "failed", "status"]

    def __init__(self, config: SpectrumConfig):
        self.config = config
        self.trials = config.trials

    def settings(self) -> dict:
        return self.config.as_dict()

    def draw_settings(self) -> dict:
        return self.config.draw_settings()

    def row_keys(self) -> list[str]:
        return [str(q) for q in self.config.variants]

    def prepare(self, keys) -> None:
        pass

    def check_memory(self, workers: int, local_draws: bool) -> None:
        pass

    def task(self, key: str, trial: int) -> SpectrumDrawTask:
        c = self.config
        return SpectrumDrawTask(key, trial, c.model(key), c.samples, c.seed, c.points)

    def check_draw(self, rec: dict) -> str | None:
        return _check_matrices(rec.get("matrices"), with_trial=False)

    def check_row(self, rec: dict) -> str | None:
        if not isinstance(rec.get("variant"), str) or not isinstance(rec.get("draws"), int):
            return "fields 'variant' and 'draws' missing"
        if not isinstance(rec.get("means"), list):
            return "field 'means' missing or not a list"
        return _check_matrices(rec.get("matrices"), with_trial=True)

    def draw_metrics(self, result: dict, store_dir) -> dict:
        """The matrix comparisons; the eigenvalues go to ``eigenvalues-<quantizer>-trial<t>.npz``."""
        if store_dir is not None:
            path = store_dir / eigenvalue_file(result["key"], result["trial"])
            np.savez_compressed(path, **{k: np.asarray(v) for k, v in result["eigenvalues"].items()})
        return {"matrices": result["matrices"]}

    def summarize_row(self, key: str, draws: dict[int, dict]) -> dict:
        trials = sorted(draws)[: self.trials]
        matrices = [dict(m, trial=t) for t in trials for m in draws[t]["matrices"]]
        failed = sum(not m["passed"] for m in matrices)
        means = trial_means([dict(m, quantizer_spec=key) for m in matrices]) if len(trials) > 1 else []
        return {
            "key": key,
            "variant": key,
            "draws": len(trials),
            "matrices": matrices,
            "failed": failed,
            "means": means,
            "status": "fail" if failed else "pass",
        }

    def report(self, rows: list[dict], fp: str) -> dict:
        from ..runner import overall_verdict, status_counts

        expected = len(self.config.variants)
        counts = status_counts(rows)
        return {
            "config": self.config.as_dict(),
            "model": self.config.describe(),
            "fingerprint": fp,
            "tolerance": {
                "rule": "KS <= KS_CONSTANT / N and |M_j,emp / M_j - 1| <= MOMENT_CONSTANT * s * j / N",
                "KS_CONSTANT": KS_CONSTANT,
                "MOMENT_CONSTANT": MOMENT_CONSTANT,
            },
            "summary": {
                "rows": len(rows),
                "expected_rows": expected,
                "complete": len(rows) == expected,
                **counts,
                "failed_matrices": sum(r["failed"] for r in rows),
                "verdict": overall_verdict(rows, expected),
            },
            "means": [m for r in rows for m in r["means"]],
            "warnings": [],
            "rows": rows,
            "files": {},
        }

    def write_outputs(self, store, rows: list[dict], report: dict, figure: bool) -> None:
        import json

        from .records import atomic_write_text

        if report["means"]:
            path = store.dir / "means.json"
            atomic_write_text(path, json.dumps(report["means"], indent=1))
            report["files"]["means"] = str(path)
        if not figure or not rows:
            return
        from rfq_theory.spectra import layer_spectrum

        c = self.config
        panels = {}
        for r in rows:
            eig = store.dir / eigenvalue_file(r["key"], 0)
            if not eig.exists():
                continue
            saved = np.load(eig)
            model = c.model(r["key"])
            for name in saved.files:
                kind, layer = name.split("-")
                spec = layer_spectrum(model, int(layer), c.samples if kind == "gram" else None, points=c.points)
                panels[(r["key"], _column(kind, int(layer)))] = (saved[name], spec)
        if panels:
            path = store.dir / "spectra.png"
            plot_spectra(panels, path, title=c.describe())
            report["files"]["figure"] = str(path)

    def format(self, report: dict) -> str:
        lines = [f"model: {report['model']}"]
        for r in report["rows"]:
            for m in r["matrices"]:
                lines.append(
                    f"{r['variant']:<12} trial {m['trial']} layer {m['layer']} {m['kind']:<5} N={m['n_min']:<5} "
                    f"KS={m['ks']:.4f} (tol {m['ks_tol']:.4f}) moment errors "
                    f"{' '.join(f'{e:+.4f}' for e in m['moment_errors'])} (tol {m['moment_tol']:.4f} j) "
                    f"{'pass' if m['passed'] else 'FAIL'}"
                )
        if report["means"]:
            lines.append(
                "moment errors of the mean over the draws (per-draw fluctuations average out; a bias would not):"
            )
            for m in report["means"]:
                lines.append(
                    f"{m['quantizer']:<12} layer {m['layer']} {m['kind']:<5} {m['draws']} draws  "
                    f"mean {' '.join(f'{e:+.4f}' for e in m['mean_errors'])}  "
                    f"largest single draw {' '.join(f'{e:.4f}' for e in m['max_single_errors'])}"
                )
        s = report["summary"]
        ex = report.get("execution")
        if ex:
            where = "in this process" if ex["kind"] == "in-process" else f"on {ex['workers']} {ex['kind']} worker(s)"
            lines.append(f"ran {ex['draws_run']} draws {where} ({ex['draws_reused']} reused) in {ex['wall_s']:.1f} s")
        for w in report["warnings"]:
            lines.append(f"warning: {w}")
        lines.append(
            f"verdict: {s['verdict'].upper()}  ({s['pass']} pass, {s['fail']} fail of {s['expected_rows']} "
            f"quantizers; {s['failed_matrices']} matrix comparison(s) fail)"
        )
        return "\n".join(lines)


def eigenvalue_file(quantizer: str, trial: int) -> str:
    """Name of the file holding the eigenvalues of draw ``trial`` of ``quantizer``."""
    return f"eigenvalues-{''.join(ch if ch.isalnum() else '_' for ch in quantizer)}-trial{trial}.npz"


def _column(kind, layer):
    return f"$\\Omega_{layer}$" if kind == "omega" else f"kernel, layer {layer}"
