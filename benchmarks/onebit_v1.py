"""Before/after timing of the one-bit GPU kernels: ``onebit-v1-*`` next to the current ones.

Registers the variants ``onebit-v1-fp16``, ``onebit-v1-bf16`` and ``onebit-v1-fp32`` with the
``rfq bench`` harness and runs it with the command-line options given.  A v1 variant runs the
first generation of kernels where the current ones would run the packed-half2 forms: the
fp32-accumulating bit-flip ``gemv`` in place of ``gemv2`` (batch 1) and the compare/select
``gemm`` in place of ``gemm2`` (fused GEMM); the ``unpack`` strategy (large batches) is shared.
Both kernel generations live in :mod:`validation.timing.triton_onebit` (``gemv`` and ``gemm``
remain the fp32/bf16 paths); only this comparison lives here.  Needs a CUDA GPU.

Usage (from the repository root):
  python benchmarks/onebit_v1.py --device cuda --widths 4096,8192,16384 --batches 1,16,256,4096 \\
      --variants dense-fp16,onebit-fp16,onebit-v1-fp16 --json v1.json
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from validation.timing import bench  # noqa: E402

#: current kernel -> the kernel it replaced
V1_STRATEGIES = {"gemv2": "gemv", "gemm2": "gemm"}


def _v1_factory(dtype_name: str):
    def factory(model, opts):
        from validation.timing.triton_onebit import choose_strategy, onebit_linear

        dt = bench._torch_dtype(dtype_name)
        words = model.words
        ms = [s.shape[1] for s in model.signs]
        alphas = [1.0 / math.sqrt(m) for m in ms]
        a = model.readout.to(dt)
        gmb = opts.get("gemv_max_batch", 1)
        umb = opts.get("unpack_min_batch", 1024)

        def layer(i, z):
            strategy = choose_strategy(z.shape[0], "auto", gmb, umb, dtype=dtype_name)
            return onebit_linear(
                z,
                words[i],
                ms[i],
                alphas[i],
                model.activation,
                gemv_max_batch=gmb,
                unpack_min_batch=umb,
                strategy=V1_STRATEGIES.get(strategy, strategy),
            )

        return bench._make_impl(layer, len(words), a, dt, sum(w.numel() * 4 for w in words))

    return factory


def register_v1() -> None:
    """Add the ``onebit-v1-*`` variants to :data:`validation.timing.bench.VARIANTS`."""
    for d in ("fp32", "fp16", "bf16"):
        bench.register_variant(
            bench.VariantSpec(
                f"onebit-v1-{d}",
                "onebit",
                d,
                _v1_factory(d),
                needs_cuda=True,
                note="the Triton one-bit path needs a CUDA GPU",
            )
        )


if __name__ == "__main__":
    register_v1()
    sys.exit(bench.main())
