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
* ``onebit-cpu-fp32``: packed 1-bit weights on the CPU, the lookup-table kernel of
  :mod:`validation.timing.cpu_onebit` (Numba; batch 1 GEMV, small-batch GEMM in tiles of up
  to 16 rows), run with as many threads as torch's BLAS; listed as unavailable without Numba.
* ``reference-fp16`` / ``reference-bf16`` / ``reference-fp32``: pure PyTorch, unpack the
  bits on every call and matmul (the correctness reference; slow by design).
* ``gemlite-w1-fp16``: the peer library gemlite (Triton, W1A16): the same +-1 weights in its
  1-bit affine format (``W_q = (s+1)/2``, zero 0.5, per-row scale ``2/sqrt(m)``), its
  ``A16W1_HQQ_INT`` layer and auto kernel choice, activation in place; when gemlite is not
  installed it is listed as unavailable.

Correctness gate: before timing, every variant is checked layer by layer (same input as
the float64 reference, relative L2 error, or the fraction of flipped signs for the ``sign``
activation) and on the whole model output; a variant that fails gets no speed.  The
tolerance is per activation dtype (:data:`TOLERANCES`) unless the variant sets its own
(``onebit-cpu-fp32``: 1e-5).

Timing: warm-up (includes Triton autotuning), then on CUDA a CUDA graph of the whole
forward pass is replayed between CUDA events (``--no-graph`` to time eager calls); on
CPU ``time.perf_counter``.  Median and spread (p10/p90) over repeats, weight memory,
speed-ups against dense fp16 and fp32 measured in the same run, and a roofline bound
``max(bytes moved / copy bandwidth, flops / matmul rate)`` (:func:`measure_device`,
:func:`apply_roofline`): the bandwidth is that of a copy at least as large as the bytes the
case moves, the matmul rate that of a large GEMM at the case's dtype (the lookup-table CPU
kernel does no multiplications: bytes only), and a ceiling that some case beats is raised to
the rate that case reached (and reported as such), so no case exceeds 100% of its roofline.

Results are appended to ``<json>.jsonl`` as each case finishes (one JSON object per line,
flushed), and the whole report is written to ``--json`` at the end.  Before anything is
allocated the peak memory of the largest case is estimated and a run that cannot fit is
refused.

Without CUDA the CPU paths run (dense, the CPU one-bit kernel and the reference); the
one-bit Triton variants are listed as skipped ("needs a CUDA GPU").  Torch is imported
lazily: this module imports without it, and ``run_bench`` then prints one line and returns 2.

Exit codes of :func:`run_bench`: 0 all requested variants ran or were skipped, 1 some
variant failed the correctness gate, 2 bad input or torch missing.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..machine import cpu_model

__all__ = ["run_bench", "add_bench_arguments", "main", "register_variant", "VARIANTS", "TARGETS", "BenchError"]

ACTIVATION_NAMES = ("linear", "relu", "tanh", "sign")
GPU_WIDTHS = (1024, 2048, 4096, 8192, 16384)
GPU_BATCHES = (1, 16, 256, 4096)
CPU_WIDTHS = (256, 1024)
CPU_BATCHES = (1, 16, 256)
GPU_VARIANTS = ("dense-fp32", "dense-fp16", "dense-bf16", "onebit-fp16", "onebit-fused-fp16", "reference-fp16")
CPU_VARIANTS = ("dense-fp32", "dense-fp16", "dense-bf16", "onebit-cpu-fp32", "onebit-fp16", "reference-fp32")
#: Relative-error tolerances of the gate per activation dtype (layer level); the whole
#: model gets ``layers`` times this.  For ``sign`` the gate bounds the flip fraction.
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 4e-2}
SIGN_FLIP_TOL = {"fp32": 1e-3, "fp16": 1e-2, "bf16": 3e-2}
#: Speed targets, evaluated when the matching configuration ran on the target's device.
TARGETS = (
    {
        "name": "GPU, batch 1, width 16384: onebit-fp16 >= 8x dense-fp16",
        "variant": "onebit-fp16",
        "device": "cuda",
        "width": 16384,
        "batch": 1,
        "vs": "dense-fp16",
        "min_speedup": 8.0,
    },
    {
        "name": "GPU, batch 4096, width 16384: onebit-fp16 no slower than dense-fp16",
        "variant": "onebit-fp16",
        "device": "cuda",
        "width": 16384,
        "batch": 4096,
        "vs": "dense-fp16",
        "min_speedup": 1.0,
    },
    {
        "name": "CPU, batch 1, width 8192: onebit-cpu-fp32 >= 4x dense-fp32",
        "variant": "onebit-cpu-fp32",
        "device": "cpu",
        "width": 8192,
        "batch": 1,
        "vs": "dense-fp32",
        "min_speedup": 4.0,
    },
    {
        "name": "CPU, batch 1, width 16384: onebit-cpu-fp32 >= 4x dense-fp32",
        "variant": "onebit-cpu-fp32",
        "device": "cpu",
        "width": 16384,
        "batch": 1,
        "vs": "dense-fp32",
        "min_speedup": 4.0,
    },
    {
        "name": "CPU, batch 2..16: onebit-cpu-fp32 faster than dense-fp32",
        "variant": "onebit-cpu-fp32",
        "device": "cpu",
        "width": None,
        "batch": (2, 16),
        "vs": "dense-fp32",
        "min_speedup": 1.0,
    },
)
#: largest accepted values of the scalar options (each case is bounded anyway by
#: --max-case-seconds; these keep a typo from asking for hours)
MAX_REPEATS = 100_000
MAX_WARMUP = 10_000
MAX_SAMPLE_MS = 60_000.0
MAX_CASE_SECONDS = 3600.0
MAX_SEED = 2**32 - 1
#: fraction of the free memory a run may plan to use
MEMORY_HEADROOM = 0.8


