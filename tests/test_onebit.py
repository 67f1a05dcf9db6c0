"""Tests of the one-bit format, the Triton kernels (interpreter, CPU) and ``rfq bench``."""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before any triton import: kernels run on CPU

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from validation.timing.onebit import OneBitLayer, as_bytes, pack_signs, packed_nbytes, packed_words, unpack_signs

ODD_SHAPES = [(1, 1), (3, 31), (2, 32), (5, 33), (4, 70)]


def _reference(x, words, m, alpha, activation):
    """float64 ``act(alpha * x @ S.T)`` with ``S`` rebuilt bit by bit from the packed words
    (plain Python shifts, independent of the packing and unpacking code)."""
    import torch

    w = words.numpy().astype(np.int64) & 0xFFFFFFFF
    s = np.array([[1.0 if (int(w[i, j // 32]) >> (j % 32)) & 1 else -1.0 for j in range(m)] for i in range(w.shape[0])])
    pre = x.double() @ torch.from_numpy(s).t() * alpha
    return {"linear": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sign": torch.sign}[activation](pre)


@pytest.mark.parametrize("k,m", ODD_SHAPES)
def test_pack_unpack_roundtrip_numpy(k, m):
    rng = np.random.default_rng(k * 100 + m)
    w = rng.standard_normal((k, m))
    w[0, 0] = 0.0  # sign(0) is +1
    words = pack_signs(w)
    assert words.dtype == np.int32 and words.shape == (k, -(-m // 32))
    signs = unpack_signs(words, m)
    assert np.array_equal(signs, np.where(w >= 0, 1.0, -1.0))
    # memory: exactly ceil(m/32) words per row, i.e. 1 bit per weight plus padding
    assert words.nbytes == packed_nbytes(k, m) == 4 * k * packed_words(m)
    assert packed_nbytes(k, m) * 8 - k * m < 32 * k
    # padding bits are zero; byte view is the LSB-first 8-weights-per-byte stream
    bits = np.unpackbits(as_bytes(words), axis=1, bitorder="little")
    assert np.array_equal(bits[:, :m], (w >= 0).astype(np.uint8))
    assert not bits[:, m:].any()


def test_pack_errors_name_parameter():
    with pytest.raises(ValueError, match="w must be"):
        pack_signs(np.ones(3))
    with pytest.raises(ValueError, match="m=40 needs 2"):
        unpack_signs(np.zeros((2, 1), np.int32), 40)
    with pytest.raises(ValueError, match="scale"):
        OneBitLayer.from_dense(np.ones((2, 2)), scale=float("nan"))


def test_torch_pack_matches_numpy_and_reference_is_dense_matmul():
    torch = pytest.importorskip("torch")
    from validation.timing.onebit import pack_signs_torch, unpack_signs_torch

    g = torch.Generator().manual_seed(0)
    for k, m in ODD_SHAPES:
        w = torch.randn(k, m, generator=g, dtype=torch.float64)
        p = pack_signs_torch(w)
        assert np.array_equal(p.numpy(), pack_signs(w.numpy()))
        assert torch.equal(unpack_signs_torch(p, m, torch.float64), torch.where(w >= 0, 1.0, -1.0).double())
    layer = OneBitLayer.from_dense(w, scale=2.0)
    assert layer.nbytes == p.numel() * 4 and layer.alpha == pytest.approx(2.0 / m**0.5)
    x = torch.randn(3, m, generator=g, dtype=torch.float64)
    dense = torch.relu(x @ torch.where(w >= 0, 1.0, -1.0).double().t() * 0.25)
    assert torch.allclose(_reference(x, p, m, 0.25, "relu"), dense, rtol=0, atol=1e-12)


#: every kernel and dtype; the fast subset keeps every matrix-matrix and unpack case (the matrix-vector
#: kernels cost a Triton-interpreter compile of seconds each: full suite)
KERNEL_CASES = [
    pytest.param(strategy, dtype, marks=pytest.mark.slow) if strategy in ("gemv", "gemv2") else (strategy, dtype)
    for strategy in ("gemv", "gemv2", "gemm", "gemm2", "unpack")
    for dtype in ("fp32", "fp16", "bf16")
]


@pytest.mark.parametrize("strategy,dtype", KERNEL_CASES)
def test_triton_kernels_match_reference(strategy, dtype):
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    from validation.timing.onebit import pack_signs_torch
    from validation.timing.triton_onebit import onebit_linear

    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    tol = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 1e-2}[dtype]
    g = torch.Generator().manual_seed(1)
    for n, (k, m), act in [(1, (5, 33), "relu"), (3, (17, 70), "tanh"), (17, (4, 1), "linear"), (2, (20, 64), "sign")]:
        w = torch.randn(k, m, generator=g)
        words = pack_signs_torch(w)
        x = torch.randn(n, m, generator=g).to(dt)
        alpha = 1.0 / m**0.5
        y = onebit_linear(x, words, m, alpha, act, strategy=strategy)
        assert y.dtype == dt and y.shape == (n, k)
        ref = _reference(x, words, m, alpha, act)
        if act == "sign":  # rounding may flip signs of near-zero pre-activations only
            pre = _reference(x, words, m, alpha, "linear")
            bad = (y.double() != ref) & (pre.abs() > 10 * tol * pre.abs().max())
            assert not bad.any()
        else:
            err = float((y.double() - ref).norm() / ref.norm().clamp_min(1e-30))
            assert err <= tol, (strategy, dtype, n, k, m, act, err)


@pytest.mark.slow  # two more Triton compiles; gemv2/gemm2 stay in the fast subset
def test_half2_kernels_accumulation_and_fallback():
    """gemv2 / gemm2 on a wider layer (several words, padded tail) and the fp32 fallback."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    from validation.timing.onebit import pack_signs_torch
    from validation.timing.triton_onebit import choose_strategy, onebit_linear

    assert choose_strategy(1, "auto", dtype="fp16") == "gemv2"
    assert choose_strategy(1, "auto", dtype="bf16") == "gemv"
    assert choose_strategy(1, "gemv2", dtype="fp32") == "gemv"
    assert choose_strategy(8, "gemm2", dtype="bf16") == "gemm2"
    assert choose_strategy(8, "gemm2", dtype="fp32") == "gemm"
    g = torch.Generator().manual_seed(5)
    k, m = 19, 200  # 7 words, last one partly padding
    w = torch.randn(k, m, generator=g)
    words = pack_signs_torch(w)
    for strategy, n in (("gemv2", 1), ("gemv2", 2), ("gemm2", 3)):
        for dt, tol in ((torch.float16, 2e-3), (torch.bfloat16, 1e-2)):  # gemv2 bf16 -> gemv
            x = (4 * torch.randn(n, m, generator=g)).to(dt)
            y = onebit_linear(x, words, m, 0.1, "linear", strategy=strategy)
            ref = _reference(x, words, m, 0.1, "linear")
            err = float((y.double() - ref).norm() / ref.norm())
            assert err <= tol, (strategy, dt, n, err)
    x32 = torch.randn(2, m, generator=g)
    y = onebit_linear(x32, words, m, 0.1, "linear", strategy="gemv2")  # falls back to gemv
    ref = _reference(x32, words, m, 0.1, "linear")
    assert float((y.double() - ref).norm() / ref.norm()) <= 1e-5


def test_onebit_linear_rejects_bad_input():
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    from validation.timing.triton_onebit import onebit_linear

    words = torch.zeros((2, 1), dtype=torch.int32)
    with pytest.raises(ValueError, match="activation"):
        onebit_linear(torch.ones(1, 8), words, 8, 1.0, "gelu")
    with pytest.raises(ValueError, match="x must have shape"):
        onebit_linear(torch.ones(1, 9), words, 8, 1.0)
    with pytest.raises(ValueError, match="strategy"):
        onebit_linear(torch.ones(1, 8), words, 8, 1.0, strategy="magic")


def _bench_args(tmp_path, **over):
    from validation.timing.commands import add_bench_arguments

    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    argv = [
        "--device",
        "cpu",
        "--widths",
        "40",
        "--batches",
        "1,3",
        "--layers",
        "2",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--quiet",
        "--json",
        str(tmp_path / "bench.json"),
    ]
    for key, val in over.items():
        argv += [f"--{key.replace('_', '-')}", str(val)]
    return p.parse_args(argv)


@pytest.fixture(scope="module")
def cpu_ceilings():
    """The CPU's copy and matmul ceilings, measured once for this module's bench runs (seconds each time)."""
    pytest.importorskip("torch")
    from validation.timing import bench

    return bench.measure_device("cpu", ("fp32", "bf16"))  # the dtypes of the dense variants these runs time


@pytest.fixture
def ceilings_once(cpu_ceilings, monkeypatch):
    """``bench.measure_device`` answering with the module's measurement (a fresh copy per call)."""
    import copy

    from validation.timing import bench

    monkeypatch.setattr(bench, "measure_device", lambda device, dtypes=None: copy.deepcopy(cpu_ceilings))


@pytest.mark.slow  # runs the whole timing harness
def test_run_bench_cpu_writes_json(tmp_path, capsys, ceilings_once):
    pytest.importorskip("torch")
    from validation.timing.bench import run_bench

    args = _bench_args(tmp_path, variants="dense-fp32,dense-bf16,reference-fp32,onebit-fp16")
    assert run_bench(args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    ok = [r for r in report["results"] if r["status"] == "ok"]
    assert {r["variant"] for r in ok} == {"dense-fp32", "dense-bf16", "reference-fp32"}
    assert all(r["median_ms"] > 0 and r["gate"]["passed"] and r["roofline_ms"] > 0 for r in ok)
    assert all(r["speedup_vs_fp32"] is not None for r in ok)
    assert any(s["variant"] == "onebit-fp16" and "GPU" in s["reason"] for s in report["skipped"])
    out = capsys.readouterr().out
    assert "needs a CUDA GPU" in out and "reference-fp32" in out


@pytest.mark.slow  # runs the whole timing harness
def test_gate_refuses_broken_variant(tmp_path):
    pytest.importorskip("torch")
    from validation.timing import bench

    dense = bench._dense_factory("fp32")

    def broken(model, opts):
        impl = dense(model, opts)
        good_layer = impl.layer

        def layer(i, z):  # wrong sign on output unit 0 of every layer
            y = good_layer(i, z).clone()
            y[:, 0] = -y[:, 0] - 1.0
            return y

        impl.layer = layer
        impl.forward = lambda x: bench._readout(layer(1, layer(0, x)), model.readout, impl.dtype)
        return impl

    bench.register_variant(bench.VariantSpec("broken-fp32", "custom", "fp32", broken))
    try:
        args = _bench_args(tmp_path, variants="dense-fp32,broken-fp32")
        assert bench.run_bench(args) == 1
        report = json.loads((tmp_path / "bench.json").read_text())
        bad = [r for r in report["results"] if r["variant"] == "broken-fp32"]
        assert bad and all(r["status"] == "failed gate" and "median_ms" not in r for r in bad)
        assert all(r["status"] == "ok" for r in report["results"] if r["variant"] == "dense-fp32")
    finally:
        bench.VARIANTS.pop("broken-fp32", None)


@pytest.mark.parametrize(
    "opt,val,msg",
    [
        ("widths", "0", "--widths"),
        ("variants", "nope", "--variants"),
        ("activation", "gelu", "--activation"),
        ("layers", "0", "--layers"),
    ],
)
def test_run_bench_bad_input(tmp_path, capsys, opt, val, msg):
    pytest.importorskip("torch")
    from validation.timing.bench import run_bench

    assert run_bench(_bench_args(tmp_path, **{opt: val})) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rfq bench: error:") and msg in err[0]


def test_bench_imports_without_torch():
    code = (
        "import sys, argparse; sys.modules['torch'] = None; sys.modules['triton'] = None\n"
        "import validation, validation.timing.bench as b, validation.timing.commands as c\n"
        "p = argparse.ArgumentParser(); c.add_bench_arguments(p)\n"
        "sys.exit(b.run_bench(p.parse_args([])))"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert err.startswith("rfq bench: error:") and "PyTorch" in err and len(err.splitlines()) == 1
    assert "pip install torch==2.13.0" in err  # the CPU build CI uses, not a bare multi-GB 'pip install torch'


def test_gemlite_w1_weights_map_signs_exactly():
    torch = pytest.importorskip("torch")
    from validation.timing.bench import gemlite_w1_weights

    g = torch.Generator().manual_seed(3)
    s = torch.where(torch.randn(8, 64, generator=g) >= 0, 1.0, -1.0)
    w_q, scales, zeros = gemlite_w1_weights(s, 0.125)
    assert w_q.dtype == torch.uint8 and set(w_q.unique().tolist()) <= {0, 1}
    assert scales.shape == zeros.shape == (8, 1)
    # gemlite's W_group_mode 3 dequant, in fp16: (W_q - zero) * scale
    w = (w_q.to(torch.float16) - zeros) * scales
    assert torch.equal(w, (s * 0.125).half())


@pytest.mark.slow  # runs the whole timing harness
def test_gemlite_variant_unavailable_without_gemlite(tmp_path, capsys, monkeypatch, ceilings_once):
    pytest.importorskip("torch")
    from validation.timing import bench

    monkeypatch.setitem(sys.modules, "gemlite", None)  # as if not installed
    reason = bench.gemlite_unavailable()
    assert reason.startswith("unavailable:") and "gemlite" in reason and "\n" not in reason
    args = _bench_args(tmp_path, variants="dense-fp32,gemlite-w1-fp16")
    assert bench.run_bench(args) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {r["variant"] for r in report["results"]} == {"dense-fp32"}
    assert [s["reason"] for s in report["skipped"] if s["variant"] == "gemlite-w1-fp16"][0] == reason
    assert f"note: gemlite-w1-fp16 skipped: {reason}" in capsys.readouterr().out


def test_gemlite_variant_passes_gate_on_gpu(tmp_path):
    """Needs a CUDA GPU and gemlite (skipped in CI); runs without TRITON_INTERPRET."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("gemlite's kernels need a CUDA GPU")
    import importlib.util

    if importlib.util.find_spec("gemlite") is None:
        pytest.skip("gemlite is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = tmp_path / "g.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "validation.timing.bench",
            "--device",
            "cuda",
            "--widths",
            "256",
            "--batches",
            "1,16,256",
            "--variants",
            "dense-fp16,gemlite-w1-fp16",
            "--repeats",
            "2",
            "--quiet",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [x for x in json.loads(out.read_text())["results"] if x["variant"] == "gemlite-w1-fp16"]
    assert len(rows) == 3 and all(x["status"] == "ok" and x["gate"]["passed"] for x in rows)
