"""``rfq bench``: timing harness for one-bit inference of deep random-features models.

The model: ``z_0 = x`` (``n x width``), ``z_l = act(sign(W_l) z_{l-1} / sqrt(k_{l-1}))`` for
``l = 1..L`` (all widths equal), then a linear readout ``y = z_L a / sqrt(width)``.
Every variant computes this same function with the *same* +-1 weights:

* ``dense-fp32`` / ``dense-fp16`` / ``dense-bf16``: +-1 weights stored densely, cuBLAS
  (``torch.addmm``, scale folded into ``alpha``), activation in place.
* ``onebit-fp16`` / ``onebit-bf16`` / ``onebit-fp32``: packed 1-bit weights, Triton kernels
  (:mod:`validation.timing.triton_onebit`); batch <= ``--gemv-max-batch``: bit-flip GEMV kernel,
  batch >= ``--unpack-min-batch``: Triton unpack of one layer into a scratch buffer + cuBLAS,
  otherwise the fused tensor-core GEMM (activation fused); needs a CUDA GPU.
* ``onebit-fused-*``: same, but never the unpack strategy (weights only ever read as bits).
* ``onebit-v1-*``: the previous kernels (fp32 bit-flip ``gemv``, ``gemm`` with a compare/select
  unpack) in place of ``gemv2`` / ``gemm2``, for before/after comparisons in one run.
* ``reference-fp16`` / ``reference-bf16`` / ``reference-fp32``: pure PyTorch, unpack the
  bits on every call and matmul (the correctness reference; slow by design).
* ``gemlite-w1-fp16``: the peer library gemlite (Triton, W1A16): the same +-1 weights in its
  1-bit affine format (``W_q = (s+1)/2``, zero 0.5, per-row scale ``2/sqrt(m)``), its
  ``A16W1_HQQ_INT`` layer and auto kernel choice, activation in place; when gemlite is not
  installed it is listed as unavailable.

Correctness gate: before timing, every variant is checked layer by layer (same input as
the float64 reference, relative L2 error, or the fraction of flipped signs for the ``sign``
activation) and on the whole model output; a variant that fails gets no speed.

Timing: warm-up (includes Triton autotuning), then on CUDA a CUDA graph of the whole
forward pass is replayed between CUDA events (``--no-graph`` to time eager calls); on
CPU ``time.perf_counter``.  Median and spread (p10/p90) over repeats, weight memory,
speed-ups against dense fp16 and fp32 measured in the same run, and a roofline bound
``max(bytes moved / measured copy bandwidth, flops / measured matmul rate)``.

Without CUDA the CPU paths run (dense vs reference); the one-bit Triton variants are
listed as skipped ("needs a CUDA GPU").  Torch is imported lazily: this module imports
without it, and ``run_bench`` then prints one line and returns 2.

Exit codes of :func:`run_bench`: 0 all requested variants ran or were skipped, 1 some
variant failed the correctness gate, 2 bad input or torch missing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["run_bench", "register_variant", "VARIANTS",
           "TARGETS", "BenchError"]

ACTIVATION_NAMES = ("linear", "relu", "tanh", "sign")
GPU_WIDTHS = (1024, 2048, 4096, 8192, 16384)
GPU_BATCHES = (1, 16, 256, 4096)
CPU_WIDTHS = (256, 1024)
CPU_BATCHES = (1, 16, 256)
GPU_VARIANTS = ("dense-fp32", "dense-fp16", "dense-bf16", "onebit-fp16", "onebit-fused-fp16", "reference-fp16")
CPU_VARIANTS = ("dense-fp32", "dense-fp16", "dense-bf16", "onebit-fp16", "reference-fp32")
#: Relative-error tolerances of the gate per activation dtype (layer level); the whole
#: model gets ``layers`` times this.  For ``sign`` the gate bounds the flip fraction.
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 4e-2}
SIGN_FLIP_TOL = {"fp32": 1e-3, "fp16": 1e-2, "bf16": 3e-2}
#: Speed targets (issue 5), evaluated when the matching configuration was run on CUDA.
TARGETS = (
    {"name": "batch 1, width 16384: onebit-fp16 >= 8x dense-fp16", "variant": "onebit-fp16",
     "width": 16384, "batch": 1, "vs": "dense-fp16", "min_speedup": 8.0},
    {"name": "batch 4096, width 16384: onebit-fp16 no slower than dense-fp16",
     "variant": "onebit-fp16", "width": 16384, "batch": 4096, "vs": "dense-fp16",
     "min_speedup": 1.0},
)


class BenchError(ValueError):
    """Bad benchmark input; the message names the parameter."""


# --------------------------------------------------------------------------- arguments

def _int_list(text: str, name: str) -> list[int]:
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise BenchError(f"--{name} must be a comma-separated list of positive integers, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise BenchError(f"--{name} must be a comma-separated list of positive integers, got {text!r}")
    return vals


def _validated(args: argparse.Namespace, cuda: bool) -> dict:
    """Normalise and check ``args``; raise :class:`BenchError` naming the bad parameter."""
    device = getattr(args, "device", "auto") or "auto"
    if device not in ("auto", "cpu", "cuda"):
        raise BenchError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not cuda:
        raise BenchError("--device cuda requested but torch sees no CUDA device")
    on_gpu = cuda and device != "cpu"
    widths = _int_list(args.widths, "widths") if args.widths else list(GPU_WIDTHS if on_gpu else CPU_WIDTHS)
    batches = _int_list(args.batches, "batches") if args.batches else list(GPU_BATCHES if on_gpu else CPU_BATCHES)
    if args.layers is None or args.layers < 1:
        raise BenchError(f"--layers must be a positive integer, got {args.layers!r}")
    if args.activation not in ACTIVATION_NAMES:
        raise BenchError(f"--activation must be one of {', '.join(ACTIVATION_NAMES)}, got {args.activation!r}")
    if args.variants:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    else:
        variants = list(GPU_VARIANTS if on_gpu else CPU_VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise BenchError(f"--variants: unknown variant(s) {unknown}; known: {', '.join(sorted(VARIANTS))}")
    repeats = args.repeats if args.repeats is not None else (25 if on_gpu else 5)
    if repeats < 1:
        raise BenchError(f"--repeats must be >= 1, got {repeats}")
    if args.warmup is None or args.warmup < 0:
        raise BenchError(f"--warmup must be >= 0, got {args.warmup!r}")
    min_ms = args.min_sample_ms if args.min_sample_ms is not None else (2.0 if on_gpu else 0.0)
    if not min_ms >= 0:
        raise BenchError(f"--min-sample-ms must be >= 0, got {min_ms!r}")
    if not args.max_case_seconds > 0:
        raise BenchError(f"--max-case-seconds must be > 0, got {args.max_case_seconds!r}")
    if args.gemv_max_batch is None or args.gemv_max_batch < 0:
        raise BenchError(f"--gemv-max-batch must be >= 0, got {args.gemv_max_batch!r}")
    if args.unpack_min_batch is None or args.unpack_min_batch < 0:
        raise BenchError(f"--unpack-min-batch must be >= 0, got {args.unpack_min_batch!r}")
    return dict(device="cuda" if on_gpu else "cpu", unpack_min_batch=args.unpack_min_batch, widths=widths, batches=batches, layers=args.layers,
                activation=args.activation, variants=variants, repeats=repeats, warmup=args.warmup,
                min_sample_ms=min_ms, max_case_seconds=args.max_case_seconds,
                graph=on_gpu and not args.no_graph, gemv_max_batch=args.gemv_max_batch, seed=args.seed,
                json_path=args.json_path, plot_path=args.plot_path, quiet=bool(args.quiet))


# --------------------------------------------------------------------------- model + variants

@dataclass
class Model:
    """+-1 layers (fp32 tensors on the bench device), packed copies and the readout."""

    signs: list  # (k, m) float32 +-1
    words: list  # (k, ceil(m/32)) int32
    readout: Any  # (width,) float32
    activation: str

    @property
    def widths(self) -> list[int]:
        return [self.signs[0].shape[1]] + [s.shape[0] for s in self.signs]


def build_model(width: int, layers: int, activation: str, seed: int, device: str) -> Model:
    """Draw Gaussian layers, keep their signs (+-1, fp32) and pack them."""
    import torch

    from .onebit import pack_signs_torch

    gen = torch.Generator(device=device).manual_seed(seed)
    signs, words = [], []
    for _ in range(layers):
        w = torch.randn((width, width), generator=gen, device=device)
        s = torch.where(w >= 0, 1.0, -1.0)
        del w
        signs.append(s)
        words.append(pack_signs_torch(s))
    readout = torch.randn((width,), generator=gen, device=device)
    return Model(signs, words, readout, activation)


@dataclass
class Impl:
    """A prepared variant: ``layer(l, z)`` and ``forward(x)`` plus its weight memory."""

    layer: Callable[[int, Any], Any]
    forward: Callable[[Any], Any]
    weight_bytes: int
    dtype: Any


@dataclass
class VariantSpec:
    """How to build a variant: ``kind`` (dense/onebit/reference/custom), dtype name, factory."""

    name: str
    kind: str
    dtype: str
    factory: Callable[[Model, dict], Impl]
    needs_cuda: bool = False
    note: str = ""
    #: returns a one-line reason when the variant cannot run here (e.g. a peer library missing)
    unavailable: Callable[[], str | None] | None = None


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _act_inplace(z, activation: str):
    import torch

    if activation == "relu":
        return z.relu_()
    if activation == "tanh":
        return z.tanh_()
    if activation == "sign":
        return z.sign_()
    if activation == "linear":
        return z
    raise BenchError(f"--activation must be one of {', '.join(ACTIVATION_NAMES)}, got {activation!r}")


def _readout(z, a, dtype):
    return (z @ a.to(dtype)) * (1.0 / math.sqrt(a.shape[0]))


def _make_impl(layer, n_layers: int, a, dt, layer_bytes: int) -> Impl:
    """An :class:`Impl` from one variant's ``layer(i, z)``: ``n_layers`` layers then the readout ``a``.

    Weight memory is ``layer_bytes`` plus the readout's bytes.
    """

    def forward(x):
        z = x
        for i in range(n_layers):
            z = layer(i, z)
        return _readout(z, a, dt)

    return Impl(layer, forward, layer_bytes + a.numel() * a.element_size(), dt)


def _dense_factory(dtype_name: str):
    def factory(model: Model, opts: dict) -> Impl:
        import torch

        dt = _torch_dtype(dtype_name)
        wts = [s.to(dt).t() for s in model.signs]  # (m, k) views of the +-1 weights
        zero = torch.zeros((), dtype=dt, device=model.signs[0].device)
        alphas = [1.0 / math.sqrt(s.shape[1]) for s in model.signs]
        a = model.readout.to(dt)

        def layer(i, z):
            return _act_inplace(torch.addmm(zero, z, wts[i], beta=0, alpha=alphas[i]), model.activation)

        return _make_impl(layer, len(wts), a, dt, sum(w.numel() * w.element_size() for w in wts))

    return factory


#: the kernels of the previous release (onebit-v1-*): bit-flip fp32 GEMV, where-unpack GEMM
V1_STRATEGIES = {"gemv2": "gemv", "gemm2": "gemm"}


def _onebit_factory(dtype_name: str, fused_only: bool = False, v1: bool = False):
    def factory(model: Model, opts: dict) -> Impl:
        from .triton_onebit import onebit_linear

        dt = _torch_dtype(dtype_name)
        words = model.words
        ms = [s.shape[1] for s in model.signs]
        alphas = [1.0 / math.sqrt(m) for m in ms]
        a = model.readout.to(dt)
        gmb = opts.get("gemv_max_batch", 1)
        umb = 0 if fused_only else opts.get("unpack_min_batch", 1024)

        def layer(i, z):
            strategy = "auto"
            if v1:
                from .triton_onebit import choose_strategy

                strategy = choose_strategy(z.shape[0], "auto", gmb, umb, dtype=dtype_name)
                strategy = V1_STRATEGIES.get(strategy, strategy)
            return onebit_linear(z, words[i], ms[i], alphas[i], model.activation, gemv_max_batch=gmb,
                                 unpack_min_batch=umb, strategy=strategy)

        return _make_impl(layer, len(words), a, dt, sum(w.numel() * 4 for w in words))

    return factory


def _reference_factory(dtype_name: str):
    def factory(model: Model, opts: dict) -> Impl:
        import torch

        from .onebit import unpack_signs_torch

        dt = _torch_dtype(dtype_name)
        words = model.words
        ms = [s.shape[1] for s in model.signs]
        zero = torch.zeros((), dtype=dt, device=words[0].device)
        a = model.readout.to(dt)

        def layer(i, z):
            s = unpack_signs_torch(words[i], ms[i], dt)
            y = torch.addmm(zero, z, s.t(), beta=0, alpha=1.0 / math.sqrt(ms[i]))
            return _act_inplace(y, model.activation)

        return _make_impl(layer, len(words), a, dt, sum(w.numel() * 4 for w in words))

    return factory


#: the peer library of the ``gemlite-*`` variants and the version the docs' numbers were taken with
GEMLITE_VERSION = "0.6.0.post2"


def gemlite_unavailable() -> str | None:
    """``None`` when :mod:`gemlite` can be imported, else a one-line reason (no import is done)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("gemlite") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["gemlite"] = None
        found = False
    if not found:
        return f"unavailable: gemlite is not installed (pip install gemlite=={GEMLITE_VERSION})"
    return None


