"""Theory vs Monte Carlo of real networks on structured inputs ``x ~ N(0, Sigma)``.

Run ``python -m benchmarks.structured_validation run --out FILE.jsonl`` (then
``report FILE.jsonl`` prints the two tables of ``docs/structured-data.md``).
Two tables:

- *concentrated*: twelve configurations with ``Sigma`` of the family
  ``power:a``, ``0.3 <= a <= 0.9`` (the first layer's pre-activation
  variances concentrate as ``d`` grows), teacher ``power:b``, depth 1-3,
  weights ``none``/``sign``/``sign-scaled``, ``Sigma`` diagonal in the input
  coordinates (``axis``) or in a Haar-random basis (``rotated``), ridge and
  logistic readouts; per configuration the theory (:func:`rfq_theory.predict`
  or :func:`rfq_theory.glm.predict_glm`), the Monte Carlo mean and standard
  error over draws, and ``z = (MC - theory) / SE``;
- *heavy*: ``a in {1, 1.5, 2}`` and ``b in {0, 1}``, Gaussian weights
  against sign weights drawn from the same ``W`` (paired draws), axis
  against rotated ``Sigma``: the theory (the same for both weights), each
  Monte Carlo mean with its ``z``, and the paired difference sign - Gaussian
  with its standard error.

Sizes scale with ``--dim`` (``d``; widths ``1.5 d`` per layer, ``n`` from
``d`` to ``2 d``).  Each finished draw is appended to the JSON-lines file at
once (a line per draw, the run's settings and machine on the first line);
a second ``run`` on the same file continues where it stopped.  The draws
go round-robin over configurations, so a stopped run has the same number of
draws in every row.  Every draw is one single-threaded BLAS process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Cell", "concentrated_cells", "heavy_cells", "run", "load", "summarize", "format_tables", "main"]


@dataclass(frozen=True)
class Cell:
    """One row: a model, a readout and the data, at ``d = dim``; sizes are ratios to ``d``."""

    name: str
    table: str
    spectrum: str
    teacher: str
    activations: tuple[str, ...]
    quantizer: str
    basis: str
    loss: str  # "square" (ridge, regression labels) or "logistic" (sign labels)
    n_ratio: float
    ridge: float
    noise: float
    width_ratio: float = 1.5

    def sizes(self, dim: int) -> tuple[tuple[int, ...], int]:
        k = int(round(self.width_ratio * dim))
        return (k,) * len(self.activations), int(round(self.n_ratio * dim))

    def model(self, dim: int):
        from rfq_theory import DeepRF

        widths, _ = self.sizes(dim)
        return DeepRF(dim, widths, self.activations, self.quantizer, self.spectrum, self.teacher)


def concentrated_cells() -> list[Cell]:
    """The twelve configurations of the concentrated regime (``0.3 <= a <= 0.9``)."""
    t, tr, etr = ("tanh",), ("tanh", "relu"), ("erf", "tanh", "relu")
    c = "concentrated"
    return [
        Cell("c01", c, "power:0.3", "flat", t, "none", "axis", "square", 1.5, 1e-2, 0.1),
        Cell("c02", c, "power:0.5", "power:1", t, "sign", "axis", "square", 1.0, 1e-2, 0.1),
        Cell("c03", c, "power:0.7", "power:1", ("erf",), "sign-scaled", "axis", "square", 2.0, 1e-3, 0.0),
        Cell("c04", c, "power:0.9", "power:0.5", t, "sign", "axis", "square", 1.5, 1e-2, 0.1),
        Cell("c05", c, "power:0.5", "power:0.5", tr, "none", "rotated", "square", 1.5, 1e-2, 0.1),
        Cell("c06", c, "power:0.7", "power:1.5", tr, "sign", "rotated", "square", 2.0, 1e-2, 0.0),
        Cell("c07", c, "power:0.3", "power:1", etr, "sign", "axis", "square", 1.5, 1e-1, 0.1),
        Cell("c08", c, "power:0.6", "flat", ("relu", "tanh"), "sign-scaled", "axis", "square", 1.0, 1e-2, 0.1),
        Cell("c09", c, "power:0.5", "power:1", t, "none", "axis", "logistic", 1.5, 1e-2, 0.0),
        Cell("c10", c, "power:0.7", "power:0.5", t, "sign", "axis", "logistic", 2.0, 1e-2, 0.1),
        Cell("c11", c, "power:0.4", "power:1.5", tr, "sign", "rotated", "logistic", 1.5, 1e-2, 0.0),
        Cell("c12", c, "power:0.9", "flat", ("erf",), "sign-scaled", "rotated", "logistic", 1.0, 1e-1, 0.0),
    ]


def heavy_cells() -> list[Cell]:
    """The heavy regime: ``a in {1, 1.5, 2}``, ``b in {0, 1}``, Gaussian and sign weights, axis and rotated."""
    out = []
    for a in ("1", "1.5", "2"):
        for b in ("0", "1"):
            for basis in ("axis", "rotated"):
                for q in ("none", "sign"):
                    name = f"h-a{a}-b{b}-{basis}-{q}"
                    teacher = "flat" if b == "0" else f"power:{b}"
                    out.append(
                        Cell(name, "heavy", f"power:{a}", teacher, ("tanh",), q, basis, "square", 1.5, 1e-2, 0.1)
                    )
    return out


def theory(cell: Cell, dim: int) -> float:
    """The test error the theory predicts (the test classification error for the logistic readout)."""
    from rfq_theory import predict
    from rfq_theory.glm import predict_glm

    _, n = cell.sizes(dim)
    model = cell.model(dim)
    if cell.loss == "square":
        return float(predict(model, n, cell.ridge, cell.noise).test_error)
    return float(predict_glm(model, n, cell.ridge, cell.noise, "linear", "sign", cell.loss).test_error)


def draw(cell: Cell, dim: int, trial: int, seed: int, test_samples: int) -> float:
    """The test error of draw ``trial`` (the classification error for the logistic readout)."""
    from validation.montecarlo.glm_validate import GLMConfig, simulate_glm_trial
    from validation.montecarlo.simulate import simulate_trial

    widths, n = cell.sizes(dim)
    if cell.loss == "square":
        model = cell.model(dim)
        test, _ = simulate_trial(
            model, n, cell.ridge, cell.noise, seed=seed, trial=trial, test_samples=test_samples, basis=cell.basis
        )
        return float(test)
    cfg = GLMConfig(
        dim,
        widths,
        cell.activations,
        cell.quantizer,
        cell.loss,
        n,
        cell.ridge,
        cell.noise,
        "sign",
        1,
        test_samples,
        seed,
        cell.spectrum,
        cell.teacher,
        cell.basis,
    )
    return float(simulate_glm_trial(cfg, trial)["test_error"])


def finite_size(cell: Cell, dim: int, seed: int, trial: int = 0) -> float:
    """The finite-size route on draw ``trial``'s realized network (same weights and rotation as the draw)."""
    from validation.montecarlo.finite_size import finite_size_predict
    from validation.montecarlo.glm_validate import GLMConfig, finite_size_glm

    widths, n = cell.sizes(dim)
    if cell.loss == "square":
        model = cell.model(dim)
        return float(
            finite_size_predict(model, n, cell.ridge, cell.noise, seed=seed, trial=trial, basis=cell.basis).test_error
        )
    cfg = GLMConfig(
        dim, widths, cell.activations, cell.quantizer, cell.loss, n, cell.ridge, cell.noise, "sign", 2, 1, seed,
        cell.spectrum, cell.teacher, cell.basis,
    )  # fmt: skip
    result = finite_size_glm(cfg, trial)
    assert result is not None
    return float(result["test_error"])


