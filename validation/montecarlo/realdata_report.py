"""Tables and the figure of ``rfq data`` (:mod:`validation.montecarlo.realdata_check`).

:func:`paired_differences` pairs the rows of two quantizers draw by draw,
:func:`format_report` prints the tables, :func:`plot_learning_curves` draws
the measured points against the theory.
"""

from __future__ import annotations

import math

import numpy as np

from rfq_theory.tolerance import standard_error

__all__ = ["paired_differences", "figure_title", "format_report", "plot_learning_curves"]


def paired_differences(rows: list[dict], variants) -> list[dict]:
    """Paired differences ``variant - first variant`` per ``n`` over the common draws (the same ``W``).

    For each arm (``real``, ``linear``, ``surrogate``) the mean and standard
    error of the per-draw differences, next to the theory's difference.
    """
    if len(variants) < 2:
        return []
    base, by = variants[0], {(r["variant"], r["samples"]): r for r in rows}
    arms = (("real", "mc_test_draws"), ("linear", "linear_draws"), ("surrogate", "surrogate_draws"))
    out = []
    for other in variants[1:]:
        for (v, n), r in sorted(by.items(), key=lambda kv: kv[0][1]):
            if v != other or (base, n) not in by:
                continue
            r0 = by[(base, n)]
            entry = {"variant": other, "base": base, "samples": n, "theory": r["theory_test"] - r0["theory_test"]}
            for arm, field in arms:
                a = dict(zip(r.get("trials", []), r.get(field) or []))
                b = dict(zip(r0.get("trials", []), r0.get(field) or []))
                common = sorted(set(a) & set(b))
                d = [a[t] - b[t] for t in common]
                entry[arm] = float(np.mean(d)) if d else float("nan")
                entry[f"{arm}_se"] = standard_error(d)
            out.append(entry)
    return out


def figure_title(config, fit) -> str:
    """One-line description of the data (a ``RealDataFit``) and the model (a ``RealDataConfig``)."""
    target = f" ({config.target})" if config.dataset == "digits" else ""
    acts = ",".join(config.activations)
    widths = ",".join(str(k) for k in config.widths)
    return (
        f"{config.dataset}{target}: N={fit.rows}, d={fit.dim}, Delta={fit.noise:.3g}; "
        f"widths {widths}, {acts}, ridge {config.ridge:g}"
    )


def _fmt(x, spec=".4f") -> str:
    return "nan" if x is None or not math.isfinite(x) else format(x, spec)


def _pm(x, se, signed: bool = False) -> str:
    return f"{_fmt(x, '+.4f' if signed else '.4f')} +- {_fmt(se)}"


def _pct(x) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}%"


