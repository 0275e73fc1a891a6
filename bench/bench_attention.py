#!/usr/bin/env python3
"""flashjit forward attention vs PyTorch SDPA backends, in one run on one GPU.

Grid (FlashAttention-3 paper): 16k tokens per batch (b = 16384/s), hidden 2048
(h = 2048/d), causal and not. FLOPs: 4*b*h*s*s*d, half for causal. Times are
medians of CUDA-event timings (triton.testing.do_bench). Each flashjit result
is checked against SDPA's output before it is timed.

  python3 bench/bench_attention.py --lib build/runtime/libflashjit.so \
      --dims 64,128 --seqs 512,1024,2048,4096,8192,16384 --dtype bf16 --out results.md
"""
import argparse
import datetime
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

from flashjit_ctypes import FlashJit

BACKENDS = [("sdpa-flash (FA2)", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)]


def tflops(b, h, s, d, causal, ms):
    flops = 4 * b * h * s * s * d * (0.5 if causal else 1.0)
    return flops / (ms * 1e-3) / 1e12


def median_ms(fn):
    return do_bench(fn, warmup=100, rep=400, return_mode="median")


def run_case(fj, dtype, d, s, causal, tile=None):
    b, h = max(1, 16384 // s), 2048 // d
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype) for _ in range(3))
    o = torch.empty_like(q)
    p = fj.params(q, k, v, o, causal=causal, tile=tile)
    fj.attention(p)
    torch.cuda.synchronize()
    # Sanity check against SDPA's own kernel (the GPU tests do the fp32-reference checks;
    # an fp32 reference here would need s*s memory).
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         is_causal=causal).transpose(1, 2).float()
    rel = ((o.float() - ref).norm() / ref.norm()).item()
    row = {"variant": fj.variant(p), "rel_err": rel}
    row["flashjit"] = tflops(b, h, s, d, causal, median_ms(lambda: fj.attention(p)))
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    for name, backend in BACKENDS:
        try:
            with sdpa_kernel(backend):
                fn = lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
                fn()
                row[name] = tflops(b, h, s, d, causal, median_ms(fn))
        except RuntimeError as e:  # backend unavailable for this shape
            row[name] = None
    return b, h, row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--seqs", default="512,1024,2048,4096,8192,16384")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--causal", default="both")
    ap.add_argument("--tiles", default="", help="d=128 tile sweep at s=4096: m,n,w,s;m,n,w,s")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    fj = FlashJit(args.lib)
    lines = []
    emit = lambda line: (print(line, flush=True), lines.append(line))
    props = torch.cuda.get_device_properties(0)
    emit(f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
         f"cuDNN {torch.backends.cudnn.version()}; {datetime.date.today()}; dtype {args.dtype}")
    emit("")
    emit("| d | s | causal | b | h | flashjit | sdpa-flash (FA2) | sdpa-cudnn | vs FA2 | vs cuDNN | rel.err | variant |")
    emit("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    causals = [False, True] if args.causal == "both" else [args.causal == "yes"]
    fmt = lambda x: "n/a" if x is None else f"{x:.0f}"
    ratio = lambda a, b: "n/a" if not b else f"{a / b:.2f}"
    bad = 0
    for d in [int(x) for x in args.dims.split(",")]:
        for causal in causals:
            for s in [int(x) for x in args.seqs.split(",")]:
                b, h, r = run_case(fj, dtype, d, s, causal)
                bad += r["rel_err"] > 1e-2
                emit(f"| {d} | {s} | {'yes' if causal else 'no'} | {b} | {h} | {r['flashjit']:.0f} | "
                     f"{fmt(r['sdpa-flash (FA2)'])} | {fmt(r['sdpa-cudnn'])} | "
                     f"{ratio(r['flashjit'], r['sdpa-flash (FA2)'])} | {ratio(r['flashjit'], r['sdpa-cudnn'])} | "
                     f"{r['rel_err']:.1e} | {r['variant']} |")
    if args.tiles:
        emit("")
        emit("Tile sweep, d = 128, s = 4096, not causal (TFLOP/s):")
        emit("")
        emit("| tile (m,n,warps,stages) | flashjit | rel.err |")
        emit("| --- | --- | --- |")
        for t in args.tiles.split(";"):
            tile = tuple(int(x) for x in t.split(","))
            try:
                _, _, r = run_case(fj, dtype, 128, 4096, False, tile)
                emit(f"| {t} | {r['flashjit']:.0f} | {r['rel_err']:.1e} |")
            except RuntimeError as e:
                emit(f"| {t} | error: {str(e)[:80]} | |")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    if bad:
        print(f"{bad} flashjit results exceeded 1e-2 relative error", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