def run_finite_size(out, tables=("concentrated", "heavy")) -> None:
    """Append the finite-size route of draw 0 of every cell to an existing results file (skips cells done)."""
    from threadpoolctl import threadpool_limits

    header, _, _ = load(out)
    if header is None:
        raise SystemExit(f"{out}: run the draws first")
    s = header["settings"]
    done = {r["cell"] for r in _records(out, "finite_size")}
    with open(out, "a") as fh, threadpool_limits(limits=1):
        for cell in concentrated_cells() + heavy_cells():
            if cell.table not in tables or cell.name in done:
                continue
            t0 = time.perf_counter()
            value = finite_size(cell, s["dim"], s["seed"])
            rec = {"record": "finite_size", "cell": cell.name, "trial": 0, "test_error": value}
            fh.write(json.dumps({**rec, "seconds": time.perf_counter() - t0}) + "\n")
            fh.flush()
            print(f"{cell.name} finite-size route: {value:.5g}", file=sys.stderr)


def _records(path, kind: str) -> list[dict]:
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("record") == kind:
            out.append(rec)
    return out


def load(path) -> tuple[dict | None, dict, list[dict]]:
    """``(header, theories, draws)`` of a results file (torn last lines are skipped)."""
    header, theories, draws = None, {}, []
    p = Path(path)
    if not p.exists():
        return None, {}, []
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind = rec.get("record")
        if kind == "header":
            header = rec
        elif kind == "theory":
            theories[rec["cell"]] = rec
        elif kind == "draw":
            draws.append(rec)
    return header, theories, draws


