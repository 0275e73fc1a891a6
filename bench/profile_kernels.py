#!/usr/bin/env python3
"""Where a training step of the attention spends its GPU time, kernel by kernel.

One step is out = attention(q, k, v); out.backward(dO) on the benchmark grid's
shapes (b = 16384/s, h = 2048/d), for flashjit and SDPA's cuDNN and
FLASH_ATTENTION backends in the same process. torch.profiler (CUPTI) sees
every kernel and memset of the step, also those flashjit launches through
the Driver API. Prints, per implementation, each kernel's calls and
microseconds per step and its share of the step's GPU time.

  python3 bench/profile_kernels.py --dims 128 --seqs 1024,8192 --out results/NAME
"""
import argparse
import json
import os
import sys
from collections import defaultdict

import torch
from torch.autograd import DeviceType
from torch.nn.attention import SDPBackend
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import flashjit, median_ms  # noqa: E402
from bench_backward import sdpa_attention  # noqa: E402

BACKENDS = {"sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
            "sdpa-flash (FA2)": SDPBackend.FLASH_ATTENTION}


# flashjit's persistent key-block kernel on the default atomic tile's shape.
PERSISTENT_KEY_TILES = {64: (64, 64, 4, 2, 1, 1, 1), 128: (64, 128, 8, 2, 1, 1, 1)}


def attention_of(name, causal, d=None):
    """flashjit (default), flashjit-atomic (atomic dQ on the default tiles at
    every length), flashjit-deterministic, flashjit-persistent (atomic dQ,
    persistent key-block tile of head dim d) or an SDPA backend."""
    if name == "flashjit":
        return lambda q, k, v: flashjit.attention(q, k, v, causal=causal)
    if name == "flashjit-atomic":
        return lambda q, k, v: flashjit.attention(q, k, v, causal=causal, atomic_dq=True)
    if name == "flashjit-deterministic":
        return lambda q, k, v: flashjit.attention(q, k, v, causal=causal, deterministic=True)
    if name == "flashjit-persistent":
        tiles = ((0, 0, 0, 0), PERSISTENT_KEY_TILES[d])
        return lambda q, k, v: flashjit.attention(q, k, v, causal=causal, atomic_dq=True,
                                                  backward_tiles=tiles)
    return sdpa_attention(BACKENDS[name], causal)


def kernel_times(attend, q, k, v, grad_out, steps):
    """{kernel name: (calls, microseconds)} per step, the GPU's span of a
    step (first kernel start to last kernel end, microseconds) and the
    benchmark's time of a step (median of CUDA events, L2 flushed)."""
    def step():
        for t in (q, k, v):
            t.grad = None
        attend(q, k, v).backward(grad_out)
    for _ in range(3):  # compile, autotune, allocate before profiling
        step()
    torch.cuda.synchronize()
    spans = []
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
            torch.cuda.synchronize()  # steps apart: each one's span on its own
    totals = defaultdict(lambda: [0, 0.0])
    ranges = []
    for event in prof.events():
        if event.device_type != DeviceType.CUDA:
            continue
        totals[event.name][0] += 1
        totals[event.name][1] += event.time_range.elapsed_us()
        ranges.append((event.time_range.start, event.time_range.end))
    # Split the sorted kernels into steps at the synchronizations' gaps.
    ranges.sort()
    per_step = len(ranges) // steps
    for i in range(0, per_step * steps, per_step):
        chunk = ranges[i:i + per_step]
        spans.append(max(e for _, e in chunk) - chunk[0][0])
    spans.sort()
    bench_ms = median_ms(step)
    return ({name: (calls / steps, us / steps) for name, (calls, us) in totals.items()},
            spans[len(spans) // 2], 1000 * bench_ms)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="128")
    ap.add_argument("--seqs", default="1024,8192")
    ap.add_argument("--causal", choices=["no", "yes", "both"], default="no")
    ap.add_argument("--dtype", choices=["bf16", "fp16"], default="bf16")
    ap.add_argument("--impls", default="flashjit,sdpa-cudnn")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", required=True, help="path stem for NAME.md and NAME.json")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float16
    causals = {"no": [False], "yes": [True], "both": [False, True]}[args.causal]
    gpu = torch.cuda.get_device_name()
    lines = [f"# Kernel times of one training step ({gpu}, {args.dtype}, torch "
             f"{torch.__version__}, cuDNN {torch.backends.cudnn.version()})", ""]
    records = []
    for d in (int(x) for x in args.dims.split(",")):
        for s in (int(x) for x in args.seqs.split(",")):
            for causal in causals:
                b, h = max(1, 16384 // s), 2048 // d
                q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype,
                                       requires_grad=True) for _ in range(3))
                grad_out = torch.randn(b, s, h, d, device="cuda", dtype=dtype)
                for impl in args.impls.split(","):
                    times, span, bench_us = kernel_times(attention_of(impl, causal, d), q, k, v,
                                                         grad_out, args.steps)
                    total = sum(us for _, us in times.values())
                    lines += [f"## d {d}, s {s}, b {b}, h {h}, "
                              f"{'causal' if causal else 'non-causal'}: {impl}", "",
                              f"Kernels {total:.1f} us a step; the GPU's span of a step "
                              f"{span:.1f} us (first start to last end); the benchmark's "
                              f"step {bench_us:.1f} us (CUDA events, L2 flushed).", "",
                              "| kernel | calls | us | share |", "| --- | --- | --- | --- |"]
                    for name, (calls, us) in sorted(times.items(), key=lambda kv: -kv[1][1]):
                        lines.append(f"| {name[:90]} | {calls:g} | {us:.1f} | "
                                     f"{100 * us / total:.1f}% |")
                    lines.append("")
                    records.append({"d": d, "s": s, "causal": causal, "impl": impl,
                                    "total_us": total, "span_us": span,
                                    "bench_us": bench_us,
                                    "kernels": {n: {"calls": c, "us": u}
                                                for n, (c, u) in times.items()}})
                    print("\n".join(lines[-(len(times) + 6):]), flush=True)
                del q, k, v, grad_out
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(args.out + ".json", "w") as f:
        json.dump({"gpu": gpu, "dtype": args.dtype, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
