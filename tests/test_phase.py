"""Phase maps: axes, quantities, the one-bit identity over a plane, the ``rfq phase`` command."""

import math

import numpy as np
import pytest

from rfq_theory import DeepRF, InputError, predict
from rfq_theory.batch import NonConvergenceWarning
from rfq_theory.cli import main
from rfq_theory.phase import model_with_depth, parse_range, phase_map
from rfq_theory.sweeps import model_at, one_bit_theorem, optimal_ridge

MODEL = DeepRF(400, (800, 600), ("tanh", "relu"), "sign-scaled")
ARGS = ["--input-dim", "400", "--widths", "800,600", "--activations", "tanh,relu", "--quantizers", "sign-scaled"]


def _rel(a, b):
    a, b = float(a), float(b)
    return 0.0 if a == b else abs(a - b) / abs(b)


# ------------------------------------------------------------ ranges


def test_parse_range_linear_and_log():
    r = parse_range("samples:0.1:4:300")
    assert (r.name, r.log, r.points) == ("samples", False, 300)
    assert r.values[0] == 0.1 and r.values[-1] == 4 and r.values.size == 300
    r = parse_range("ridge:log:1e-6:10:50")
    assert r.log and np.allclose(np.diff(np.log(r.values)), np.log(1e7) / 49)
    assert list(parse_range("depth:1:4:4").values) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "text",
    [
        "samples:0.1:4",
        "bogus:0.1:4:10",
        "samples:a:4:10",
        "samples:0.1:4:0",
        "samples:0.1:4:2.5",
        "samples:-1:4:10",
        "ridge:log:0:1:10",
        "ridge:-1:1:10",
        "width:0.1:inf:10",
        "depth:1:4:3",
        "depth:0:3:4",
        "samples:log:0.1:4",
        "samples:0.1:4:100000000",
    ],
)
def test_bad_ranges_are_input_errors(text):
    with pytest.raises(InputError, match="^x"):
        parse_range(text, "x")
    with pytest.raises(InputError, match="^--x"):
        parse_range(text, "--x")


# ------------------------------------------------------------ maps vs predict


def test_samples_width_map_matches_predict_and_threshold_is_inf():
    pm = phase_map(MODEL, "samples:0.5:2.5:5", "width:0.5:2.5:5", ridge=0, noise=0.1)
    assert pm.values.shape == (5, 5) and pm.x.size == 5 and pm.y.size == 5
    for i, kl in enumerate(pm.y):
        for j, nr in enumerate(pm.x):
            m, n, lam = model_at(MODEL, "width", kl * 400, nr * 400, 0)
            p = predict(m, n, lam, 0.1)
            if i == j:  # n = k_L = rank: the interpolation threshold
                assert math.isinf(pm.values[i, j]) and math.isinf(p.test_error)
            else:
                assert _rel(pm.values[i, j], p.test_error) < 1e-9
    assert np.allclose(np.diag(pm.threshold), 1.0)
    assert pm.n_failed == 0


def test_linear_layer_map_cells_follow_marchenko_pastur():
    """One linear layer: every cell of a samples x width map at ridge 0.1 against the ridge error computed
    from the Marchenko-Pastur law alone (test_solver's route, not the chain)."""
    from test_solver import _marchenko_pastur_route

    d = 100
    linear = DeepRF(d, (150,), ("linear",))
    pm = phase_map(linear, "samples:0.6:1.8:3", "width:0.6:1.8:3", ridge=0.1, noise=0.2)
    for i, kr in enumerate(pm.y):
        for j, nr in enumerate(pm.x):
            want, _ = _marchenko_pastur_route(d, kr * d, nr * d, "0.1", "0.2")
            assert _rel(pm.values[i, j], want) < 1e-9, (kr, nr)


def test_widths_and_ridge_axes_match_model_at():
    pm = phase_map(MODEL, "ridge:log:1e-4:1:4", "widths:0.5:2:3", quantity="train_error", samples=500, noise=0.2)
    for i, f in enumerate(pm.y):
        for j, lam in enumerate(pm.x):
            m, n, lam_ = model_at(MODEL, "widths", f, 500, lam)
            assert _rel(pm.values[i, j], predict(m, n, lam_, 0.2).train_error) < 1e-9


def test_depth_axis_repeats_the_last_layer():
    m5 = model_with_depth(MODEL, 4)
    assert m5.widths == (800, 600, 600, 600) and m5.activations == ("tanh", "relu", "relu", "relu")
    assert model_with_depth(MODEL, 1).widths == (800,)
    pm = phase_map(MODEL, "samples:0.5:3:4", "depth:1:4:4", ridge=1e-2)
    for i, depth in enumerate(pm.y):
        for j, nr in enumerate(pm.x):
            p = predict(model_with_depth(MODEL, int(depth)), nr * 400, 1e-2)
            assert _rel(pm.values[i, j], p.test_error) < 1e-9
    pm2 = phase_map(MODEL, "depth:1:3:3", "samples:0.5:3:4", ridge=1e-2)
    assert np.array_equal(pm2.values, pm.values[:3].T)


def test_gap_map_matches_one_bit_theorem():
    pm = phase_map(MODEL, "samples:0.5:2:3", "width:1:3:3", quantity="gap", ridge=1e-3)
    for i, kl in enumerate(pm.y):
        for j, nr in enumerate(pm.x):
            m, n, lam = model_at(MODEL, "width", kl * 400, nr * 400, 1e-3)
            th = one_bit_theorem(m, n, lam)
            want = th.sign_scaled.test_error - th.full.test_error
            assert abs(pm.values[i, j] - want) <= 1e-9 * th.full.test_error