def format_report(report: dict) -> str:
    """Plain-text tables: theory against the real data, then against the Gaussian surrogate."""
    cfg, data, rows = report["config"], report["data"], report["rows"]
    variants = cfg["variants"]
    by = {(r["variant"], r["samples"]): r for r in rows}
    ns = [n for n in cfg["grid"] if any((v, n) in by for v in variants)]
    target = f" (target {cfg['target']})" if cfg["dataset"] == "digits" else ""
    lines = [
        f"dataset {cfg['dataset']}{target}: N {data['rows']}, d {data['dim']}, zero eigenvalues "
        f"{data['zero_eigenvalues']}, largest eigenvalue {data['largest_eigenvalue']:.3g}, "
        f"label noise Delta {data['noise']:.4g} (linear signal {100 * data['explained']:.1f}% of the label variance)",
        f"model: widths {','.join(str(k) for k in cfg['widths'])}, activations {','.join(cfg['activations'])}, "
        f"ridge {cfg['ridge']:g}, {cfg['trials']} draws per point; errors in units of the signal variance "
        f"(times {data['signal_sd'] ** 2:.4g} for label units)",
        "",
    ]
    head = f"{'n':>6}"
    for v in variants:
        head += f" | {'theory ' + v:>14} {'measured ' + v:>22} {'z':>6}"
    lines += [head, "-" * len(head)]
    for n in ns:
        line = f"{n:>6}"
        for v in variants:
            r = by.get((v, n))
            if r is None:
                line += f" | {'':>14} {'':>22} {'':>6}"
                continue
            meas = _pm(r["mc_test"], r["mc_test_se"])
            line += f" | {_fmt(r['theory_test']):>14} {meas:>22} {_fmt(r['z'], '.2f'):>6}"
        lines.append(line)
    lines += [
        "",
        "where the deviation comes from, per quantizer: real = real inputs and labels; linear = real inputs, "
        "labels g + independent noise;",
        "surrogate = Gaussian inputs x ~ N(0, Sigma), labels g + independent noise (the theory's model); "
        "rel = measured / theory - 1",
    ]
    for v in variants:
        head = (
            f"{'n':>6} {'theory ' + v:>14} | {'real':>20} {'rel':>7} | {'linear':>20} {'z':>6} {'rel':>7} | "
            f"{'surrogate':>20} {'z':>6} {'rel':>7}"
        )
        lines += ["", head, "-" * len(head)]
        for n in ns:
            r = by.get((v, n))
            if r is None:
                continue
            cells = [f"{n:>6} {_fmt(r['theory_test']):>14}"]
            cells.append(f"{_pm(r['mc_test'], r['mc_test_se']):>20} {_pct(r['relative_deviation']):>7}")
            cells.append(
                f"{_pm(r['linear_test'], r['linear_test_se']):>20} {_fmt(r['linear_z'], '.2f'):>6} "
                f"{_pct(r['linear_relative_deviation']):>7}"
            )
            cells.append(
                f"{_pm(r['surrogate_test'], r['surrogate_test_se']):>20} {_fmt(r['surrogate_z'], '.2f'):>6} "
                f"{_pct(r['surrogate_relative_deviation']):>7}"
            )
            lines.append(" | ".join(cells))
    pairs = report.get("paired") or []
    if pairs:
        lines += [
            "",
            "paired differences over the same weights W (quantized vs " + pairs[0]["base"] + "):",
        ]
        head = f"{'n':>6} {'variant':>12} {'theory':>9} | {'real':>20} | {'linear':>20} | {'surrogate':>20}"
        lines += [head, "-" * len(head)]
        for p in pairs:
            lines.append(
                f"{p['samples']:>6} {p['variant']:>12} {_fmt(p['theory'], '+.4f'):>9} | "
                f"{_pm(p['real'], p['real_se'], True):>20} | {_pm(p['linear'], p['linear_se'], True):>20} | "
                f"{_pm(p['surrogate'], p['surrogate_se'], True):>20}"
            )
    s = report["summary"]
    lines += [
        "",
        f"verdict (real data vs theory): {s['verdict']}; Gaussian surrogate vs theory: {s['surrogate_verdict']}; "
        f"largest |real/theory - 1| = {100 * s['max_abs_relative_deviation']:.1f}%",
    ]
    for note in report.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)


def plot_learning_curves(rows: list[dict], curves: dict, path, title: str, noise: float | None = None) -> None:
    """The figure of ``rfq data``: theory lines, measured points with error bars, one colour per variant.

    Filled circles: real data; open triangles: real inputs with linear labels;
    open squares: the Gaussian surrogate; dotted line: the label noise
    ``Delta`` (the theory's lowest possible error), when given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ("-", "--", ":", "-.")
    arms = (
        ("mc_test", "mc_test_se", "o", "full", 0.0, "real data"),
        ("linear_test", "linear_test_se", "^", "none", -0.012, "real inputs, linear labels"),
        ("surrogate_test", "surrogate_test_se", "s", "none", 0.012, "Gaussian surrogate"),
    )
    for i, (v, (ns, te)) in enumerate(curves.items()):
        col = colors[i % len(colors)]
        label = "full precision" if v == "none" else ("one-bit (sign)" if v == "sign" else v)
        ax.plot(ns, te, color=col, lw=1.6, ls=styles[i % len(styles)], label=f"theory, {label}")
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["samples"])
        for mean, se, marker, fill, shift, what in arms:
            pts = [r for r in rs if r.get(mean) is not None and math.isfinite(r[mean])]
            if not pts:
                continue
            x = np.array([r["samples"] for r in pts], dtype=float) * (1 + shift + 0.006 * i)
            ax.errorbar(
                x,
                [r[mean] for r in pts],
                yerr=[r[se] or 0.0 for r in pts],
                fmt=marker,
                color=col,
                mfc=col if fill == "full" else "none",
                ms=5,
                capsize=2,
                label=f"{what}, {label}",
            )
    if noise is not None:
        ax.axhline(noise, color="0.5", ls=":", lw=1, label="label noise Delta")
    ax.set_xlabel("training samples n")
    ax.set_ylabel("test MSE (units of the signal variance)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