def gemlite_w1_weights(signs, alpha: float):
    """gemlite's 1-bit affine format for a +-1 matrix: ``W = (W_q - zero) * scale``.

    ``W_q = (s + 1) / 2`` in {0, 1} (uint8, shape ``(k, m)``), one group per output row
    (``group_size = m``), ``zero = 0.5`` and ``scale = 2 * alpha`` (fp16, shape ``(k, 1)``), so
    ``(W_q - 0.5) * 2 = s`` exactly and the layer's ``1/sqrt(m)`` rides in gemlite's free
    per-channel scale (as the dense variants fold it into ``addmm``'s ``alpha``).
    """
    import torch

    k = signs.shape[0]
    w_q = (signs > 0).to(torch.uint8)
    scales = torch.full((k, 1), 2.0 * alpha, dtype=torch.float16, device=signs.device)
    zeros = torch.full((k, 1), 0.5, dtype=torch.float16, device=signs.device)
    return w_q, scales, zeros


def _gemlite_factory(dtype_name: str):
    def factory(model: Model, opts: dict) -> Impl:
        reason = gemlite_unavailable()
        if reason:
            raise ImportError(reason)
        import gemlite  # noqa: F401  (lazy: only this variant needs it)
        from gemlite.helper import A16W1_HQQ_INT

        dt = _torch_dtype(dtype_name)
        dev = model.signs[0].device
        layers, nbytes = [], 0
        for s in model.signs:
            w_q, scales, zeros = gemlite_w1_weights(s, 1.0 / math.sqrt(s.shape[1]))
            lin = A16W1_HQQ_INT(device=str(dev), dtype=dt).from_weights(w_q, scales.to(dt), zeros.to(dt))
            del w_q
            layers.append(lin)
            nbytes += sum(t.numel() * t.element_size() for t in (lin.W_q, lin.scales, lin.zeros))
        a = model.readout.to(dt)

        def layer(i, z):
            return _act_inplace(layers[i](z), model.activation)

        return _make_impl(layer, len(layers), a, dt, nbytes)

    return factory


