"""Tests of the CPU one-bit kernel (lookup tables, Numba) and of ``rfq bench``'s CPU side:
packed-bit round trips, the kernel against an independent float64 reference, ceilings that
bound every case, and one-line refusals of bad options."""

import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.timing.onebit import as_bytes, pack_signs, packed_words, unpack_signs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACTS = ("linear", "relu", "tanh", "sign")


def _signs_from_bits(words, m):
    """+-1 matrix read back bit by bit with Python integer shifts (independent of the packers)."""
    w = np.asarray(words).astype(np.int64) & 0xFFFFFFFF
    return np.array(
        [[1.0 if (int(w[i, j // 32]) >> (j % 32)) & 1 else -1.0 for j in range(m)] for i in range(w.shape[0])]
    )


def _reference(x, s, alpha, act):
    pre = np.asarray(x, dtype=np.float64) @ s.T * alpha
    return {"linear": pre, "relu": np.maximum(pre, 0.0), "tanh": np.tanh(pre), "sign": np.sign(pre)}[act], pre


# --------------------------------------------------------------------------- packing


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 6), m=st.integers(1, 100), seed=st.integers(0, 2**32 - 1))
def test_pack_round_trip_and_bit_order(k, m, seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((k, m))
    w[rng.random((k, m)) < 0.1] = 0.0  # sign(0) is +1
    words = pack_signs(w)
    expected = np.where(w >= 0, 1.0, -1.0)
    assert words.shape == (k, packed_words(m)) and words.dtype == np.int32
    assert np.array_equal(unpack_signs(words, m, np.float64), expected)
    assert np.array_equal(_signs_from_bits(words, m), expected)  # LSB first, set bit = +1
    # byte view: bit i of byte g is weight 8g + i; padding bits are clear
    bits = np.unpackbits(as_bytes(words), axis=1, bitorder="little")
    assert np.array_equal(bits[:, :m], (w >= 0).astype(np.uint8)) and not bits[:, m:].any()
    assert np.array_equal(pack_signs(unpack_signs(words, m)), words)


# --------------------------------------------------------------------------- kernel

from validation.timing import cpu_onebit  # noqa: E402  (imports without Numba)

needs_numba = pytest.mark.skipif(
    cpu_onebit.numba_unavailable() is not None, reason="numba is not installed (pip install 'rfq-theory[cpu]')"
)

SHAPES = [(1, 1), (5, 33), (17, 70), (3, 31), (40, 64), (9, 200), (33, 257)]


#: batch sizes: 1 runs the GEMV kernel, 2 the small-GEMM kernel (tile 2); 3 and 17 compile the same
#: GEMM source for tiles 4 and 16 (plus a lone GEMV row), seconds of JIT each: the fast subset keeps
#: the GEMV kernel
BATCHES = [1, *(pytest.param(n, marks=pytest.mark.slow) for n in (2, 3, 17))]


@needs_numba
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("k,m", SHAPES)
def test_kernel_matches_float64_reference(n, k, m):
    rng = np.random.default_rng(1000 * n + 10 * k + m)
    words = pack_signs(rng.standard_normal((k, m)))
    s = _signs_from_bits(words, m)
    x = (3 * rng.standard_normal((n, m))).astype(np.float32)
    alpha = 1.0 / math.sqrt(m)
    for act in ACTS:
        y = cpu_onebit.onebit_linear_cpu(x, words, m, alpha, act)
        assert y.dtype == np.float32 and y.shape == (n, k)
        ref, pre = _reference(x, s, alpha, act)
        if act == "sign":  # only pre-activations at rounding level may flip
            bad = (y != ref) & (np.abs(pre) > 1e-5 * np.abs(pre).max())
            assert not bad.any()
        else:
            err = np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30)
            assert err <= 1e-5, (n, k, m, act, err)


@needs_numba
@pytest.mark.parametrize(
    "n,k,m",
    [
        (1, 13, 45),
        pytest.param(2, 9, 70, marks=pytest.mark.slow),  # the GEMM compile (seconds): full suite
        pytest.param(5, 7, 96, marks=pytest.mark.slow),
        pytest.param(17, 4, 130, marks=pytest.mark.slow),
    ],
)
def test_kernel_exact_on_integer_inputs(n, k, m):
    """Small integers: every partial sum is exact in float32, so the result equals the reference."""
    rng = np.random.default_rng(7 + n)
    words = pack_signs(rng.standard_normal((k, m)))
    x = rng.integers(-8, 9, size=(n, m)).astype(np.float32)
    y = cpu_onebit.onebit_linear_cpu(x, words, m, 1.0, "linear")
    assert np.array_equal(y.astype(np.float64), x.astype(np.float64) @ _signs_from_bits(words, m).T)


@needs_numba
def test_tables_are_the_partial_sums_of_every_sign_pattern():
    rng = np.random.default_rng(3)
    m = 19  # 3 groups of 8, the last one partly padding
    x = rng.standard_normal((2, m)).astype(np.float32)
    table = cpu_onebit.build_tables(x, m)
    assert table.shape == (4 * packed_words(m), 256, 2)
    xp = np.zeros((2, table.shape[0] * 8))
    xp[:, :m] = x
    for g in (0, 1, 2, 3):
        for b in (0, 1, 0x80, 0xA5, 255):
            signs = np.array([1.0 if (b >> i) & 1 else -1.0 for i in range(8)])
            direct = xp[:, 8 * g : 8 * g + 8] @ signs
            assert np.allclose(table[g, b], direct, rtol=0, atol=1e-6)


@pytest.mark.slow  # a third Numba compile
@needs_numba
def test_one_dimensional_input_out_argument_and_forward():
    from validation.timing.onebit import OneBitLayer

    rng = np.random.default_rng(4)
    layers = [
        OneBitLayer.from_dense(rng.standard_normal((30, 50))),
        OneBitLayer.from_dense(rng.standard_normal((20, 30)), scale=2.0),
    ]
    x = rng.standard_normal(50).astype(np.float32)
    out = np.empty((1, 30), np.float32)
    y = cpu_onebit.onebit_linear_cpu(x, layers[0].words, 50, layers[0].alpha, "tanh", out=out)
    assert y is out
    z = cpu_onebit.onebit_forward_cpu(x[None, :], layers, "tanh")
    ref = x[None, :].astype(np.float64)
    for layer in layers:
        ref = np.tanh(ref @ _signs_from_bits(layer.words, layer.m).T * layer.alpha)
    assert np.linalg.norm(z - ref) / np.linalg.norm(ref) <= 1e-5


@needs_numba
def test_kernel_rejects_bad_input():
    words = pack_signs(np.ones((3, 40)))
    with pytest.raises(ValueError, match="activation"):
        cpu_onebit.onebit_linear_cpu(np.ones((1, 40)), words, 40, 1.0, "gelu")
    with pytest.raises(ValueError, match="x must have shape"):
        cpu_onebit.onebit_linear_cpu(np.ones((1, 41)), words, 40, 1.0)
    with pytest.raises(ValueError, match="words must be"):
        cpu_onebit.onebit_linear_cpu(np.ones((1, 40)), words[:, :1], 40, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        cpu_onebit.onebit_linear_cpu(np.ones((1, 40)), words, 40, float("nan"))
    with pytest.raises(ValueError, match="out must be"):
        cpu_onebit.onebit_linear_cpu(np.ones((2, 40)), words, 40, 1.0, out=np.empty((3, 2), np.float32))


def test_without_numba_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    reason = cpu_onebit.numba_unavailable()
    assert reason.startswith("unavailable:") and "pip install" in reason and "\n" not in reason


# --------------------------------------------------------------------------- bench (CPU)

from validation.timing import bench  # noqa: E402  (imports without torch)

needs_torch = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None, reason="the bench needs torch"
)


@pytest.fixture(scope="module")
def measured_ceilings():
    """The CPU's ceilings, measured once for the module's bench runs (seconds of probes each time)."""
    if __import__("importlib").util.find_spec("torch") is None:
        pytest.skip("the bench needs torch")
    return bench.measure_device("cpu", ("fp32",))


@pytest.fixture
def ceilings_once(measured_ceilings, monkeypatch):
    """``bench.measure_device`` answering with the module's measurement (a fresh copy per call)."""
    import copy

    calls = []

    def measured(device, dtypes=("fp32", "fp16", "bf16")):
        calls.append((device, tuple(dtypes)))
        assert device == "cpu" and set(dtypes) <= {"fp32"}, (device, dtypes)
        return copy.deepcopy(measured_ceilings)

    monkeypatch.setattr(bench, "measure_device", measured)
    return calls


@pytest.fixture
def stated_ceilings(monkeypatch):
    """``bench.measure_device`` answering with fixed ceilings (for runs whose check is not the roofline)."""

    def stated(device, dtypes=("fp32", "fp16", "bf16")):
        assert device == "cpu" and set(dtypes) <= {"fp32"}, (device, dtypes)
        return {
            "copy": [{"bytes": 1000, "Bps": 1e10}, {"bytes": 10**7, "Bps": 1e10}],
            "matmul_flops": {"fp32": 1e11},
            "matmul_size": {"fp32": 512},
            "raised": [],
        }

    monkeypatch.setattr(bench, "measure_device", stated)


def _args(tmp_path, extra=()):
    from validation.timing.commands import add_bench_arguments

    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    argv = [
        "--device",
        "cpu",
        "--widths",
        "40,70",
        "--batches",
        "1,3",
        "--layers",
        "2",
        "--repeats",
        "3",
        "--warmup",
        "1",
        "--quiet",
        "--json",
        str(tmp_path / "bench.json"),
    ]
    return p.parse_args(argv + list(extra))


@pytest.mark.slow  # measures the CPU ceilings first (seconds)
@needs_torch
@needs_numba
def test_bench_cpu_variant_gate_roofline_and_streamed_results(tmp_path, capsys, ceilings_once):
    # batches 1 and 2: the GEMV kernel and the GEMM kernel of tile 2, already compiled for the kernel tests
    args = _args(tmp_path, ["--variants", "dense-fp32,onebit-cpu-fp32,reference-fp32", "--batches", "1,2"])
    assert bench.run_bench(args) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "bench.json").read_text())
    ok = [r for r in report["results"] if r["status"] == "ok"]
    assert {r["variant"] for r in ok} == {"dense-fp32", "onebit-cpu-fp32", "reference-fp32"} and len(ok) == 12
    cpu = [r for r in ok if r["variant"] == "onebit-cpu-fp32"]
    assert all(r["gate"]["tolerance"] == 1e-5 and max(r["gate"]["layer_errors"]) <= 1e-5 for r in cpu)
    assert all(
        r["weight_bytes"] < r2["weight_bytes"] / 8
        for r in cpu
        for r2 in ok
        if r2["variant"] == "dense-fp32" and r2["width"] == r["width"]
    )
    # no reported percentage of the roofline exceeds 100, in the JSON or in the printed table
    assert all(0 < r["roofline_fraction"] <= 1.0 for r in ok)
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0] in bench.VARIANTS]
    pcts = [int(tok[:-1]) for row in rows for tok in row if tok.endswith("%") and tok[:-1].isdigit()]
    assert len(pcts) == len(ok) and max(pcts) <= 100
    import torch

    assert "BLAS threads" in out and report["environment"]["blas_threads"] == torch.get_num_threads()
    # the JSON-lines stream holds the environment and every case, one object per line
    lines = [json.loads(x) for x in (tmp_path / "bench.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "environment" and sum(x["type"] == "result" for x in lines) == 12


def test_roofline_never_exceeds_one_even_when_a_case_beats_the_probes():
    ceilings = {
        "copy": [{"bytes": 1000, "Bps": 1e9}, {"bytes": 10**6, "Bps": 1e8}],
        "matmul_flops": {"fp32": 1e9},
        "matmul_size": {"fp32": 512},
        "raised": [],
    }
    results = [  # 5e5 B in 1 ms = 5e8 B/s > the 1e8 B/s probe; 4e6 flop in 1 ms > 1e9 flop/s
        {
            "status": "ok",
            "variant": "a",
            "width": 8,
            "batch": 1,
            "dtype": "fp32",
            "median_ms": 1.0,
            "bytes_moved": 5e5,
            "flops": 4e6,
        },
        {
            "status": "ok",
            "variant": "b",
            "width": 8,
            "batch": 1,
            "dtype": "fp32",
            "median_ms": 10.0,
            "bytes_moved": 500,
            "flops": None,
        },
        {"status": "failed gate", "variant": "c", "width": 8, "batch": 1, "dtype": "fp32"},
    ]
    bench.apply_roofline(results, ceilings)
    assert results[0]["roofline_fraction"] == pytest.approx(1.0) and results[0]["roofline_fraction"] <= 1.0
    assert results[1]["roofline_ms"] == pytest.approx(1e3 * 500 / 1e9)
    assert "roofline_ms" not in results[2]
    assert {c["ceiling"] for c in ceilings["raised"]} == {"copy bandwidth (1000000 B probe)", "fp32 matmul rate"}


@needs_torch
def test_results_already_written_survive_a_crash(tmp_path, stated_ceilings):
    dense = bench._dense_factory("fp32")
    calls = {"n": 0}

    def crashing(model, opts):
        impl = dense(model, opts)
        good = impl.forward

        def forward(x):
            if x.shape[0] == 3:
                calls["n"] += 1
                raise KeyboardInterrupt  # as if the run were stopped in the middle
            return good(x)

        impl.forward = forward
        return impl

    bench.register_variant(bench.VariantSpec("crash-fp32", "custom", "fp32", crashing))
    try:
        with pytest.raises(KeyboardInterrupt):
            bench.run_bench(_args(tmp_path, ["--variants", "dense-fp32,crash-fp32", "--widths", "40"]))
    finally:
        bench.VARIANTS.pop("crash-fp32", None)
    lines = [json.loads(x) for x in (tmp_path / "bench.jsonl").read_text().splitlines()]
    done = [(x["variant"], x["batch"]) for x in lines if x["type"] == "result"]
    assert ("dense-fp32", 1) in done and ("crash-fp32", 1) in done and calls["n"] == 1


@needs_torch
def test_memory_estimate_refuses_what_cannot_fit(tmp_path):
    cfg = bench._validated(_args(tmp_path, ["--widths", "200000"]), False)
    assert bench.estimate_memory(cfg) > 3 * 200000**2 * 4  # at least the fp32 layers
    assert bench.estimate_memory(bench._validated(_args(tmp_path), False)) < 2**24


BAD_OPTIONS = [
    (["--min-sample-ms", "inf"], "--min-sample-ms"),
    (["--min-sample-ms", "nan"], "--min-sample-ms"),
    (["--min-sample-ms", "-1"], "--min-sample-ms"),
    (["--max-case-seconds", "0"], "--max-case-seconds"),
    (["--max-case-seconds", "1e300"], "--max-case-seconds"),
    (["--repeats", "0"], "--repeats"),
    (["--warmup", "2.5"], "--warmup"),
    (["--seed", "9e29"], "--seed"),
    (["--seed", "900000000000000000000000000000"], "--seed"),
    (["--seed", "-1"], "--seed"),
    (["--layers", "abc"], "--layers"),
    (["--widths", "200000"], "memory"),
    (["--layers", "100000000"], "memory"),
    (["--widths", "8,"], "--widths"),
    (["--batches", "0"], "--batches"),
    (["--gemv-max-batch", "-2"], "--gemv-max-batch"),
    (["--json", ""], "--json"),
    (["--json", "/nonexistent-folder/x.json"], "--json"),
    (["--json", "/dev/full"], "--json"),
    (["--plot", "/dev/full"], "--plot"),
    (["--plot", "/nonexistent-folder/x.png"], "--plot"),
]


@needs_torch
@pytest.mark.parametrize("extra,needle", BAD_OPTIONS)
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, extra, needle):
    assert bench.run_bench(_args(tmp_path, extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rfq bench: error:") and needle in err[0], err
    assert not (tmp_path / "bench.jsonl").exists()  # refused before any work


@needs_torch
def test_json_onto_a_folder_and_same_file_for_plot(tmp_path, capsys):
    assert bench.run_bench(_args(tmp_path, ["--json", str(tmp_path)])) == 2
    assert "folder" in capsys.readouterr().err
    same = str(tmp_path / "a.json")
    assert bench.run_bench(_args(tmp_path, ["--json", same, "--plot", same])) == 2
    assert "same file" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess importing torch
@needs_torch
def test_rfq_bench_command_line_refuses_inf_quickly():
    """Through the installed CLI: one line, exit 2, in seconds (it used to never return)."""
    r = subprocess.run(
        [sys.executable, "-m", "validation.timing.bench", "--device", "cpu", "--min-sample-ms", "inf"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--min-sample-ms" in r.stderr


@needs_torch
def test_bench_without_numba_lists_the_cpu_variant_as_unavailable(tmp_path, capsys, monkeypatch, stated_ceilings):
    monkeypatch.setitem(sys.modules, "numba", None)  # as if not installed
    args = _args(tmp_path, ["--variants", "dense-fp32,onebit-cpu-fp32", "--widths", "40", "--batches", "1"])
    assert bench.run_bench(args) == 0
    out = capsys.readouterr().out
    note = [line for line in out.splitlines() if line.startswith("note: onebit-cpu-fp32 skipped:")]
    assert len(note) == 1 and "unavailable: numba is not installed" in note[0] and "pip install" in note[0]
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {r["variant"] for r in report["results"]} == {"dense-fp32"}


@needs_numba
@pytest.mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.slow)])  # GEMV; the GEMM kernel of tile 2
@pytest.mark.parametrize("m", [8, 200, 2056, 4100])
def test_prepared_layer_holds_every_packed_byte_once(m, n):
    rng = np.random.default_rng(m)
    words = pack_signs(np.where(rng.standard_normal((37, m)) >= 0, 1.0, -1.0))
    layer = cpu_onebit.prepare_layer(words, m)
    bits = as_bytes(words)
    ntiles, k, width = layer.tiles.shape
    assert k == 37 and width % 8 == 0 and width <= cpu_onebit.TILE
    flat = layer.tiles.transpose(1, 0, 2).reshape(k, ntiles * width)
    assert np.array_equal(flat[:, : bits.shape[1]], bits) and not flat[:, bits.shape[1] :].any()
    x = rng.standard_normal((3, m)).astype(np.float32)
    assert np.array_equal(
        cpu_onebit.onebit_linear_cpu(x[:n], layer, m, 0.1, "tanh"),
        cpu_onebit.onebit_linear_cpu(x[:n], words, m, 0.1, "tanh"),
    )
    with pytest.raises(ValueError, match="prepared layer has m="):
        cpu_onebit.onebit_linear_cpu(x, layer, m + 1, 0.1)


@needs_numba
def test_batch_one_tables_equal_the_batched_build():
    """The batch-1 build (low/high nibble outer sum) and the batched build (float64 chain) agree."""
    rng = np.random.default_rng(11)
    m = 1000
    x = rng.standard_normal((1, m)).astype(np.float32)
    one = cpu_onebit.build_tables(x, m)
    two = cpu_onebit.build_tables(np.vstack([x, x]), m)
    assert np.array_equal(one[:, :, 0], two[:, :, 0])
    xp = np.zeros(one.shape[0] * 8)
    xp[:m] = x[0]
    for b in (0, 7, 0x5A, 255):
        signs = np.array([1.0 if (b >> i) & 1 else -1.0 for i in range(8)])
        direct = xp.reshape(-1, 8) @ signs
        assert np.allclose(one[:, b, 0], direct, rtol=0, atol=1e-5)
