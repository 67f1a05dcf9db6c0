"""Learning curves of a real data set: the theory against the real network (``rfq data``).

The data set is read as the theory's structured-input model by
:func:`validation.realdata.estimate_structure` (spectrum ``lambda_i``, teacher
profile ``beta_i^2``, label noise ``Delta``, all errors in units of the linear
signal's variance).  For every variant (a quantizer applied to every layer)
the theory predicts the test error ``E(n)`` of the ridge readout at each ``n``
of the grid (:func:`rfq_theory.batch.solve_batch`, linear target, noise
``Delta``).

One draw ``t`` of row ``(variant, n)``:

- weights ``Q(W_l)`` of :func:`~validation.montecarlo.simulate.draw_weights`
  with ``(seed, t)``: the same ``W`` for every variant and every ``n``
  (``none`` sees ``W``, ``sign`` sees ``sign(W)``);
- a random permutation of the ``N`` rows (the draw's ``train`` stream, the
  same for every variant and ``n``): the first ``n`` rows train, the other
  ``N - n`` test;
- features of :class:`validation.network.SimulatedNetwork` and the ridge
  readout of :func:`~validation.montecarlo.simulate.fit_readout`;
  ``test_error`` is the mean squared error on the held-out rows;
- a Gaussian surrogate of the same draw (the draw's ``test`` stream):
  ``n + surrogate_test`` rows ``x ~ N(0, Sigma)``, ``y = g + sqrt(Delta) eps``
  with the fitted spectrum and teacher, trained on ``n`` rows and tested on
  the rest, through the same network; the theory's own data model, so the
  difference between real and surrogate errors isolates the non-Gaussianity
  of the data.

Each row carries the theory, the measured mean and standard error over the
draws, ``z = (measured - theory) / SE`` and the verdict of
:func:`rfq_theory.tolerance.verdict` for the real data and for the surrogate,
the relative deviation ``measured / theory - 1`` and the paired difference
real - surrogate.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from rfq_theory.checks import InputError, check_scalar
from rfq_theory.tolerance import standard_error, verdict

from ..realdata import RealDataFit, estimate_structure, load_dataset
from ..runner import Experiment, overall_verdict, status_counts
from .realdata_report import figure_title, format_report, paired_differences, plot_learning_curves
from .records import check_number_list, check_numbers

__all__ = [
    "DEFAULT_GRID",
    "CSV_COLUMNS",
    "RealDataConfig",
    "RealDataDrawTask",
    "RealDataExperiment",
    "real_data_draw",
]

#: training-set sizes of the default learning curve
DEFAULT_GRID = (100, 200, 300, 450, 600, 800, 1000, 1200)
#: fewest held-out rows at the largest n
MIN_TEST_ROWS = 10

CSV_COLUMNS = [
    "variant",
    "samples",
    "test_rows",
    "ridge",
    "noise",
    "theory_test",
    "mc_test",
    "mc_test_se",
    "z",
    "relative_deviation",
    "relative_deviation_se",
    "linear_test",
    "linear_test_se",
    "linear_z",
    "linear_relative_deviation",
    "surrogate_test",
    "surrogate_test_se",
    "surrogate_z",
    "surrogate_relative_deviation",
    "real_minus_surrogate",
    "real_minus_surrogate_se",
    "theory_train",
    "mc_train",
    "mc_train_se",
    "draws",
    "status",
    "surrogate_status",
]

_DRAW_FIELDS = ("test_error", "train_error", "linear_test", "linear_train", "surrogate_test", "surrogate_train")


@dataclass(frozen=True)
class RealDataConfig:
    """Settings of ``rfq data`` (checked on construction; :class:`InputError` names the option)."""

    dataset: str = "digits"
    target: str | None = None
    widths: tuple = (800,)
    activations: tuple = ("tanh",)
    variants: tuple = ("none", "sign")
    grid: tuple = DEFAULT_GRID
    ridge: float = 0.1
    trials: int = 20
    seed: int = 0
    surrogate_test: int = 2000

    def __post_init__(self):
        s = object.__setattr__
        if not isinstance(self.dataset, str):
            raise InputError(f"dataset must be 'digits' or 'file:PATH.npz', got {self.dataset!r}")
        if self.dataset == "digits" and self.target is None:
            s(self, "target", "lt5")  # the default labels, spelled out (one fingerprint for both spellings)
        widths = tuple(
            check_scalar(k, f"widths[{i}]", int, min_val=1, max_val=20000) for i, k in enumerate(self.widths)
        )
        if not widths:
            raise InputError("widths must list at least one width")
        s(self, "widths", widths)
        acts = tuple(str(a) for a in self.activations)
        if len(acts) not in (1, len(widths)):
            raise InputError(f"activations: give one activation or one per layer ({len(widths)}), got {len(acts)}")
        s(self, "activations", acts)
        variants = tuple(str(v) for v in self.variants)
        if not variants or len(set(variants)) != len(variants):
            raise InputError(f"quantizers must be distinct and at least one, got {','.join(variants)!r}")
        s(self, "variants", variants)
        grid = []
        for g in self.grid:
            gf = float(g)
            if not (math.isfinite(gf) and gf == round(gf) and gf >= 2):
                raise InputError(f"grid: training-set sizes must be whole numbers >= 2, got {g!r}")
            grid.append(int(gf))
        if not grid or len(set(grid)) != len(grid):
            raise InputError("grid must list distinct training-set sizes")
        s(self, "grid", tuple(sorted(grid)))
        s(self, "ridge", check_scalar(self.ridge, "ridge", float, min_val=0))
        s(self, "trials", check_scalar(self.trials, "draws", int, min_val=2, max_val=100000))
        s(self, "seed", check_scalar(self.seed, "seed", int, min_val=0))
        s(self, "surrogate_test", check_scalar(self.surrogate_test, "surrogate_test", int, min_val=0, max_val=10**6))

    def as_dict(self) -> dict:
        """JSON-ready settings."""
        return {
            "dataset": self.dataset,
            "target": self.target,
            "widths": list(self.widths),
            "activations": list(self.activations),
            "variants": list(self.variants),
            "grid": list(self.grid),
            "ridge": self.ridge,
            "trials": self.trials,
            "seed": self.seed,
            "surrogate_test": self.surrogate_test,
        }


def _row_key(variant: str, n: int) -> str:
    return f"{variant}@n={n}"


def real_data_draw(
    fit: RealDataFit, model, samples: int, ridge: float, seed: int, trial: int, surrogate_test: int
) -> dict:
    """Test and train errors of draw ``trial`` on the real rows and on the Gaussian surrogate.

    See the module docstring for the draw; ``surrogate_test = 0`` skips the
    surrogate (its fields are then ``nan``).
    """
    from ..network import SimulatedNetwork
    from .backends import get_backend
    from .simulate import fit_readout, trial_generators

    ops = get_backend("numpy")
    gens = trial_generators(seed, trial)
    net = SimulatedNetwork(model, seed, trial, ops=ops)
    n = int(samples)
    perm = gens["train"].permutation(fit.rows)
    train, test = perm[:n], perm[n:]
    Z = net.features(fit.X)
    w = fit_readout(ops, Z[train], fit.y[train], ridge)
    out = {
        "test_error": float(np.mean((fit.y[test] - Z[test] @ w) ** 2)),
        "train_error": float(np.mean((fit.y[train] - Z[train] @ w) ** 2)),
        "surrogate_test": float("nan"),
        "surrogate_train": float("nan"),
    }
    eps = gens["train_noise"].standard_normal(fit.rows)
    y_lin = fit.X @ fit.direction + math.sqrt(fit.noise) * eps
    w_lin = fit_readout(ops, Z[train], y_lin[train], ridge)
    out["linear_test"] = float(np.mean((y_lin[test] - Z[test] @ w_lin) ** 2))
    out["linear_train"] = float(np.mean((y_lin[train] - Z[train] @ w_lin) ** 2))
    if surrogate_test > 0:
        xs, ys = fit.gaussian_surrogate(gens["test"], n + surrogate_test)
        Zs = net.features(xs)
        ws = fit_readout(ops, Zs[:n], ys[:n], ridge)
        out["surrogate_test"] = float(np.mean((ys[n:] - Zs[n:] @ ws) ** 2))
        out["surrogate_train"] = float(np.mean((ys[:n] - Zs[:n] @ ws) ** 2))
    return out


@dataclass
class RealDataDrawTask:
    """One draw of one row (picklable: carries the fitted data and the model)."""

    key: str
    trial: int
    fit: RealDataFit
    model: object
    samples: int
    ridge: float
    seed: int
    surrogate_test: int
    blas_threads: int | None = 1

    def run(self) -> dict:
        """:func:`real_data_draw` for these draw settings."""
        return real_data_draw(
            self.fit, self.model, self.samples, self.ridge, self.seed, self.trial, self.surrogate_test
        )


def _check_draw(rec: dict) -> str | None:
    return check_numbers(rec, _DRAW_FIELDS)


def _check_row(rec: dict) -> str | None:
    if not isinstance(rec.get("variant"), str):
        return "field 'variant' missing or not a string"
    problem = check_numbers(rec, ("theory_test", "mc_test", "mc_test_se", "z", "surrogate_test", "surrogate_z"))
    if problem:
        return problem
    for f in ("samples", "draws"):
        if not isinstance(rec.get(f), int) or isinstance(rec.get(f), bool):
            return f"field {f!r} missing or not an integer"
    return check_number_list(rec, "mc_test_draws")


class RealDataExperiment(Experiment):
    """``rfq data`` as an :class:`~validation.runner.Experiment` (rows: variant x n).

    Loads and fits the data set on construction; ``plot_path`` (optional)
    is where the figure goes instead of ``OUT/figure.png``.
    """

    name = "data"
    csv_columns = CSV_COLUMNS

    def __init__(self, config: RealDataConfig, plot_path=None):
        self.config = c = config
        self.plot_path = plot_path
        X, y = load_dataset(c.dataset, c.target)
        self.fit = estimate_structure(X, y)
        self._data_hash = hashlib.sha256(
            np.ascontiguousarray(X, dtype=float).tobytes() + np.ascontiguousarray(y, dtype=float).tobytes()
        ).hexdigest()[:16]
        largest = c.grid[-1]
        if largest > self.fit.rows - MIN_TEST_ROWS:
            raise InputError(
                f"grid: the largest training-set size {largest} leaves fewer than {MIN_TEST_ROWS} of the "
                f"{self.fit.rows} rows for testing; use n <= {self.fit.rows - MIN_TEST_ROWS}"
            )
        self.trials = c.trials
        self.models = {v: self.fit.model(c.widths, c.activations, v) for v in c.variants}
        self._theory: dict[str, dict] = {}

    # -- identity
    def settings(self) -> dict:
        return {"command": "data", **self.config.as_dict(), "data": self._data_hash}

    def draw_settings(self) -> dict:
        c = self.config
        return {
            "command": "data",
            "data": self._data_hash,
            "dataset": c.dataset,
            "target": c.target,
            "widths": list(c.widths),
            "activations": list(c.activations),
            "ridge": c.ridge,
            "seed": c.seed,
            "surrogate_test": c.surrogate_test,
        }

    def row_keys(self) -> list[str]:
        return [_row_key(v, n) for n in self.config.grid for v in self.config.variants]

    def _parse(self, key: str) -> tuple[str, int]:
        variant, n = key.rsplit("@n=", 1)
        return variant, int(n)

    # -- theory
    def theory(self, variant: str) -> dict:
        """``{n: (test, train)}`` of ``variant`` on the grid (cached)."""
        if variant not in self._theory:
            from rfq_theory.batch import solve_batch

            grid = np.asarray(self.config.grid, dtype=float)
            res = solve_batch(self.models[variant], grid, self.config.ridge, self.fit.noise, "linear", warn=False)
            self._theory[variant] = {
                int(n): (float(te), float(tr)) for n, te, tr in zip(self.config.grid, res.test_error, res.train_error)
            }
        return self._theory[variant]

    def curves(self, points: int = 120) -> dict:
        """Dense theory curves ``{variant: (n, E(n))}`` for the figure."""
        from rfq_theory.batch import solve_batch

        lo, hi = self.config.grid[0], self.config.grid[-1]
        ns = np.linspace(lo, hi, points)
        out = {}
        for v, m in self.models.items():
            res = solve_batch(m, ns, self.config.ridge, self.fit.noise, "linear", warn=False)
            out[v] = (ns, np.asarray(res.test_error, dtype=float))
        return out

    def prepare(self, keys: list[str]) -> None:
        for v in {self._parse(k)[0] for k in keys}:
            values = self.theory(v)
            bad = [n for n, (te, _) in values.items() if not math.isfinite(te)]
            if len(bad) == len(values):
                raise ArithmeticError(f"the theory did not converge for quantizer {v!r} at any n of the grid")

    def memory_bytes(self) -> int:
        """Estimated peak memory of one draw: the data, the features of every real and surrogate row,
        the weights and the readout's Gram matrix (float64)."""
        c, N, d = self.config, self.fit.rows, self.fit.dim
        sizes = (d,) + c.widths
        kmax, p, n = max(c.widths), c.widths[-1], c.grid[-1]
        rows = N + n + c.surrogate_test
        weights = 3 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        return 8 * (weights + 2 * N * d + rows * (d + 2 * kmax) + 3 * min(n, p) ** 2)

    def check_memory(self, workers: int, local_draws: bool) -> None:
        from .simulate import available_memory

        need = self.memory_bytes() * (workers if local_draws else 1)
        avail = available_memory()
        if avail is not None and need > avail:
            raise InputError(
                f"this run needs about {need / 2**30:.1f} GiB of memory but {avail / 2**30:.1f} GiB is "
                "available; reduce --widths, --grid, --surrogate-test or --workers"
            )

    # -- draws
    def task(self, key: str, trial: int) -> RealDataDrawTask:
        variant, n = self._parse(key)
        c = self.config
        return RealDataDrawTask(key, trial, self.fit, self.models[variant], n, c.ridge, c.seed, c.surrogate_test)

    def check_draw(self, rec: dict) -> str | None:
        return _check_draw(rec)

    def check_row(self, rec: dict) -> str | None:
        return _check_row(rec)

    def summarize_row(self, key: str, draws: dict[int, dict]) -> dict:
        c = self.config
        variant, n = self._parse(key)
        te_theory, tr_theory = self.theory(variant)[n]
        trials = sorted(draws)[: c.trials]
        real = [float(draws[t]["test_error"]) for t in trials]
        train = [float(draws[t]["train_error"]) for t in trials]
        surr = [draws[t]["surrogate_test"] for t in trials]
        has_surr = all(v is not None and math.isfinite(v) for v in surr)
        sizes = (self.fit.dim,) + c.widths + (n,)
        mean, se = float(np.mean(real)), standard_error(real)
        v_real = verdict(mean, se, te_theory, len(real), sizes)
        row = {
            "key": key,
            "variant": variant,
            "samples": n,
            "test_rows": self.fit.rows - n,
            "ridge": c.ridge,
            "noise": self.fit.noise,
            "widths": list(c.widths),
            "theory_test": te_theory,
            "theory_train": tr_theory,
            "mc_test": mean,
            "mc_test_se": se,
            "mc_train": float(np.mean(train)),
            "mc_train_se": standard_error(train),
            "draws": len(real),
            "mc_test_draws": real,
            "trials": trials,
            "z": v_real["z"],
            "z_crit": v_real["z_crit"],
            "allowance": v_real["allowance"],
            "status": v_real["status"],
            "relative_deviation": mean / te_theory - 1 if te_theory else float("nan"),
            "relative_deviation_se": se / abs(te_theory) if te_theory else float("nan"),
            "surrogate_test": float("nan"),
            "surrogate_test_se": float("nan"),
            "surrogate_z": float("nan"),
            "surrogate_status": "n/a",
            "surrogate_relative_deviation": float("nan"),
            "real_minus_surrogate": float("nan"),
            "real_minus_surrogate_se": float("nan"),
            "warnings": [],
        }
        lin = [float(draws[t]["linear_test"]) for t in trials]
        lmean, lse = float(np.mean(lin)), standard_error(lin)
        row.update(
            linear_test=lmean,
            linear_test_se=lse,
            linear_z=verdict(lmean, lse, te_theory, len(lin), sizes)["z"],
            linear_relative_deviation=lmean / te_theory - 1 if te_theory else float("nan"),
            linear_draws=lin,
        )
        if has_surr:
            sv = [float(x) for x in surr]
            smean, sse = float(np.mean(sv)), standard_error(sv)
            v_s = verdict(smean, sse, te_theory, len(sv), sizes)
            diff = [a - b for a, b in zip(real, sv)]
            row.update(
                surrogate_test=smean,
                surrogate_test_se=sse,
                surrogate_z=v_s["z"],
                surrogate_status=v_s["status"],
                surrogate_relative_deviation=smean / te_theory - 1 if te_theory else float("nan"),
                real_minus_surrogate=float(np.mean(diff)),
                real_minus_surrogate_se=standard_error(diff),
                surrogate_draws=sv,
            )
        return row

    # -- report
    def report(self, rows: list[dict], fp: str) -> dict:
        c = self.config
        expected = len(self.row_keys())
        notes = list(dict.fromkeys(note for m in self.models.values() for note in m.notes()))
        surrogate_rows = [r for r in rows if r.get("surrogate_status") != "n/a"]
        summary = {
            "verdict": overall_verdict(rows, expected),
            "counts": status_counts(rows),
            "surrogate_verdict": overall_verdict(
                [dict(r, status=r["surrogate_status"]) for r in surrogate_rows], expected
            )
            if surrogate_rows
            else "n/a",
            "max_abs_relative_deviation": max((abs(r["relative_deviation"]) for r in rows), default=float("nan")),
        }
        fit = self.fit.summary()
        from ..machine import environment, package_versions

        env = dict(environment(), scikit_learn=package_versions(("scikit-learn",))["scikit-learn"])
        return {
            "environment": env,
            "paired": paired_differences(rows, c.variants),
            "config": dict(c.as_dict(), fingerprint=fp, data_hash=self._data_hash),
            "data": fit,
            "units": "test MSE of the labels divided by the linear signal's standard deviation "
            "(multiply by signal_sd^2 for the units of y)",
            "summary": summary,
            "notes": notes,
            "warnings": [],
            "rows": rows,
            "files": {},
        }

    def write_outputs(self, store, rows: list[dict], report: dict, figure: bool) -> None:
        if figure and rows:
            path = self.plot_path if self.plot_path else store.dir / "figure.png"
            plot_learning_curves(rows, self.curves(), path, figure_title(self.config, self.fit), self.fit.noise)
            report["files"]["figure"] = str(path)

    def format(self, report: dict) -> str:
        return format_report(report)