VARIANTS: dict[str, VariantSpec] = {}


def register_variant(spec: VariantSpec) -> None:
    """Add (or replace) a benchmark variant, e.g. a peer library's low-bit kernel."""
    if spec.dtype not in TOLERANCES:
        raise BenchError(f"variant dtype must be one of {sorted(TOLERANCES)}, got {spec.dtype!r}")
    VARIANTS[spec.name] = spec


for _d in ("fp32", "fp16", "bf16"):
    register_variant(VariantSpec(f"dense-{_d}", "dense", _d, _dense_factory(_d)))
    register_variant(VariantSpec(f"onebit-{_d}", "onebit", _d, _onebit_factory(_d), needs_cuda=True,
                                 note="the Triton one-bit path needs a CUDA GPU "
                                      "(TRITON_INTERPRET=1 is for correctness tests only)"))
    register_variant(VariantSpec(f"onebit-fused-{_d}", "onebit", _d, _onebit_factory(_d, fused_only=True),
                                 needs_cuda=True, note="the Triton one-bit path needs a CUDA GPU"))
    register_variant(VariantSpec(f"onebit-v1-{_d}", "onebit", _d, _onebit_factory(_d, v1=True),
                                 needs_cuda=True, note="the Triton one-bit path needs a CUDA GPU"))
    register_variant(VariantSpec(f"reference-{_d}", "reference", _d, _reference_factory(_d)))
