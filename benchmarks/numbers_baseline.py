"""Record or compare a broad set of the solver's outputs (a regression record).

``python -m benchmarks.numbers_baseline record FILE`` writes every number to
FILE; ``python -m benchmarks.numbers_baseline compare FILE`` recomputes them
and reports the largest relative difference per group (30-digit values must
agree to 1e-25 relative, float values to 1e-12).  The record is a guard for
refactoring: it says that a change of code left the numbers alone; the
correctness of the numbers is the business of the test suite's independent
checks.
"""

from __future__ import annotations

import json
import re
import sys
import warnings

import mpmath
import numpy as np

import rfq_theory as rq

MODELS = [
    dict(input_dim=1000, widths=(2000,), activations=("tanh",)),
    dict(input_dim=1000, widths=(2000, 1500), activations=("tanh", "relu")),
    dict(input_dim=500, widths=(400, 800, 300), activations=("erf", "relu", "tanh")),
    dict(input_dim=300, widths=(900,), activations=("relu",)),
    dict(input_dim=1000, widths=(500, 2000), activations=("gelu", "sign")),
]
QUANTS = ["none", "sign", "sign-scaled", "ternary:0.5"]
POINTS = [(1200, "1e-3", "0.1"), (400, "0", "0"), (3000, "1e-1", "0.5"), (1500, "1e-2", "0")]


def s(x):
    if x is None:
        return None
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return mpmath.nstr(x, 40) if not isinstance(x, (int, str)) else str(x)