def run(
    out,
    dim: int = 1000,
    trials: int = 12,
    seed: int = 0,
    test_samples: int = 4000,
    tables=("concentrated", "heavy"),
    cells=None,
):
    """Append the theory of every cell, then the draws round-robin, to ``out``; resumes a stopped run.

    ``cells``: names of the cells to run (default: every cell of ``tables``).
    """
    from threadpoolctl import threadpool_limits

    from validation.machine import environment

    cells = [
        c for c in concentrated_cells() + heavy_cells() if c.table in tables and (cells is None or c.name in cells)
    ]
    header, theories, draws = load(out)
    settings = {"dim": dim, "seed": seed, "test_samples": test_samples}
    if header is not None and header["settings"] != settings:
        raise SystemExit(f"{out} holds a run with other settings ({header['settings']}); use another file")
    done = {(d["cell"], d["trial"]) for d in draws}
    with open(out, "a") as fh, threadpool_limits(limits=1):

        def write(rec):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        if header is None:
            write({"record": "header", "settings": settings, "environment": environment(), "argv": sys.argv})
        for cell in cells:
            if cell.name not in theories:
                t0 = time.perf_counter()
                value = theory(cell, dim)
                write({"record": "theory", "cell": cell.name, "theory": value, "seconds": time.perf_counter() - t0})
        for trial in range(trials):
            for cell in cells:
                if (cell.name, trial) in done:
                    continue
                t0 = time.perf_counter()
                value = draw(cell, dim, trial, seed, test_samples)
                write(
                    {
                        "record": "draw",
                        "cell": cell.name,
                        "trial": trial,
                        "test_error": value,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                print(f"{cell.name} draw {trial}: {value:.5g} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)


def _mean_se(values):
    import numpy as np

    v = np.asarray(values, dtype=float)
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")
    return float(v.mean()), se


def summarize(path) -> dict:
    """Per-cell theory, MC mean, SE (floored at the binomial one for classification errors), z; paired differences."""
    header, theories, draws = load(path)
    if header is None:
        raise SystemExit(f"{path}: no results")
    s = header["settings"]
    cells = {c.name: c for c in concentrated_cells() + heavy_cells()}
    per: dict[str, dict[int, float]] = {}
    for d in draws:
        per.setdefault(d["cell"], {})[d["trial"]] = d["test_error"]
    fs = {r["cell"]: r["test_error"] for r in _records(path, "finite_size")}
    rows = {}
    for name, cell in cells.items():
        if name not in theories or len(per.get(name, {})) < 2:
            continue
        vals = [per[name][t] for t in sorted(per[name])]
        mean, se = _mean_se(vals)
        th = theories[name]["theory"]
        if cell.loss != "square":  # a classification error: at least the binomial standard error
            p = min(max(th, 0.0), 1.0)
            se = max(se, math.sqrt(p * (1 - p) / (s["test_samples"] * len(vals))))
        rows[name] = {
            "cell": asdict(cell),
            "theory": th,
            "mc": mean,
            "se": se,
            "z": (mean - th) / se,
            "draws": len(vals),
            "finite_size": fs.get(name),
            "seconds_per_draw": sum(d["seconds"] for d in draws if d["cell"] == name) / len(vals),
        }
    pairs = {}
    for name, cell in cells.items():
        if cell.table != "heavy" or cell.quantizer != "sign":
            continue
        ref = name[: -len("sign")] + "none"
        common = sorted(set(per.get(name, {})) & set(per.get(ref, {})))
        if len(common) < 2:
            continue
        diff = [per[name][t] - per[ref][t] for t in common]
        mean, se = _mean_se(diff)
        pairs[name[: -len("-sign")]] = {"diff": mean, "se": se, "z": mean / se, "draws": len(common)}
    return {"header": header, "rows": rows, "pairs": pairs}


def format_tables(summary: dict) -> str:
    """The two markdown tables and the settings line.

    ``spread`` is :func:`rfq_theory.input_spectrum.variance_spread`: the relative spread of the
    first layer's pre-activation variances over Gaussian-weight neurons.
    """
    from rfq_theory.input_spectrum import input_spectrum, variance_spread

    h = summary["header"]
    env, s = h["environment"], h["settings"]
    rows, pairs = summary["rows"], summary["pairs"]
    out = [
        f"d = {s['dim']}, seed {s['seed']}, {s['test_samples']} test points per draw; {env['cpu']} "
        f"({env['cpu_count']} cores), {env['date']}, Python {env['python']}, rfq-theory {env['rfq_theory']}, "
        f"NumPy {env['numpy']}, SciPy {env['scipy']}",
        "",
        "| row | a | b | activations | weights | basis | readout | n/d | ridge | Delta | theory | finite-size "
        "| MC mean +- SE | z | draws |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        c = r["cell"]
        if c["table"] != "concentrated":
            continue
        out.append(
            f"| {name} | {c['spectrum'].split(':')[1]} | {_b(c['teacher'])} | {','.join(c['activations'])} "
            f"| {c['quantizer']} | {c['basis']} | {'ridge' if c['loss'] == 'square' else c['loss']} "
            f"| {c['n_ratio']:g} | {c['ridge']:g} | {c['noise']:g} | {r['theory']:.4f} | {_fs(r)} "
            f"| {r['mc']:.4f} +- {r['se']:.4f} | {r['z']:+.2f} | {r['draws']} |"
        )
    out += [
        "",
        "| a | b | spread | basis | theory | finite-size Gaussian / sign | Gaussian W: MC +- SE | z "
        "| sign W: MC +- SE | z | sign - Gaussian (paired) | z |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, p in pairs.items():
        g, sg = rows.get(key + "-none"), rows.get(key + "-sign")
        if g is None or sg is None:
            continue
        c = g["cell"]
        spread = variance_spread(input_spectrum(c["spectrum"]), s["dim"])
        out.append(
            f"| {c['spectrum'].split(':')[1]} | {_b(c['teacher'])} | {spread:.2f} | {c['basis']} | {g['theory']:.4f} "
            f"| {_fs(g)} / {_fs(sg)} "
            f"| {g['mc']:.4f} +- {g['se']:.4f} | {g['z']:+.1f} | {sg['mc']:.4f} +- {sg['se']:.4f} | {sg['z']:+.1f} "
            f"| {p['diff']:+.4f} +- {p['se']:.4f} | {p['z']:+.1f} |"
        )
    return "\n".join(out)


def _fs(row: dict) -> str:
    return "-" if row.get("finite_size") is None else f"{row['finite_size']:.4f}"


def _b(teacher: str) -> str:
    return "0" if teacher == "flat" else teacher.split(":")[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="simulate (appends to OUT; continues a stopped run)")
    r.add_argument("--out", required=True)
    r.add_argument("--dim", type=int, default=1000)
    r.add_argument("--trials", type=int, default=12)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--test-samples", type=int, default=4000)
    r.add_argument("--tables", default="concentrated,heavy")
    r.add_argument("--cells", default=None, help="comma-separated row names (default: every row of the tables)")
    f = sub.add_parser("finite-size", help="append the finite-size route of draw 0 of every cell to OUT")
    f.add_argument("--out", required=True)
    f.add_argument("--tables", default="concentrated,heavy")
    q = sub.add_parser("report", help="print the tables of a results file")
    q.add_argument("path")
    q.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.cmd == "finite-size":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        run_finite_size(args.out, tuple(args.tables.split(",")))
        return 0
    if args.cmd == "run":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        cells = None if args.cells is None else tuple(args.cells.split(","))
        run(args.out, args.dim, args.trials, args.seed, args.test_samples, tuple(args.tables.split(",")), cells)
        return 0
    summary = summarize(args.path)
    print(json.dumps(summary, indent=1) if args.json else format_tables(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