register_variant(VariantSpec("gemlite-w1-fp16", "peer", "fp16", _gemlite_factory("fp16"), needs_cuda=True,
                             note="gemlite's Triton kernels need a CUDA GPU", unavailable=gemlite_unavailable))


# --------------------------------------------------------------------------- gate

def reference_activations(model: Model, x) -> list:
    """Float64 reference ``[z_0, z_1, ..., z_L, y]`` with the model's +-1 weights."""
    import torch

    zs = [x.to(torch.float64)]
    for s in model.signs:
        m = s.shape[1]
        pre = (zs[-1] @ s.to(torch.float64).t()) / math.sqrt(m)
        zs.append(_torch_activation(pre, model.activation))
    zs.append((zs[-1] @ model.readout.to(torch.float64)) / math.sqrt(model.readout.shape[0]))
    return zs


def _torch_activation(y, activation: str):
    import torch

    return {"linear": lambda t: t, "relu": torch.relu, "tanh": torch.tanh, "sign": torch.sign}[activation](y)


def _rel_err(out, ref) -> float:
    import torch

    out = out.to(torch.float64)
    if not bool(torch.isfinite(out).all()):
        return math.inf
    den = float(ref.norm())
    return float((out - ref).norm()) / (den if den > 0 else 1.0)


def _flip_frac(out, ref) -> float:
    import torch

    out = out.to(torch.float64)
    if not bool(torch.isfinite(out).all()):
        return math.inf
    return float((torch.sign(out) != torch.sign(ref)).to(torch.float64).mean())