def collect():
    out = {}

    def put(group, key, value):
        out.setdefault(group, {})[key] = s(value)

    ref = json.load(open("tests/data/reference_predictions.json"))
    for i, c in enumerate(ref["cases"]):
        m = rq.DeepRF(c["input_dim"], tuple(c["widths"]), tuple(c["activations"]), tuple(c["quantizers"]))
        p = rq.predict(m, c["samples"], c["ridge"], c["noise"], c.get("target", "linear"), digits=30)
        put("ref30", f"{i}.test", p.test_error)
        put("ref30", f"{i}.train", p.train_error)
    for mi, spec in enumerate(MODELS):
        for q in QUANTS:
            m = rq.DeepRF(spec["input_dim"], spec["widths"], spec["activations"], q)
            for pi, (n, lam, delta) in enumerate(POINTS):
                key = f"m{mi}.{q}.p{pi}"
                for digits, group in ((30, "predict30"), (None, "predictf")):
                    try:
                        p = rq.predict(m, n, lam, delta, digits=digits)
                    except Exception as exc:  # noqa: BLE001
                        put(group, key, f"error:{type(exc).__name__}")
                        continue
                    put(group, key + ".test", p.test_error)
                    put(group, key + ".train", p.train_error)
                    for j, k in enumerate(p.effective_ridges):
                        put(group, key + f".kappa{j}", k)
            if q in ("none", "sign"):
                for loss in ("logistic", "hinge", "square"):
                    for digits, group in ((None, "glmf"), (30, "glm30")):
                        if digits and mi > 2:
                            continue
                        key = f"m{mi}.{q}.{loss}"
                        try:
                            g = rq.predict_glm(m, 1500, "1e-2", "0.1", labels="sign", loss=loss, digits=digits)
                        except Exception as exc:  # noqa: BLE001
                            put(group, key, f"error:{type(exc).__name__}")
                            continue
                        for name in ("test_error", "train_loss", "test_loss", "train_error"):
                            if hasattr(g, name):
                                put(group, f"{key}.{name}", getattr(g, name))
            if q in ("none", "sign-scaled"):
                try:
                    r = rq.optimal_ridge(m, 1200, noise="0.1")
                    put("optimal", f"m{mi}.{q}.lam", r[0])
                    put("optimal", f"m{mi}.{q}.err", r[1].test_error)
                except Exception as exc:  # noqa: BLE001
                    put("optimal", f"m{mi}.{q}", f"error:{type(exc).__name__}")
    # spectra: float densities on a fixed grid and 30-digit points
    from rfq_theory import spectrum as spec_mod  # noqa: F401

    sp_fn = rq.spectrum
    for mi, spec in enumerate(MODELS[:3]):
        m = rq.DeepRF(spec["input_dim"], spec["widths"], spec["activations"], "sign")
        sp = sp_fn(m, samples=1200, x=[0.05, 0.2, 0.5, 1.0, 2.0, 3.5])
        for layer in list(sp.layers) + ([sp.gram] if sp.gram is not None else []):
            for xi, di in zip(layer.x, layer.density):
                put("spectrumf", f"m{mi}.{layer.layer}.{float(xi)!r}", float(di))
            for mk, mv in enumerate(layer.moments[:4]):
                put("spectrumf", f"m{mi}.{layer.layer}.moment{mk}", float(mv))
    from importlib import import_module

    density_at = import_module("rfq_theory.spectra").density_at
    m = rq.DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign")
    for x in ("0.3", "1.1"):
        for layer in (1, 2):
            put("spectrum30", f"L{layer}.x{x}", density_at(m, x, layer=layer, digits=30))
    # phase map cells
    m = rq.DeepRF(1000, (2000, 1500, 1000), ("tanh", "relu", "erf"), "sign")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = rq.phase_map(m, "samples:0.1:4:12", "width:0.1:4:12", ridge=1e-3, noise=0.1, progress=False)
    vals = np.asarray(pm.values, dtype=float)
    for i, j in np.ndindex(vals.shape):
        put("phasef", f"{i}.{j}", float(vals[i, j]))
    # theorem and sweep
    t = rq.one_bit_theorem(rq.DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign"), 1200, "1e-3", digits=40)
    put("theorem30", "full", t.full.test_error)
    for name, val in vars(t).items():
        if name != "full" and hasattr(val, "test_error"):
            put("theorem30", name, val.test_error)
    sw = rq.sweep(
        rq.DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign"), "samples", [300, 900, 2500], ridge=1e-3, noise=0.1
    )
    for i, p in enumerate(sw):
        put("sweepf", str(i), p.test_error)
    return out


def _error_of(value):
    """Early records stored a whole ``Prediction`` repr: keep its test error."""
    match = re.search(r"test_error=(?:mpf\(')?([-0-9.e+]+)", value or "")
    return match.group(1) if match and value.startswith("Prediction") else value


def compare(old, new):
    worst = {}
    bad = 0
    for group, vals in old.items():
        # the optimal ridge is a flat minimum: lambda* is known to about 1e-7 relative
        tol = 1e-25 if group.endswith("30") else 1e-6 if group == "optimal" else 1e-12
        vals = {k: _error_of(v) for k, v in vals.items()}
        w = 0.0
        for k, v in vals.items():
            nv = new.get(group, {}).get(k)
            if (
                v is None
                or nv is None
                or v.startswith("error")
                or nv.startswith("error")
                or not v[0].isdigit()
                and v[0] != "-"
            ):
                if v != nv:
                    print(f"{group}/{k}: {v} -> {nv}")
                    bad += 1
                continue
            a, b = mpmath.mpf(v), mpmath.mpf(nv)
            rel = float(abs(a - b) / max(abs(a), mpmath.mpf("1e-300")))
            if rel > tol:
                print(f"{group}/{k}: {v} -> {nv} (rel {rel:.2e})")
                bad += 1
            w = max(w, rel)
        worst[group] = (w, len(vals))
    for g, (w, n) in worst.items():
        print(f"{g:12s} {n:4d} values, max rel diff {w:.2e}")
    return bad


def main(argv):
    mode, path = argv[1], argv[2]
    with mpmath.workdps(50):
        pass
    new = collect()
    if mode == "record":
        json.dump(new, open(path, "w"), indent=1, sort_keys=True)
        print(f"recorded {sum(len(v) for v in new.values())} values in {path}")
        return 0
    bad = compare(json.load(open(path)), new)
    print("OK" if bad == 0 else f"{bad} differences")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
