"""Per-layer micro-benchmark of the one-bit kernel strategies (GPU only).

Times one layer (rotating over 4 independent layers so that weights are not served from
L2) for each strategy against dense fp16 cuBLAS, and prints the autotuner's choices.
Usage: python benchmarks/kernel_micro.py [width ...]
"""
import math
import sys

import torch
import triton

from validation.onebit import pack_signs_torch
from validation import triton_onebit as tob


def main(widths):
    torch.backends.cuda.matmul.allow_tf32 = False
    for width in widths:
        layers = 4
        signs = [torch.where(torch.randn(width, width, device="cuda") >= 0, 1.0, -1.0) for _ in range(layers)]
        words = [pack_signs_torch(s) for s in signs]
        dense = [s.half() for s in signs]
        del signs
        alpha = 1 / math.sqrt(width)
        zero = torch.zeros((), dtype=torch.float16, device="cuda")
        for n in (1, 2, 16, 256, 4096):
            x = torch.randn(n, width, device="cuda", dtype=torch.float16)
            ref = torch.relu(torch.addmm(zero, x, dense[0].t(), beta=0, alpha=alpha)).float()

            def dense_fn():
                for d in dense:
                    torch.addmm(zero, x, d.t(), beta=0, alpha=alpha).relu_()

            t_dense = triton.testing.do_bench(dense_fn, warmup=50, rep=300, return_mode="median") / layers
            row = [f"w={width:6d} n={n:5d} dense-fp16 {1e3 * t_dense:9.1f} us"]
            strategies = ["gemv", "gemv3", "gemm", "unpack"] if n <= 16 else ["gemm", "unpack"]
            for st in strategies:
                y = tob.onebit_linear(x, words[0], width, alpha, "relu", strategy=st).float()
                err = float((y - ref).norm() / ref.norm())

                def fn(st=st):
                    for w in words:
                        tob.onebit_linear(x, w, width, alpha, "relu", strategy=st)

                t = triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median") / layers
                row.append(f"{st} {1e3 * t:8.1f} us ({t_dense / t:5.2f}x, err {err:.1e})")
            print(" | ".join(row), flush=True)
        tuned = tob._tuned_kernels()
        for name, k in tuned.items():
            print(f"  w={width} {name} best config: {getattr(k, 'best_config', None)}")
        t_unpack = triton.testing.do_bench(lambda: [tob.unpack_signs_triton(w, width, torch.float16) for w in words],
                                           return_mode="median") / layers
        print(f"  unpack alone {1e3 * t_unpack:.1f} us/layer; bytes {width * width * 2.125 / 1e6:.0f} MB "
              f"-> {width * width * 2.125 / t_unpack / 1e9:.0f} GB/s")
        del dense, words
        tob.clear_scratch()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [16384, 8192, 4096])