class BenchError(ValueError):
    """Bad benchmark input; the message names the parameter."""


# --------------------------------------------------------------------------- arguments


def _scalar(value, name: str, kind, lo=None, hi=None, boundaries: str = "both"):
    """One option through :func:`rfq_theory.checks.check_scalar`; errors become :class:`BenchError`."""
    from rfq_theory.checks import check_scalar

    try:
        return check_scalar(value, f"--{name}", kind, min_val=lo, max_val=hi, include_boundaries=boundaries)
    except (TypeError, ValueError) as exc:
        raise BenchError(str(exc)) from None


def _int_list(text: str, name: str, hi: int) -> list[int]:
    """A comma-separated list of integers ``1 <= v <= hi`` (the CLI's one list syntax)."""
    from rfq_theory.options import split_list

    try:
        items = split_list(text, name)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return [_scalar(v, name, int, 1, hi) for v in items]


def _validated(args: argparse.Namespace, cuda: bool) -> dict:
    """Normalise and check ``args``; raise :class:`BenchError` naming the bad parameter.

    Every scalar goes through :func:`rfq_theory.checks.check_scalar` (finite, in range);
    lists use the CLI's comma syntax.
    """
    device = getattr(args, "device", "auto") or "auto"
    if device not in ("auto", "cpu", "cuda"):
        raise BenchError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not cuda:
        raise BenchError("--device cuda requested but torch sees no CUDA device")
    on_gpu = cuda and device != "cpu"
    widths = (
        _int_list(args.widths, "widths", 2**31 - 1)
        if args.widths is not None
        else list(GPU_WIDTHS if on_gpu else CPU_WIDTHS)
    )
    batches = (
        _int_list(args.batches, "batches", 2**31 - 1)
        if args.batches is not None
        else list(GPU_BATCHES if on_gpu else CPU_BATCHES)
    )
    layers = _scalar(args.layers, "layers", int, 1, None)
    if args.activation not in ACTIVATION_NAMES:
        raise BenchError(f"--activation must be one of {', '.join(ACTIVATION_NAMES)}, got {args.activation!r}")
    if args.variants is not None:
        from rfq_theory.options import split_list

        try:
            variants = list(dict.fromkeys(split_list(args.variants, "variants")))
        except ValueError as exc:
            raise BenchError(str(exc)) from None
    else:
        variants = list(GPU_VARIANTS if on_gpu else CPU_VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise BenchError(f"--variants: unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(VARIANTS))}")
    repeats = _scalar(
        args.repeats if args.repeats is not None else (25 if on_gpu else 5), "repeats", int, 1, MAX_REPEATS
    )
    warmup = _scalar(args.warmup, "warmup", int, 0, MAX_WARMUP)
    min_ms = _scalar(
        args.min_sample_ms if args.min_sample_ms is not None else (2.0 if on_gpu else 0.0),
        "min-sample-ms",
        float,
        0.0,
        MAX_SAMPLE_MS,
    )
    max_s = _scalar(args.max_case_seconds, "max-case-seconds", float, 0.0, MAX_CASE_SECONDS, "right")
    gmb = _scalar(args.gemv_max_batch, "gemv-max-batch", int, 0, None)
    umb = _scalar(args.unpack_min_batch, "unpack-min-batch", int, 0, None)
    seed = _scalar(args.seed, "seed", int, 0, MAX_SEED)
    json_path = _output_path(args.json_path, "json")
    plot_path = _output_path(args.plot_path, "plot")
    if json_path and plot_path and os.path.abspath(json_path) == os.path.abspath(plot_path):
        raise BenchError("--json and --plot name the same file")
    return dict(
        device="cuda" if on_gpu else "cpu",
        unpack_min_batch=umb,
        widths=widths,
        batches=batches,
        layers=layers,
        activation=args.activation,
        variants=variants,
        repeats=repeats,
        warmup=warmup,
        min_sample_ms=min_ms,
        max_case_seconds=max_s,
        graph=on_gpu and not args.no_graph,
        gemv_max_batch=gmb,
        seed=seed,
        json_path=json_path,
        plot_path=plot_path,
        quiet=bool(args.quiet),
    )


def _output_path(path, name: str) -> str | None:
    """``--json`` / ``--plot`` checked before any work: a writable regular file path."""
    if path is None:
        return None
    from rfq_theory.options import check_output_path

    try:
        text = check_output_path(path, name)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if os.path.exists(text) and not os.path.isfile(text):
        raise BenchError(f"--{name}: {text!r} is not a regular file; give a file path")
    if not os.access(os.path.dirname(os.path.abspath(text)), os.W_OK):
        raise BenchError(f"--{name}: folder of {text!r} is not writable")
    return text


# --------------------------------------------------------------------------- memory


def available_memory(device: str) -> int | None:
    """Free memory in bytes on ``device`` (CUDA: free device memory; CPU: MemAvailable), or None."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate_memory(cfg: dict) -> int:
    """Peak bytes of the largest case of ``cfg`` (weights of every variant, the float64
    reference's transient copy of one layer, activations); an upper-end estimate."""
    peak = 0
    for w in cfg["widths"]:
        sq = w * w
        total = cfg["layers"] * sq * 4  # the +-1 layers in fp32 (shared by dense-fp32)
        total += cfg["layers"] * 4 * w * ((w + 31) // 32)  # packed bits
        for name in cfg["variants"]:
            spec = VARIANTS[name]
            if spec.kind in ("dense", "peer") and spec.dtype != "fp32":
                total += cfg["layers"] * sq * 2
        total += sq * 12  # transient: float64 copy of one layer, or one unpacked layer
        nmax = max(cfg["batches"])
        total += nmax * w * 8 * (cfg["layers"] + 4)  # reference activations and inputs
        peak = max(peak, total)
    return peak


def check_memory(cfg: dict) -> None:
    """Refuse a configuration whose estimated peak does not fit in the free memory."""
    need = estimate_memory(cfg)
    free = available_memory(cfg["device"])
    if free is not None and need > MEMORY_HEADROOM * free:
        where = "GPU" if cfg["device"] == "cuda" else "RAM"
        raise BenchError(
            f"--widths {max(cfg['widths'])} with --layers {cfg['layers']} needs about {need / 1e9:.3g} GB "
            f"of memory but {free / 1e9:.3g} GB of {where} is free; use smaller --widths/--layers/--batches"
        )


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
    #: runs only with ``--device cpu`` (or on a machine without CUDA)
    cpu_only: bool = False
    #: gate tolerance replacing :data:`TOLERANCES` for this variant (``None``: by dtype)
    tolerance: float | None = None
    #: returns a one-line reason when the variant cannot run here (e.g. a peer library missing)
    unavailable: Callable[[], str | None] | None = None


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _act_inplace(z, activation: str):

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


def _onebit_factory(dtype_name: str, fused_only: bool = False):
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
            return onebit_linear(
                z, words[i], ms[i], alphas[i], model.activation, gemv_max_batch=gmb, unpack_min_batch=umb
            )

        return _make_impl(layer, len(words), a, dt, sum(w.numel() * 4 for w in words))

    return factory


def cpu_kernel_unavailable() -> str | None:
    """``None`` when the CPU one-bit kernel can run (Numba importable), else a one-line reason."""
    from .cpu_onebit import numba_unavailable

    return numba_unavailable()


def _onebit_cpu_factory(model: Model, opts: dict) -> Impl:
    """``onebit-cpu-fp32``: the lookup-table kernel on the packed words in its tile layout."""
    import torch

    from .cpu_onebit import onebit_linear_cpu, prepare_layer, readout_cpu, set_num_threads

    set_num_threads(torch.get_num_threads())  # the same thread count as the BLAS of dense-*
    ms = [s.shape[1] for s in model.signs]
    words = [prepare_layer(w.cpu().numpy(), m) for w, m in zip(model.words, ms)]  # once, like a model load
    alphas = [1.0 / math.sqrt(m) for m in ms]
    a = model.readout.to(torch.float32)
    a_np = a.numpy()
    r_scale = 1.0 / math.sqrt(a.shape[0])

    def layer(i, z):
        y = onebit_linear_cpu(z.numpy(), words[i], ms[i], alphas[i], model.activation)
        return torch.from_numpy(y)

    def forward(x):
        # numpy end to end: no torch (OpenMP) parallel region between the kernel's calls, whose
        # spinning worker threads would compete with Numba's on a small machine
        z = x.numpy()
        for i in range(len(words)):
            z = onebit_linear_cpu(z, words[i], ms[i], alphas[i], model.activation)
        return torch.from_numpy(readout_cpu(z, a_np, r_scale))

    return Impl(layer, forward, sum(w.nbytes for w in words) + a_np.nbytes, torch.float32)


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
    register_variant(
        VariantSpec(
            f"onebit-{_d}",
            "onebit",
            _d,
            _onebit_factory(_d),
            needs_cuda=True,
            note="the Triton one-bit path needs a CUDA GPU (TRITON_INTERPRET=1 is for correctness tests only)",
        )
    )
    register_variant(
        VariantSpec(
            f"onebit-fused-{_d}",
            "onebit",
            _d,
            _onebit_factory(_d, fused_only=True),
            needs_cuda=True,
            note="the Triton one-bit path needs a CUDA GPU",
        )
    )
    register_variant(VariantSpec(f"reference-{_d}", "reference", _d, _reference_factory(_d)))
register_variant(
    VariantSpec(
        "onebit-cpu-fp32",
        "onebit-cpu",
        "fp32",
        _onebit_cpu_factory,
        cpu_only=True,
        note="the lookup-table kernel runs on the CPU: use --device cpu",
        unavailable=cpu_kernel_unavailable,
        tolerance=1e-5,
    )
)
register_variant(
    VariantSpec(
        "gemlite-w1-fp16",
        "peer",
        "fp16",
        _gemlite_factory("fp16"),
        needs_cuda=True,
        note="gemlite's Triton kernels need a CUDA GPU",
        unavailable=gemlite_unavailable,
    )
)


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


def check_variant(impl: Impl, dtype_name: str, model: Model, ref: list, tolerance: float | None = None) -> dict:
    """Correctness gate: layer-wise (same reference input) and whole-model comparison.

    ``tolerance`` (relative L2 error per layer; the whole model gets ``layers`` times it)
    replaces the dtype's :data:`TOLERANCES` entry when given.  Returns ``{"passed": bool,
    "layer_errors": [...], "model_error": float|None, "metric": str, "tolerance": float}``.
    Non-finite outputs always fail.
    """
    layers = len(model.signs)
    sign = model.activation == "sign"
    tol = SIGN_FLIP_TOL[dtype_name] if sign else (TOLERANCES[dtype_name] if tolerance is None else tolerance)
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
    return {
        "passed": bool(passed),
        "layer_errors": errs,
        "model_error": model_err,
        "metric": "sign flip fraction" if sign else "relative L2 error",
        "tolerance": tol,
    }


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
    inner = max(1, min(int(math.ceil(min_ms / one)), int(1e3 * max_s / one)))
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
            if el >= min_ms or time.perf_counter() - t0 > max_s:
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

    return {
        "median_ms": statistics.median(s),
        "p10_ms": q(0.1),
        "p90_ms": q(0.9),
        "min_ms": s[0],
        "max_ms": s[-1],
        "n": len(s),
    }


def measure_device(device: str, dtypes=("fp32", "fp16", "bf16")) -> dict:
    """Measured ceilings of ``device``: copy bandwidths and matmul rates.

    Copies (``dst.copy_(src)``, fp32) of several sizes, from cache-resident to larger than
    the last-level cache; bandwidth counts bytes read plus written.  Matmul: square GEMMs of
    growing size (CPU 512 up to 4096 while one product takes under 0.25 s; CUDA 8192) in
    each dtype of ``dtypes``; the best rate is the ceiling.  Returns ``{"copy": [{"bytes",
    "Bps"}, ...] (ascending), "matmul_flops": {dtype: rate}, "matmul_size": {dtype: n}}``.
    """
    import torch

    def timed(fn, min_s=0.005, reps=5):
        # fastest seconds per call over reps (a ceiling is the best rate seen: other load on the
        # machine only slows samples down); each sample repeats fn until it lasts min_s
        ts = []
        for _ in range(reps):
            inner = 0
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            while True:
                fn()
                inner += 1
                if device == "cuda":
                    torch.cuda.synchronize()
                el = time.perf_counter() - t
                if el >= min_s:
                    break
            ts.append(el / inner)
        return min(ts)

    sizes = (1 << 20, 1 << 28) if device == "cuda" else (1 << 13, 1 << 16, 1 << 19, 1 << 22, 1 << 24)
    copies = []
    for n in sizes:
        bufs = [torch.randn(n, device=device)]
        bufs.append(torch.empty_like(bufs[0]))
        bufs[1].copy_(bufs[0])
        t = timed(lambda: bufs[1].copy_(bufs[0]))
        copies.append({"bytes": 2 * n * 4, "Bps": 2 * n * 4 / t})
        bufs.clear()
    rates, used = {}, {}
    for name in dtypes:
        dt = _torch_dtype(name)
        best, best_n = None, None
        for n in (8192,) if device == "cuda" else (512, 1024, 2048, 4096):
            try:
                a = torch.randn(n, n, device=device).to(dt)
                b = torch.randn(n, n, device=device).to(dt)
                t0 = time.perf_counter()
                a @ b
                first = time.perf_counter() - t0
                t = timed(lambda: a @ b, min_s=0.0, reps=3)
            except Exception:  # pragma: no cover - dtype unsupported on this device
                break
            rate = 2 * n**3 / t
            if best is None or rate > best:
                best, best_n = rate, n
            if first > 0.25:
                break
        rates[name], used[name] = best, best_n
    return {"copy": copies, "matmul_flops": rates, "matmul_size": used, "raised": []}


def copy_bandwidth(nbytes: float, ceilings: dict) -> dict:
    """The copy probe for a case moving ``nbytes``: the smallest copy at least that large
    (the largest probe when the case moves more than every probe)."""
    for probe in ceilings["copy"]:
        if probe["bytes"] >= nbytes:
            return probe
    return ceilings["copy"][-1]


def roofline_ms(nbytes: float, flops: float | None, dtype_name: str, ceilings: dict) -> float:
    """Lower bound in ms: ``max(bytes / copy bandwidth, flops / matmul rate)`` (``flops=None``: bytes only)."""
    t_mem = nbytes / copy_bandwidth(nbytes, ceilings)["Bps"]
    rate = ceilings["matmul_flops"].get(dtype_name)
    t_flop = flops / rate if (rate and flops) else 0.0
    return 1e3 * max(t_mem, t_flop)


def apply_roofline(results: list, ceilings: dict) -> None:
    """Add ``roofline_ms`` and ``roofline_fraction`` (<= 1) to every timed result.

    A ceiling is an upper bound on the rate of any computation: where a case moved its bytes
    faster than the copy probe of its size, or did its flops faster than the measured matmul
    rate of its dtype, the probe was not the ceiling.  That ceiling is raised to the rate the
    case reached (listed in ``ceilings["raised"]``), so every fraction is <= 1 by construction.
    """
    ok = [r for r in results if r.get("status") == "ok"]
    for r in ok:
        sec = r["median_ms"] / 1e3
        probe = copy_bandwidth(r["bytes_moved"], ceilings)
        bw = r["bytes_moved"] / sec
        if bw > probe["Bps"]:
            ceilings["raised"].append(
                {
                    "ceiling": f"copy bandwidth ({probe['bytes']} B probe)",
                    "measured": probe["Bps"],
                    "raised_to": bw,
                    "by": f"{r['variant']} width {r['width']} batch {r['batch']}",
                }
            )
            probe["Bps"] = bw
        rate = ceilings["matmul_flops"].get(r["dtype"])
        if r.get("flops") and rate and r["flops"] / sec > rate:
            ceilings["raised"].append(
                {
                    "ceiling": f"{r['dtype']} matmul rate",
                    "measured": rate,
                    "raised_to": r["flops"] / sec,
                    "by": f"{r['variant']} width {r['width']} batch {r['batch']}",
                }
            )
            ceilings["matmul_flops"][r["dtype"]] = r["flops"] / sec
    for r in ok:
        r["roofline_ms"] = roofline_ms(r["bytes_moved"], r.get("flops"), r["dtype"], ceilings)
        r["roofline_fraction"] = min(1.0, r["roofline_ms"] / r["median_ms"])


# --------------------------------------------------------------------------- driver


def _environment(device: str) -> dict:
    import torch

    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "platform": platform.platform(),
        "blas_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
    }
    try:
        env["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        env["load_average"] = None
    try:
        import triton

        env["triton"] = triton.__version__
    except Exception:
        env["triton"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(
            gpu=p.name,
            sm_count=p.multi_processor_count,
            gpu_memory_GiB=round(p.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            l2_bytes=getattr(p, "L2_cache_size", None),
        )
        try:
            import subprocess

            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except Exception:
            env["driver"] = None
    return env


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def _log(cfg: dict, msg: str) -> None:
    if not cfg["quiet"]:
        print(msg, flush=True)


def run_cases(cfg: dict, sink: Callable[[dict], None] | None = None) -> dict:
    """Run every (width, batch, variant) case of a validated config; return the results dict.

    ``sink`` (optional) is called with each finished result record as it comes (the
    JSON-lines stream of ``rfq bench --json``).
    """
    import torch

    device = cfg["device"]
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    env = _environment(device)
    _log(
        cfg,
        f"rfq bench: {env.get('gpu', env['cpu_model'])}, torch {env['torch']}, triton {env['triton']}, "
        f"numba {env['numba']}; {env['blas_threads']} BLAS threads; load average "
        f"{env['load_average']}",
    )
    dtypes = sorted({VARIANTS[v].dtype for v in cfg["variants"]})
    ceilings = measure_device(device, dtypes)
    unit, scale = ("TFLOP/s", 1e12) if device == "cuda" else ("GFLOP/s", 1e9)
    _log(
        cfg,
        "  measured copy bandwidth "
        + ", ".join(f"{c['Bps'] / 1e9:.3g} GB/s ({c['bytes'] / 2**20:.3g} MiB)" for c in ceilings["copy"])
        + "; matmul "
        + ", ".join(
            f"{k} {v / scale:.3g} {unit} (n={ceilings['matmul_size'][k]})"
            for k, v in ceilings["matmul_flops"].items()
            if v
        ),
    )
    if sink:
        sink(
            {
                "type": "environment",
                "environment": env,
                "ceilings_measured": ceilings,
                "config": {k: v for k, v in cfg.items() if k != "quiet"},
            }
        )
    results, skipped = [], []

    def done(rec):
        results.append(rec)
        if sink:
            sink({"type": "result", **rec})

    for width in cfg["widths"]:
        model = build_model(width, cfg["layers"], cfg["activation"], cfg["seed"] + width, device)
        impls = {}
        for name in cfg["variants"]:
            spec = VARIANTS[name]
            reason = spec.unavailable() if spec.unavailable else None
            if reason:
                skipped.append({"variant": name, "width": width, "reason": reason})
                continue
            if (spec.needs_cuda and device != "cuda") or (spec.cpu_only and device != "cpu"):
                skipped.append(
                    {
                        "variant": name,
                        "width": width,
                        "reason": spec.note or ("needs a CUDA GPU" if spec.needs_cuda else "CPU only"),
                    }
                )
                continue
            try:
                impls[name] = spec.factory(model, cfg)
            except ImportError as exc:
                skipped.append({"variant": name, "width": width, "reason": f"import failed: {exc}"})
            except Exception as exc:  # a peer library that imports but cannot build: report, don't crash
                if spec.kind != "peer":
                    raise
                skipped.append(
                    {
                        "variant": name,
                        "width": width,
                        "reason": f"setup failed: {type(exc).__name__}: {exc}".splitlines()[0],
                    }
                )
        for batch in cfg["batches"]:
            gen = torch.Generator(device=device).manual_seed(cfg["seed"] + 7 * batch + width)
            x32 = torch.randn((batch, width), generator=gen, device=device)
            ref = reference_activations(model, x32)
            for name, impl in impls.items():
                spec = VARIANTS[name]
                rec = {
                    "variant": name,
                    "kind": spec.kind,
                    "dtype": spec.dtype,
                    "width": width,
                    "batch": batch,
                    "layers": cfg["layers"],
                    "weight_bytes": impl.weight_bytes,
                }
                if spec.kind == "onebit":
                    from .triton_onebit import choose_strategy

                    rec["strategy"] = choose_strategy(
                        batch,
                        "auto",
                        cfg["gemv_max_batch"],
                        0 if "fused" in name else cfg["unpack_min_batch"],
                        dtype=spec.dtype,
                    )
                elif spec.kind == "onebit-cpu":
                    rec["strategy"] = "lut-gemv" if batch == 1 else "lut-gemm"
                try:
                    gate = check_variant(impl, spec.dtype, model, ref, spec.tolerance)
                except Exception as exc:
                    gate = {"passed": False, "error": f"{type(exc).__name__}: {exc}"}
                rec["gate"] = gate
                if not gate["passed"]:
                    rec["status"] = "failed gate"
                    _log(cfg, f"  {name:16s} w={width:<6d} b={batch:<5d} FAILED correctness gate: {gate}")
                    done(rec)
                    continue
                x = x32.to(impl.dtype).contiguous()
                try:
                    if device == "cuda":
                        t = _time_cuda(
                            impl.forward,
                            x,
                            cfg["warmup"],
                            cfg["repeats"],
                            cfg["min_sample_ms"],
                            cfg["max_case_seconds"],
                            cfg["graph"],
                        )
                    else:
                        t = _time_cpu(
                            impl.forward,
                            x,
                            cfg["warmup"],
                            cfg["repeats"],
                            cfg["min_sample_ms"],
                            cfg["max_case_seconds"],
                        )
                except Exception as exc:
                    rec["status"] = f"error: {type(exc).__name__}: {exc}"
                    done(rec)
                    continue
                esize = torch.tensor([], dtype=impl.dtype).element_size()
                act_bytes = esize * batch * width * (2 * cfg["layers"] + 1)
                rec["bytes_moved"] = impl.weight_bytes + act_bytes
                # the lookup-table kernel adds table entries instead of multiplying: bytes only
                rec["flops"] = None if spec.kind == "onebit-cpu" else 2.0 * batch * width * width * cfg["layers"]
                rec.update(
                    status="ok",
                    graph=t["graph"],
                    inner=t["inner"],
                    samples_ms=t["samples_ms"],
                    **_stats(t["samples_ms"]),
                )
                l2 = env.get("l2_bytes")
                rec["weights_fit_l2"] = bool(l2) and impl.weight_bytes < l2
                done(rec)
                _log(
                    cfg,
                    f"  {name:16s} w={width:<6d} b={batch:<5d} {rec['median_ms']:.4f} ms "
                    f"[{rec['p10_ms']:.4f}, {rec['p90_ms']:.4f}]",
                )
            del ref, x32
        del impls, model
        if device == "cuda":
            torch.cuda.empty_cache()
    apply_roofline(results, ceilings)
    _add_speedups(results)
    return {
        "environment": env,
        "config": {k: v for k, v in cfg.items() if k not in ("quiet",)},
        "ceilings": ceilings,
        "results": results,
        "skipped": skipped,
        "targets": evaluate_targets(results, device),
    }


def _add_speedups(results: list) -> None:
    base = {(r["variant"], r["width"], r["batch"]): r["median_ms"] for r in results if r.get("status") == "ok"}
    for r in results:
        if r.get("status") != "ok":
            continue
        for b in ("dense-fp16", "dense-fp32"):
            t = base.get((b, r["width"], r["batch"]))
            r[f"speedup_vs_{b.split('-')[1]}"] = (t / r["median_ms"]) if t else None


def evaluate_targets(results: list, device: str) -> list:
    """Check :data:`TARGETS` against measured results on their device; unmeasured -> 'not run'.

    A target whose ``batch`` is a range ``(lo, hi)`` (and ``width`` None) needs every measured
    (width, batch) in range to meet the speed-up; the weakest one is reported.
    """
    ok = {(r["variant"], r["width"], r["batch"]): r["median_ms"] for r in results if r.get("status") == "ok"}
    out = []
    for tg in TARGETS:
        rec = {"target": tg["name"], "status": "not run", "speedup": None}
        if device == tg["device"]:
            if isinstance(tg["batch"], tuple):
                lo, hi = tg["batch"]
                keys = [
                    (w, b)
                    for (v, w, b) in ok
                    if v == tg["variant"]
                    and lo <= b <= hi
                    and (tg["width"] is None or w == tg["width"])
                    and (tg["vs"], w, b) in ok
                ]
            else:
                keys = (
                    [(tg["width"], tg["batch"])]
                    if (tg["variant"], tg["width"], tg["batch"]) in ok and (tg["vs"], tg["width"], tg["batch"]) in ok
                    else []
                )
            if keys:
                sps = {(w, b): ok[(tg["vs"], w, b)] / ok[(tg["variant"], w, b)] for w, b in keys}
                (w, b), sp = min(sps.items(), key=lambda kv: kv[1])
                rec.update(
                    speedup=sp, status="met" if sp >= tg["min_speedup"] else "missed", weakest={"width": w, "batch": b}
                )
        out.append(rec)
    return out


def format_table(report: dict) -> str:
    """Plain-text table of the results."""
    hdr = (
        f"{'variant':16s} {'width':>6s} {'batch':>5s} {'median ms':>10s} {'p10':>9s} {'p90':>9s} "
        f"{'weights MiB':>11s} {'x fp16':>7s} {'x fp32':>7s} {'roofline ms':>11s} {'%roof':>6s} gate"
    )
    lines = [hdr, "-" * len(hdr)]
    for r in report["results"]:
        mib = r["weight_bytes"] / 2**20
        if r.get("status") != "ok":
            lines.append(
                f"{r['variant']:16s} {r['width']:6d} {r['batch']:5d} {'-':>10s} {'-':>9s} {'-':>9s} "
                f"{mib:11.2f} {'-':>7s} {'-':>7s} {'-':>11s} {'-':>6s} {r.get('status')}"
            )
            continue
        f16 = f"{r['speedup_vs_fp16']:.2f}" if r.get("speedup_vs_fp16") else "-"
        f32 = f"{r['speedup_vs_fp32']:.2f}" if r.get("speedup_vs_fp32") else "-"
        l2 = " L2" if r.get("weights_fit_l2") else ""
        lines.append(
            f"{r['variant']:16s} {r['width']:6d} {r['batch']:5d} {r['median_ms']:10.4f} {r['p10_ms']:9.4f} "
            f"{r['p90_ms']:9.4f} {mib:11.2f} {f16:>7s} {f32:>7s} {r['roofline_ms']:11.4f} "
            f"{100 * r['roofline_fraction']:5.0f}% ok{l2}"
        )
    seen = set()
    for s in report["skipped"]:
        if s["variant"] not in seen:
            seen.add(s["variant"])
            lines.append(f"note: {s['variant']} skipped: {s['reason']}")
    for t in report["targets"]:
        if t["status"] == "not run":
            continue
        sp = f" (measured {t['speedup']:.2f}x" if t["speedup"] else ""
        if sp and t.get("weakest"):
            sp += f", weakest at width {t['weakest']['width']} batch {t['weakest']['batch']}"
        lines.append(f"target: {t['target']}: {t['status']}{sp + ')' if sp else ''}")
    for c in report["ceilings"].get("raised", []):
        lines.append(
            f"note: {c['ceiling']} raised from {c['measured']:.4g} to {c['raised_to']:.4g} (reached by {c['by']})"
        )
    env = report["environment"]
    lines.append(
        f"machine: {env.get('gpu') or env.get('cpu_model')}; {env.get('blas_threads')} BLAS threads "
        f"(the CPU one-bit kernel uses the same number); load average at start {env.get('load_average')}"
    )
    lines.append(
        "x fp16 / x fp32: speed-up against dense fp16 / fp32 in the same run; "
        "%roof: roofline bound / median (<= 100% by construction); L2: all weights fit in L2"
    )
    return "\n".join(lines)


def speedup_baseline(report: dict) -> str:
    """The dense baseline of the speed-up plot: ``"fp32"`` on a CPU run (half precision has no fast CPU path),
    else ``"fp16"`` when it was measured, else ``"fp32"``."""
    if report.get("config", {}).get("device") == "cpu":
        return "fp32"
    return "fp16" if any(r.get("speedup_vs_fp16") for r in report["results"]) else "fp32"


def write_plot(report: dict, path: str) -> str | None:
    """Speed-up vs batch size against the dense baseline of :func:`speedup_baseline` (one panel per variant).

    Returns a note on failure."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written"
    fig = speedup_figure(report)
    if isinstance(fig, str):
        return fig
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def speedup_figure(report: dict):
    """The figure of :func:`write_plot`, or a note (a string) when there is nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written"
    base = speedup_baseline(report)
    key = f"speedup_vs_{base}"
    ok = [r for r in report["results"] if r.get("status") == "ok" and r.get(key)]
    variants = [v for v in dict.fromkeys(r["variant"] for r in ok) if v != f"dense-{base}"]
    if not variants:
        return f"no speed-ups against dense-{base} to plot"
    fig, axes = plt.subplots(1, len(variants), figsize=(4.2 * len(variants), 3.8), squeeze=False, sharey=True)
    for ax, v in zip(axes[0], variants):
        for w in sorted({r["width"] for r in ok if r["variant"] == v}):
            pts = sorted((r["batch"], r[key]) for r in ok if r["variant"] == v and r["width"] == w)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"width {w}")
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_title(v)
        ax.set_xlabel("batch size")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel(f"speed-up vs dense {base}")
    axes[0][-1].legend(fontsize=8)
    env = report["environment"]
    fig.suptitle(
        f"{env.get('gpu') or env.get('cpu_model', 'CPU')}, torch {env['torch']}, L={report['config']['layers']}, "
        f"{report['config']['activation']}",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


TORCH_HINT = (
    "PyTorch is not installed; the benchmark needs it: install the CPU build with "
    "'pip install torch==2.13.0' (the version CI uses), and 'pip install \"rfq-theory[cpu]\"' "
    "for the one-bit CPU kernel"
)


def _error(msg: str) -> int:
    print(f"rfq bench: error: {msg}", file=sys.stderr)
    return 2


class _JsonLines:
    """Append-only JSON-lines stream (one object per line, flushed and synced per line)."""

    def __init__(self, path: str):
        self.path = path
        self.fh = open(path, "w")

    def __call__(self, obj: dict) -> None:
        self.fh.write(json.dumps(_jsonable(obj), allow_nan=False) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _jsonable(obj):
    """Replace non-finite floats by None (strict JSON) and unknown objects by their str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def write_json(report: dict, path: str) -> None:
    """Write ``report`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            json.dump(_jsonable(report), fh, indent=1, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``rfq bench``: validate ``args``, run, print the table, write JSON/plot.

    Returns 0 (every requested variant ran or was skipped), 1 (a variant failed the
    correctness gate or errored) or 2 (bad input, not enough memory, an output that cannot
    be written, torch missing); errors are one line on stderr.
    """
    try:
        import torch
    except ImportError:
        return _error(TORCH_HINT)
    try:
        cfg = _validated(args, torch.cuda.is_available())
        check_memory(cfg)
    except BenchError as exc:
        return _error(str(exc))
    stream = None
    if cfg["json_path"]:
        jsonl = cfg["json_path"] + "l" if cfg["json_path"].endswith(".json") else cfg["json_path"] + ".jsonl"
        try:
            stream = _JsonLines(jsonl)
        except OSError as exc:
            return _error(f"cannot write --json stream {jsonl!r}: {exc.strerror or exc}")
    try:
        report = run_cases(cfg, sink=stream)
    except OSError as exc:
        return _error(f"cannot write --json stream: {exc.strerror or exc}")
    finally:
        if stream:
            stream.close()
    print(format_table(report), flush=True)
    if stream:
        _log(cfg, f"wrote {stream.path} (one line per case, written as each finished)")
    if cfg["json_path"]:
        try:
            write_json(report, cfg["json_path"])
        except OSError as exc:
            return _error(f"cannot write --json {cfg['json_path']!r}: {exc.strerror or exc}")
        _log(cfg, f"wrote {cfg['json_path']}")
    if cfg["plot_path"]:
        try:
            note = write_plot(report, cfg["plot_path"])
        except OSError as exc:
            return _error(f"cannot write --plot {cfg['plot_path']!r}: {exc.strerror or exc}")
        print(f"note: {note}" if note else f"wrote {cfg['plot_path']}")
    failed = [r for r in report["results"] if r.get("status") != "ok"]
    return 1 if failed else 0


BENCH_EXAMPLES = """\
examples:
  rfq bench                                   # default sizes for the device found
  rfq bench --device cpu --widths 1024 --batches 1,16 --json bench.json
  rfq bench --device cpu --widths 8192 --batches 1 --variants dense-fp32,onebit-cpu-fp32
"""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``rfq bench`` options to ``parser``."""
    parser.add_argument(
        "--widths", default=None, help="comma-separated layer widths (default GPU: 1024,...,16384; CPU: 256,1024)"
    )
    parser.add_argument(
        "--batches", default=None, help="comma-separated batch sizes (default GPU: 1,16,256,4096; CPU: 1,16,256)"
    )
    parser.add_argument("--layers", default=3, help="number of random layers L (default 3)")
    parser.add_argument("--activation", default="relu", help="one of linear, relu, tanh, sign (default relu)")
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated variants (dense-fp32, dense-fp16, dense-bf16, onebit-fp16, "
        "onebit-bf16, onebit-fp32, onebit-fused-fp16, onebit-cpu-fp32, reference-fp16, "
        "reference-bf16, reference-fp32, gemlite-w1-fp16)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--repeats", default=None, help="timed samples per case (default 25 GPU, 5 CPU)")
    parser.add_argument("--warmup", default=3, help="untimed warm-up calls per case (default 3)")
    parser.add_argument(
        "--min-sample-ms",
        default=None,
        help="each timed sample repeats the forward pass until it lasts this long (default 2 GPU, 0 CPU)",
    )
    parser.add_argument(
        "--max-case-seconds", default=4.0, help="cap on timing seconds per (variant, width, batch) (default 4)"
    )
    parser.add_argument("--no-graph", action="store_true", help="CUDA: time eager calls instead of a CUDA graph")
    parser.add_argument(
        "--gemv-max-batch", default=1, help="one-bit: batch sizes up to this use the bit-flip GEMV kernel (default 1)"
    )
    parser.add_argument(
        "--unpack-min-batch",
        default=1024,
        help="one-bit: batch sizes from this on unpack the layer (Triton) and call cuBLAS; "
        "0 disables (default 1024; the onebit-fused-* variants never unpack)",
    )
    parser.add_argument("--seed", default=0, help="random seed (default 0)")
    parser.add_argument(
        "--json",
        dest="json_path",
        default=None,
        help="write all results to this JSON file at the end; each case is also appended "
        "to <file>l (JSON lines, e.g. bench.jsonl) as soon as it finishes",
    )
    parser.add_argument(
        "--plot", dest="plot_path", default=None, help="write a speed-up vs batch size plot (PNG, needs matplotlib)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final table")


def main(argv: list | None = None) -> int:
    """``python -m validation.timing.bench [options]``: the same as ``rfq bench``."""
    parser = argparse.ArgumentParser(prog="rfq bench")
    add_bench_arguments(parser)
    return run_bench(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