def check_variant(impl: Impl, dtype_name: str, model: Model, ref: list) -> dict:
    """Correctness gate: layer-wise (same reference input) and whole-model comparison.

    Returns ``{"passed": bool, "layer_errors": [...], "model_error": float|None, "metric": str,
    "tolerance": float}``.  Non-finite outputs always fail.
    """
    layers = len(model.signs)
    sign = model.activation == "sign"
    tol = SIGN_FLIP_TOL[dtype_name] if sign else TOLERANCES[dtype_name]
    errs = []
    for i in range(layers):
        zin = ref[i].to(impl.dtype).contiguous()
        out = impl.layer(i, zin)
        errs.append(_flip_frac(out, ref[i + 1]) if sign else _rel_err(out, ref[i + 1]))
    passed = all(e <= tol for e in errs)
    model_err = None
    if not sign:
        y = impl.forward(ref[0].to(impl.dtype).contiguous())
        model_err = _rel_err(y, ref[-1])
        passed = passed and model_err <= tol * layers
    return {"passed": bool(passed), "layer_errors": errs, "model_error": model_err,
            "metric": "sign flip fraction" if sign else "relative L2 error", "tolerance": tol}


# --------------------------------------------------------------------------- timing

def _time_cuda(fn, x, warmup: int, repeats: int, min_ms: float, max_s: float, graph: bool) -> dict:
    import torch

    for _ in range(max(warmup, 1)):
        fn(x)
    torch.cuda.synchronize()
    used_graph = False
    call = lambda: fn(x)  # noqa: E731
    if graph:
        try:
            g = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                fn(x)
            torch.cuda.current_stream().wait_stream(s)
            with torch.cuda.graph(g):
                fn(x)
            g.replay()
            torch.cuda.synchronize()
            call = g.replay
            used_graph = True
        except Exception as exc:  # pragma: no cover - depends on the GPU stack
            print(f"  (CUDA graph capture failed, timing eager calls: {exc})", file=sys.stderr)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    call()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end), 1e-4)
    inner = max(1, int(math.ceil(min_ms / one)))
    samples = []
    t0 = time.perf_counter()
    for _ in range(repeats):
        start.record()
        for _ in range(inner):
            call()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / inner)
        if time.perf_counter() - t0 > max_s and len(samples) >= 3:
            break
    return {"samples_ms": samples, "inner": inner, "graph": used_graph}


def _time_cpu(fn, x, warmup: int, repeats: int, min_ms: float, max_s: float) -> dict:
    for _ in range(warmup):
        fn(x)
    samples = []
    t0 = time.perf_counter()
    for _ in range(repeats):
        inner, ts = 0, time.perf_counter()
        while True:
            fn(x)
            inner += 1
            el = (time.perf_counter() - ts) * 1e3
            if el >= min_ms:
                break
        samples.append(el / inner)
        if time.perf_counter() - t0 > max_s and len(samples) >= 3:
            break
    return {"samples_ms": samples, "inner": None, "graph": False}