def test_optimal_maps_match_scalar_optimal_ridge():
    lam_map = phase_map(MODEL, "samples:0.5:2:3", "width:0.5:2:2", quantity="optimal_ridge", noise=0.3)
    err_map = phase_map(MODEL, "samples:0.5:2:3", "width:0.5:2:2", quantity="optimal_error", noise=0.3)
    for i, kl in enumerate(lam_map.y):
        for j, nr in enumerate(lam_map.x):
            m, n, _ = model_at(MODEL, "width", kl * 400, nr * 400, 0)
            lam, p = optimal_ridge(m, n, 0.3)
            assert _rel(err_map.values[i, j], p.test_error) < 1e-9
            assert lam_map.values[i, j] == 0 if lam == 0 else _rel(lam_map.values[i, j], lam) < 1e-3


def test_map_argument_errors():
    with pytest.raises(InputError, match="different axes"):
        phase_map(MODEL, "samples:1:2:3", "samples:1:2:3")
    with pytest.raises(InputError, match="samples is required"):
        phase_map(MODEL, "ridge:0:1:3", "width:1:2:3")
    with pytest.raises(InputError, match="ridge cannot be an axis"):
        phase_map(MODEL, "ridge:0:1:3", "samples:1:2:3", quantity="optimal_error")
    with pytest.raises(InputError, match="quantity"):
        phase_map(MODEL, "samples:1:2:3", "width:1:2:3", quantity="loss")
    with pytest.raises(InputError, match="at most"):
        phase_map(MODEL, "samples:1:2:10000", "width:1:2:10000")


def test_non_converged_points_are_nan_and_warned(monkeypatch):
    import rfq_theory.batch as batch

    real = batch.solve_batch

    def starved(*a, **k):
        k["max_iter"] = 2
        return real(*a, **k)

    monkeypatch.setattr(batch, "solve_batch", starved)
    with pytest.warns(NonConvergenceWarning, match="did not converge"):
        pm = phase_map(MODEL, "samples:0.2:3:8", "width:0.2:3:8", ridge=1e-3)
    assert pm.n_failed == np.count_nonzero(np.isnan(pm.values)) > 0


# ------------------------------------------------------------ command line


def test_cli_writes_npz_csv_png(tmp_path, capsys):
    out, csv_path, png = tmp_path / "map.npz", tmp_path / "map.csv", tmp_path / "map"
    rc = main(
        [
            "phase",
            *ARGS,
            "--x",
            "samples:0.2:3:9",
            "--y",
            "width:log:0.2:3:7",
            "--quantity",
            "test_error",
            "--noise",
            "0.1",
            "--out",
            str(out),
            "--csv",
            str(csv_path),
            "--plot",
            str(png),
        ]
    )
    assert rc == 0
    data = np.load(out)
    assert data["test_error"].shape == (7, 9)
    assert np.allclose(data["x"], np.linspace(0.2, 3, 9)) and np.allclose(data["y"], np.geomspace(0.2, 3, 7))
    assert str(data["x_name"]) == "samples" and str(data["y_name"]) == "width"
    p = predict(MODEL.with_widths((800, data["y"][3] * 400)), data["x"][5] * 400, 0, 0.1)
    assert _rel(data["test_error"][3, 5], p.test_error) < 1e-9
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "samples,width,test_error" and len(rows) == 1 + 63
    assert (tmp_path / "map.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--x", "samples:0.1:4", "--y", "width:0.1:4:10"], "--x must be"),
        (["--x", "samples:0.1:4:10", "--y", "width:log:-1:4:10"], "--y"),
        (["--x", "samples:0.1:4:10", "--y", "samples:0.1:4:10"], "different axes"),
        (["--x", "ridge:0:1:10", "--y", "width:0.1:4:10", "--samples", "300", "--quantity", "optimal_error"], "ridge"),
        (["--x", "ridge:0:1:10", "--y", "width:0.1:4:10"], "--samples is required"),
        (["--x", "samples:0.1:4:10", "--y", "width:0.1:4:10", "--quantity", "nope"], "invalid choice"),
        (["--x", "samples:0.1:4:10", "--y", "width:0.1:4:10", "--fallback", "fast"], "invalid choice"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, needle):
    rc = main(["phase", *ARGS, *extra, "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_cli_fallback_dd_on_a_tiny_ridge_map(tmp_path, capsys):
    out = tmp_path / "tiny.npz"
    rc = main(
        [
            "phase",
            *ARGS,
            "--x",
            "samples:0.5:3:6",
            "--y",
            "ridge:log:1e-10:1e-6:5",
            "--fallback",
            "dd",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert "ill-conditioned point(s) re-solved in double-double" in capsys.readouterr().out
    data = np.load(out)
    for i in (0, 4):
        for j in (1, 5):
            p = predict(MODEL, data["x"][j] * 400, data["y"][i], digits=30)
            assert _rel(data["test_error"][i, j], p.test_error) < 1e-9


def test_cli_help_mentions_axes(capsys):
    with pytest.raises(SystemExit):
        main(["phase", "--help"])
    assert "samples:0.1:4:300" in capsys.readouterr().out
