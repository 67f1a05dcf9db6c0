"""Per-layer micro-benchmark of the one-bit kernel strategies (GPU only).

Times one layer (rotating over 4 independent layers so that weights are not served from
L2) for each strategy against dense fp16 cuBLAS, checks each against a float64 reference
on fresh random inputs, and prints the autotuner's choices.
Usage: python benchmarks/kernel_micro.py [width ...]   (env MICRO_BATCHES=1,16,256,4096;
MICRO_GRAPH=1 times CUDA-graph replays, without it eager calls, which at small sizes
measure the Python/autotuner launch overhead rather than the kernels)
"""

import math
import os
import sys

import torch
import triton

from validation.timing import triton_onebit as tob
from validation.timing.onebit import pack_signs_torch

STRATEGIES = {
    1: ["gemv", "gemv2", "gemm2"],
    16: ["gemm", "gemm2", "gemv2"],
    256: ["gemm", "gemm2", "unpack"],
    1024: ["gemm2", "unpack"],
    4096: ["gemm2", "unpack"],
}


def main(widths):
    torch.backends.cuda.matmul.allow_tf32 = False
    batches = [int(b) for b in os.environ.get("MICRO_BATCHES", "1,16,256,4096").split(",")]
    graph = os.environ.get("MICRO_GRAPH", "0") == "1"
    print(f"timing: {'CUDA graph replay' if graph else 'eager launches (includes Python launch overhead)'}")
    for width in widths:
        layers = 4
        signs = [torch.where(torch.randn(width, width, device="cuda") >= 0, 1.0, -1.0) for _ in range(layers)]
        words = [pack_signs_torch(s) for s in signs]
        dense = [s.half() for s in signs]
        alpha = 1 / math.sqrt(width)
        zero = torch.zeros((), dtype=torch.float16, device="cuda")
        for n in batches:
            x = torch.randn(n, width, device="cuda", dtype=torch.float16)
            ref = torch.relu(x.double() @ signs[0].double().t() * alpha)

            def dense_fn(dense=dense):
                for d in dense:
                    torch.addmm(zero, x, d.t(), beta=0, alpha=alpha).relu_()

            if graph:
                dense_fn()
                torch.cuda.synchronize()
                gd = torch.cuda.CUDAGraph()
                with torch.cuda.graph(gd):
                    dense_fn()
                dense_fn = gd.replay
            t_dense = triton.testing.do_bench(dense_fn, warmup=50, rep=300, return_mode="median") / layers
            row = [f"w={width:6d} n={n:5d} dense-fp16 {1e3 * t_dense:9.1f} us"]
            for st in STRATEGIES.get(n, ["gemm2", "unpack"]):
                try:
                    y = tob.onebit_linear(x, words[0], width, alpha, "relu", strategy=st).double()
                    torch.cuda.synchronize()
                except Exception as exc:  # report and go on
                    row.append(f"{st} FAILED {type(exc).__name__}: {str(exc)[:300]}")
                    continue
                err = float((y - ref).norm() / ref.norm())

                def fn(st=st, words=words):
                    for w in words:
                        tob.onebit_linear(x, w, width, alpha, "relu", strategy=st)

                if graph:  # CUDA graph of the 4 layer calls: no Python launch overhead in the time
                    fn()
                    torch.cuda.synchronize()
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        fn()
                    fn = g.replay
                t = triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median") / layers
                t2 = triton.testing.do_bench(fn, warmup=20, rep=200, return_mode="median") / layers
                row.append(f"{st} {1e3 * t:8.1f} us (again {1e3 * t2:.1f}; {t_dense / t:5.2f}x, err {err:.1e})")
            print(" | ".join(row), flush=True)
        for name, k in tob._tuned_kernels().items():
            print(f"  w={width} {name} best config: {getattr(k, 'best_config', None)}", flush=True)
        t_unpack = (
            triton.testing.do_bench(
                lambda words=words: [tob.unpack_signs_triton(w, width, torch.float16) for w in words],
                return_mode="median",
            )
            / layers
        )
        print(
            f"  unpack alone {1e3 * t_unpack:.1f} us/layer; bytes {width * width * 2.125 / 1e6:.0f} MB "
            f"-> {width * width * 2.125 / t_unpack / 1e9:.0f} GB/s",
            flush=True,
        )
        del dense, words, signs
        tob.clear_scratch()
        tob._tuned.clear()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [16384, 8192, 4096])