def _stats(samples: list) -> dict:
    s = sorted(samples)

    def q(p):
        pos = p * (len(s) - 1)
        lo, hi = int(math.floor(pos)), int(math.ceil(pos))
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    return {"median_ms": statistics.median(s), "p10_ms": q(0.1), "p90_ms": q(0.9),
            "min_ms": s[0], "max_ms": s[-1], "n": len(s)}


def measure_device(device: str) -> dict:
    """Measured ceilings: copy bandwidth (bytes read + written per s) and matmul rates."""
    import torch

    def med(fn, reps):
        ts = []
        for _ in range(reps):
            if device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                ts.append(a.elapsed_time(b) / 1e3)
            else:
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    n_copy = (1 << 28) if device == "cuda" else (1 << 24)  # fp32 elements: 1 GiB / 64 MiB
    src = torch.randn(n_copy, device=device)
    dst = torch.empty_like(src)
    for _ in range(2):
        dst.copy_(src)
    t = med(lambda: dst.copy_(src), 10)
    bw = 2 * src.numel() * 4 / t
    del src, dst
    rates = {}
    size = 8192 if device == "cuda" else 512
    for name, dt in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        try:
            a = torch.randn(size, size, device=device).to(dt)
            b = torch.randn(size, size, device=device).to(dt)
            (a @ b)
            t = med(lambda: a @ b, 5)
            rates[name] = 2 * size ** 3 / t
        except Exception:  # pragma: no cover - dtype unsupported on this CPU
            rates[name] = None
    return {"copy_bandwidth_Bps": bw, "matmul_flops": rates}


def roofline_ms(variant_bytes: int, act_bytes: int, flops: float, dtype_name: str, ceilings: dict) -> float:
    """Lower bound in ms: ``max(bytes / bandwidth, flops / matmul rate)`` (measured ceilings)."""
    t_mem = (variant_bytes + act_bytes) / ceilings["copy_bandwidth_Bps"]
    rate = ceilings["matmul_flops"].get(dtype_name)
    t_flop = flops / rate if rate else 0.0
    return 1e3 * max(t_mem, t_flop)


# --------------------------------------------------------------------------- driver

def _environment(device: str) -> dict:
    import torch

    env = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "python": platform.python_version(), "torch": torch.__version__, "device": device,
           "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception:
        env["triton"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, sm_count=p.multi_processor_count, gpu_memory_GiB=round(p.total_memory / 2**30, 1),
                   cuda=torch.version.cuda, l2_bytes=getattr(p, "L2_cache_size", None))
        try:
            import subprocess

            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            env["driver"] = None
    return env


def _log(cfg: dict, msg: str) -> None:
    if not cfg["quiet"]:
        print(msg, flush=True)


