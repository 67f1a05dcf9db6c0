"""Figures of the validation package (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_comparison", "plot_scaling", "XLABELS"]

XLABELS = {
    "samples": "samples per input dimension  n / d",
    "width": "last width per input dimension  k_L / d",
    "widths": "width multiplier (all widths scaled)",
    "ridge": "ridge  lambda",
}
_STYLE = ["-", "--", ":", "-."]
_MARKERS = ["o", "s", "^", "D", "v"]


def _finite(values):
    return [v if (v is not None and math.isfinite(v)) else float("nan") for v in values]


def plot_comparison(rows: list[dict], curves: dict[str, dict], vary: str, path, title: str = "") -> None:
    """Theory lines, finite-size crosses and Monte Carlo points (mean +- SE) per variant.

    ``curves[variant] = {"x": [...], "test": [...], "train": [...]}`` (dense theory);
    ``rows`` are result rows with ``variant, x, theory_test, finite_size_test, mc_test, mc_test_se``
    and the train counterparts.
    """
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    variants = list(curves)
    all_x = [r["x"] for r in rows] or [0.0, 1.0]
    for i, var in enumerate(variants):
        color = f"C{i}"
        c = curves[var]
        sub = [r for r in rows if r["variant"] == var]
        # small horizontal offsets keep overlapping error bars apart (log axis: multiplicative)
        shift = (i - (len(variants) - 1) / 2) * 0.012
        if vary == "ridge":
            xs = [r["x"] * 10**shift for r in sub]
        else:
            xs = [r["x"] + shift * (max(all_x) - min(all_x) or 1.0) for r in sub]
        for ax, kind in zip(axes, ("test", "train")):
            ax.plot(c["x"], _finite(c[kind]), _STYLE[i % len(_STYLE)], color=color, lw=1.6, label=f"theory  {var}")
            ax.errorbar(
                xs,
                [r[f"mc_{kind}"] for r in sub],
                yerr=[r[f"mc_{kind}_se"] for r in sub],
                fmt=_MARKERS[i % len(_MARKERS)],
                color=color,
                ms=5,
                capsize=3,
                mfc="none",
                label=f"Monte Carlo  {var}",
            )
            ax.plot(
                xs,
                _finite([r[f"finite_size_{kind}"] for r in sub]),
                "x",
                color=color,
                ms=6,
                alpha=0.7,
                label=f"finite-size route  {var}",
            )
    for ax, kind in zip(axes, ("test", "train")):
        ax.set_xlabel(XLABELS.get(vary, vary))
        ax.set_ylabel(f"{kind} error")
        ax.grid(alpha=0.3)
        if vary == "ridge":
            ax.set_xscale("log")
    axes[1].set_yscale("symlog", linthresh=1e-3)
    axes[0].legend(fontsize=7, ncol=1)
    fig.suptitle(title or "deep random features: theory vs simulation", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scaling(points: list[dict], diffs: list[dict], path, title: str = "") -> None:
    """Scaling check: ``|MC - theory|`` vs ``d`` per variant, and paired one-bit minus full-precision MC gaps."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    variants = sorted({p["variant"] for p in points}, key=[p["variant"] for p in points].index)
    for i, var in enumerate(variants):
        sub = [p for p in points if p["variant"] == var]
        gaps = [abs(p["mc_test"] - p["theory_test"]) for p in sub]
        lower = [min(p["mc_test_se"], 0.9 * g) for p, g in zip(sub, gaps)]  # log axis: keep bars above 0
        axes[0].errorbar(
            [p["input_dim"] for p in sub],
            gaps,
            yerr=[lower, [p["mc_test_se"] for p in sub]],
            fmt=_MARKERS[i % 5] + "-",
            color=f"C{i}",
            capsize=3,
            label=f"|MC mean - theory|  {var}",
        )
        axes[0].plot(
            [p["input_dim"] for p in sub],
            [p["rms_draw_deviation"] for p in sub],
            "--",
            color=f"C{i}",
            alpha=0.7,
            label=f"RMS single-draw deviation  {var}",
        )
    if points:
        ds = sorted({p["input_dim"] for p in points})
        ref = max(p["rms_draw_deviation"] for p in points if p["input_dim"] == ds[0])
        axes[0].plot(ds, [ref * math.sqrt(ds[0] / d) for d in ds], "k:", lw=1, label="~ 1/sqrt(d)")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("input dimension d (ratios fixed)")
    axes[0].set_ylabel("|MC - theory| (test error), bars: SE")
    axes[0].legend(fontsize=7)
    pairs = sorted({p["pair"] for p in diffs})
    for i, pair in enumerate(pairs):
        sub = [p for p in diffs if p["pair"] == pair]
        axes[1].errorbar(
            [p["input_dim"] for p in sub],
            [p["mean"] for p in sub],
            yerr=[p["se"] for p in sub],
            fmt=_MARKERS[i % 5] + "-",
            color=f"C{i + 3}",
            capsize=3,
            label=f"MC {pair} (paired mean)",
        )
        for sign in (1, -1):
            axes[1].plot(
                [p["input_dim"] for p in sub],
                [sign * p["rms"] for p in sub],
                "--",
                color=f"C{i + 3}",
                alpha=0.6,
                label=f"+- RMS per draw  {pair}" if sign > 0 else None,
            )
    axes[1].axhline(0.0, color="k", lw=1)
    axes[1].set_xscale("log")
    axes[1].set_xlabel("input dimension d (ratios fixed)")
    axes[1].set_ylabel("test-error difference, bars: paired SE")
    if pairs:
        axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "scaling check", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
