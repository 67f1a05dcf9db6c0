"""Terminal tables and figures of the CLI: full names, visible defaults, axes and labels."""

import argparse

import pytest

from rfq_theory.cli import main
from validation.montecarlo.commands import add_validate_arguments
from validation.montecarlo.compare import config_from_args, format_table

CLIP = "Min(Max(u,-1),1)"
DEAD_ZONE = "expr:sign(g)*Heaviside(abs(g)-0.5)"


def test_layers_table_shows_full_names_and_stays_aligned(capsys):
    assert main(["layers", "--activations", f"{CLIP},tanh", "--quantizers", f"{DEAD_ZONE},sign"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], lines[1:3]
    assert CLIP in rows[0] and DEAD_ZONE in rows[0]
    # every numeric column ends where its header ends
    for col in ("s2", "variance", "kappa_star"):
        end = header.index(col) + len(col)
        for row in rows:
            assert row[end - 1] != " " and (end == len(row) or row[end] == " ")
    assert len({len(line) for line in lines[:3]}) == 1


def _report(variants):
    rows = [
        dict(
            variant=v,
            value=1.0,
            samples=40,
            theory_test=0.5,
            finite_size_test=0.5,
            mc_test=0.5,
            mc_test_se=0.01,
            z=0.0,
            status="pass",
        )
        for v in variants
    ]
    summary = {
        "verdict": "pass",
        "pass": 2,
        "fail": 0,
        "inconclusive": 0,
        "n/a": 0,
        "expected_rows": 2,
        "max_abs_z": 0.0,
    }
    return {"config": {"vary": "samples"}, "model": "m", "rows": rows, "summary": summary, "warnings": []}


def test_validate_table_alignment_with_long_variant_name():
    text = format_table(_report(["none", DEAD_ZONE]))
    lines = text.splitlines()
    head, rule, first, second = lines[1:5]
    assert len(head) == len(rule) == len(first) == len(second)
    assert second.startswith(DEAD_ZONE + " ")
    # the sample count sits in the same column on every row
    assert first.index(" 40 ") == second.index(" 40 ")


def _validate_args(argv):
    return add_validate_arguments(argparse.ArgumentParser()).parse_args(argv)


@pytest.mark.parametrize("widths", ["60", "60,50", "60,50,40"])
def test_validate_default_activation_fits_any_depth(widths):
    cfg = config_from_args(_validate_args(["--input-dim", "40", "--widths", widths, "--trials", "2"]))
    assert cfg.activations == ("tanh",) * len(widths.split(","))


def test_validate_help_shows_activation_default():
    text = add_validate_arguments(argparse.ArgumentParser()).format_help()
    assert "default tanh" in " ".join(text.split())


@pytest.mark.parametrize(("input_dim", "width"), [(1000, 100), (1000, 700)])
def test_spectrum_figure_axis_title_and_labels(input_dim, width):
    """Linear activation: Omega_1 = W W^T / d is Marchenko-Pastur with edges (1 -+ sqrt(k/d))^2."""
    import matplotlib.pyplot as plt

    from rfq_theory.cli.spectrum import spectrum_figure
    from rfq_theory.model import DeepRF
    from rfq_theory.spectra import spectrum

    model = DeepRF(input_dim, (width,), ("linear",), ("none",))
    res = spectrum(model, samples=300, points=60)
    fig = spectrum_figure(res, model)
    try:
        layer_ax, kernel_ax = fig.axes
        c = width / input_dim
        spans_decade = (1 + c**0.5) ** 2 / (1 - c**0.5) ** 2 > 10
        assert layer_ax.get_xscale() == ("log" if spans_decade else "linear")
        title = fig._suptitle.get_text()
        for part in (f"d = {input_dim}", f"widths {width}", "activations linear", "quantizers none", "n = 300"):
            assert part in title
        assert "K = Z Z^T / k_L" in kernel_ax.get_title() and "linear" not in kernel_ax.get_title()
        assert f"k = {width}" in layer_ax.get_title()
    finally:
        plt.close(fig)


def test_phase_figure_contour_labels_readable():
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.text import Text

    from rfq_theory.model import DeepRF
    from rfq_theory.phase import phase_figure, phase_map

    model = DeepRF(200, (400, 300), ("tanh", "relu"), ("sign",))
    pm = phase_map(model, "samples:0.1:4:12", "width:0.1:4:12", ridge=1e-3)
    fig = phase_figure(pm, "map")
    try:
        ax = fig.axes[0]
        finite = pm.values[np.isfinite(pm.values)]
        labels = [t for t in ax.texts if isinstance(t, Text) and t.get_text()]
        assert labels
        for t in labels:
            assert t.get_fontsize() >= 8
            assert t.get_alpha() in (None, 1.0)
            # every label names a level inside the range of the map
            assert finite.min() <= float(t.get_text()) <= finite.max() * 1.01
    finally:
        plt.close(fig)


def _bench_report(device):
    from validation.timing.bench import _add_speedups

    times = {"dense-fp32": 4.0, "dense-fp16": 40.0, "onebit-cpu-fp32": 2.0}
    results = [
        {"variant": v, "width": 1024, "batch": b, "median_ms": t * b, "status": "ok"}
        for v, t in times.items()
        for b in (1, 8)
    ]
    _add_speedups(results)
    env = {"torch": "x", "cpu_model": "cpu", "gpu": None}
    return {"environment": env, "config": {"device": device, "layers": 2, "activation": "tanh"}, "results": results}


def test_cpu_bench_plot_normalises_to_dense_fp32():
    import matplotlib.pyplot as plt

    from validation.timing.bench import speedup_baseline, speedup_figure

    report = _bench_report("cpu")
    assert speedup_baseline(report) == "fp32"
    fig = speedup_figure(report)
    try:
        titles = {ax.get_title(): ax for ax in fig.axes}
        assert "dense-fp32" not in titles and {"dense-fp16", "onebit-cpu-fp32"} <= set(titles)
        assert fig.axes[0].get_ylabel() == "speed-up vs dense fp32"
        # 4 ms / 2 ms and 4 ms / 40 ms at every batch
        assert list(titles["onebit-cpu-fp32"].lines[0].get_ydata()) == [2.0, 2.0]
        assert list(titles["dense-fp16"].lines[0].get_ydata()) == [0.1, 0.1]
    finally:
        plt.close(fig)


def test_gpu_bench_plot_keeps_dense_fp16():
    from validation.timing.bench import speedup_baseline

    assert speedup_baseline(_bench_report("cuda")) == "fp16"