def run_cases(cfg: dict) -> dict:
    """Run every (width, batch, variant) case of a validated config; return the results dict."""
    import torch

    device = cfg["device"]
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    env = _environment(device)
    _log(cfg, f"rfq bench: {env.get('gpu', 'CPU')} torch {env['torch']} triton {env['triton']}")
    ceilings = measure_device(device)
    _log(cfg, f"  measured copy bandwidth {ceilings['copy_bandwidth_Bps'] / 1e9:.0f} GB/s, matmul "
              + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in ceilings["matmul_flops"].items() if v))
    results, skipped = [], []
    for width in cfg["widths"]:
        model = build_model(width, cfg["layers"], cfg["activation"], cfg["seed"] + width, device)
        impls = {}
        for name in cfg["variants"]:
            spec = VARIANTS[name]
            reason = spec.unavailable() if spec.unavailable else None
            if reason:
                skipped.append({"variant": name, "width": width, "reason": reason})
                continue
            if spec.needs_cuda and device != "cuda":
                skipped.append({"variant": name, "width": width, "reason": spec.note or "needs a CUDA GPU"})
                continue
            try:
                impls[name] = spec.factory(model, cfg)
            except ImportError as exc:
                skipped.append({"variant": name, "width": width, "reason": f"import failed: {exc}"})
            except Exception as exc:  # a peer library that imports but cannot build: report, don't crash
                if spec.kind != "peer":
                    raise
                skipped.append({"variant": name, "width": width,
                                "reason": f"setup failed: {type(exc).__name__}: {exc}".splitlines()[0]})
        for batch in cfg["batches"]:
            gen = torch.Generator(device=device).manual_seed(cfg["seed"] + 7 * batch + width)
            x32 = torch.randn((batch, width), generator=gen, device=device)
            ref = reference_activations(model, x32)
            for name, impl in impls.items():
                spec = VARIANTS[name]
                rec = {"variant": name, "kind": spec.kind, "dtype": spec.dtype, "width": width, "batch": batch,
                       "layers": cfg["layers"], "weight_bytes": impl.weight_bytes}
                if spec.kind == "onebit":
                    from .triton_onebit import choose_strategy

                    rec["strategy"] = choose_strategy(batch, "auto", cfg["gemv_max_batch"],
                                                      0 if "fused" in name else cfg["unpack_min_batch"],
                                                      dtype=spec.dtype)
                    if "-v1-" in name:
                        rec["strategy"] = V1_STRATEGIES.get(rec["strategy"], rec["strategy"])
                try:
                    gate = check_variant(impl, spec.dtype, model, ref)
                except Exception as exc:
                    gate = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
                rec["gate"] = gate
                if not gate["passed"]:
                    rec["status"] = "failed gate"
                    _log(cfg, f"  {name:16s} w={width:<6d} b={batch:<5d} FAILED correctness gate: {gate}")
                    results.append(rec)
                    continue
                x = x32.to(impl.dtype).contiguous()
                try:
                    if device == "cuda":
                        t = _time_cuda(impl.forward, x, cfg["warmup"], cfg["repeats"], cfg["min_sample_ms"],
                                       cfg["max_case_seconds"], cfg["graph"])
                    else:
                        t = _time_cpu(impl.forward, x, cfg["warmup"], cfg["repeats"], cfg["min_sample_ms"],
                                      cfg["max_case_seconds"])
                except Exception as exc:
                    rec["status"] = f"error: {type(exc).__name__}: {exc}"
                    results.append(rec)
                    continue
                esize = torch.tensor([], dtype=impl.dtype).element_size()
                act_bytes = esize * batch * width * (2 * cfg["layers"] + 1)
                flops = 2.0 * batch * width * width * cfg["layers"]
                rec.update(status="ok", graph=t["graph"], inner=t["inner"], samples_ms=t["samples_ms"],
                           **_stats(t["samples_ms"]))
                rec["roofline_ms"] = roofline_ms(impl.weight_bytes, act_bytes, flops, spec.dtype, ceilings)
                rec["roofline_fraction"] = rec["roofline_ms"] / rec["median_ms"]
                l2 = env.get("l2_bytes")
                rec["weights_fit_l2"] = bool(l2) and impl.weight_bytes < l2
                results.append(rec)
                _log(cfg, f"  {name:16s} w={width:<6d} b={batch:<5d} {rec['median_ms']:.4f} ms "
                          f"[{rec['p10_ms']:.4f}, {rec['p90_ms']:.4f}]")
            del ref, x32
        del impls, model
        if device == "cuda":
            torch.cuda.empty_cache()
    _add_speedups(results)
    return {"environment": env, "config": {k: v for k, v in cfg.items() if k not in ("quiet",)},
            "ceilings": ceilings, "results": results, "skipped": skipped,
            "targets": evaluate_targets(results, device)}


def _add_speedups(results: list) -> None:
    base = {(r["variant"], r["width"], r["batch"]): r["median_ms"] for r in results if r.get("status") == "ok"}
    for r in results:
        if r.get("status") != "ok":
            continue
        for b in ("dense-fp16", "dense-fp32"):
            t = base.get((b, r["width"], r["batch"]))
            r[f"speedup_vs_{b.split('-')[1]}"] = (t / r["median_ms"]) if t else None


def evaluate_targets(results: list, device: str) -> list:
    """Check :data:`TARGETS` against measured results (CUDA only); unmeasured -> 'not run'."""
    out = []
    for tg in TARGETS:
        rec = {"target": tg["name"], "status": "not run", "speedup": None}
        if device == "cuda":
            t = {r["variant"]: r for r in results if r["width"] == tg["width"] and r["batch"] == tg["batch"]
                 and r.get("status") == "ok"}
            if tg["variant"] in t and tg["vs"] in t:
                sp = t[tg["vs"]]["median_ms"] / t[tg["variant"]]["median_ms"]
                rec.update(speedup=sp, status="met" if sp >= tg["min_speedup"] else "missed")
        out.append(rec)
    return out


def format_table(report: dict) -> str:
    """Plain-text table of the results."""
    hdr = (f"{'variant':16s} {'width':>6s} {'batch':>5s} {'median ms':>10s} {'p10':>9s} {'p90':>9s} "
           f"{'weights MiB':>11s} {'x fp16':>7s} {'x fp32':>7s} {'roofline ms':>11s} {'%roof':>6s} gate")
    lines = [hdr, "-" * len(hdr)]
    for r in report["results"]:
        mib = r["weight_bytes"] / 2**20
        if r.get("status") != "ok":
            lines.append(f"{r['variant']:16s} {r['width']:6d} {r['batch']:5d} {'-':>10s} {'-':>9s} {'-':>9s} "
                         f"{mib:11.2f} {'-':>7s} {'-':>7s} {'-':>11s} {'-':>6s} {r.get('status')}")
            continue
        f16 = f"{r['speedup_vs_fp16']:.2f}" if r.get("speedup_vs_fp16") else "-"
        f32 = f"{r['speedup_vs_fp32']:.2f}" if r.get("speedup_vs_fp32") else "-"
        l2 = " L2" if r.get("weights_fit_l2") else ""
        lines.append(f"{r['variant']:16s} {r['width']:6d} {r['batch']:5d} {r['median_ms']:10.4f} {r['p10_ms']:9.4f} "
                     f"{r['p90_ms']:9.4f} {mib:11.2f} {f16:>7s} {f32:>7s} {r['roofline_ms']:11.4f} "
                     f"{100 * r['roofline_fraction']:5.0f}% ok{l2}")
    seen = set()
    for s in report["skipped"]:
        if s["variant"] not in seen:
            seen.add(s["variant"])
            lines.append(f"note: {s['variant']} skipped: {s['reason']}")
    for t in report["targets"]:
        sp = f" (measured {t['speedup']:.2f}x)" if t["speedup"] else ""
        lines.append(f"target: {t['target']}: {t['status']}{sp}")
    lines.append("x fp16 / x fp32: speed-up against dense fp16 / fp32 in the same run; "
                 "%roof: roofline bound / median; L2: all weights fit in L2")
    return "\n".join(lines)


def write_plot(report: dict, path: str) -> str | None:
    """Speed-up vs batch size against dense fp16 (one panel per variant); returns a note on failure."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written"
    ok = [r for r in report["results"] if r.get("status") == "ok" and r.get("speedup_vs_fp16")]
    variants = [v for v in dict.fromkeys(r["variant"] for r in ok) if v != "dense-fp16"]
    if not variants:
        return "no speed-ups against dense-fp16 to plot"
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.8), squeeze=False, sharey=True)
    for ax, v in zip(axes[0], variants):
        for w in sorted({r["width"] for r in ok if r["variant"] == v}):
            pts = sorted((r["batch"], r["speedup_vs_fp16"]) for r in ok if r["variant"] == v and r["width"] == w)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"width {w}")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(v)
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("speed-up vs dense fp16")
    axes[0][-1].legend(fontsize=8)
    env = report["environment"]
    fig.suptitle(f"{env.get('gpu', 'CPU')}, torch {env['torch']}, L={report['config']['layers']}, "
                 f"{report['config']['activation']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``rfq bench``: validate ``args``, run, print the table, write JSON/plot."""
    try:
        import torch
    except ImportError:
        print("rfq bench: error: PyTorch is not installed (pip install torch); the benchmark needs it",
              file=sys.stderr)
        return 2
    try:
        cfg = _validated(args, torch.cuda.is_available())
    except BenchError as exc:
        print(f"rfq bench: error: {exc}", file=sys.stderr)
        return 2
    report = run_cases(cfg)
    print(format_table(report))
    if cfg["json_path"]:
        with open(cfg["json_path"], "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        _log(cfg, f"wrote {cfg['json_path']}")
    if cfg["plot_path"]:
        note = write_plot(report, cfg["plot_path"])
        print(f"note: {note}" if note else f"wrote {cfg['plot_path']}")
    failed = [r for r in report["results"] if r.get("status") != "ok"]
    return 1 if failed else 0
