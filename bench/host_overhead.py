#!/usr/bin/env python3
"""Host time of one attention call from Python, and how much of it a benchmark sees.

1. Host microseconds a call (median of batches of back-to-back calls on a
   problem too small to keep the GPU busy): flashjit's forward, a training
   step (forward + backward), and SDPA's cuDNN and FLASH_ATTENTION backends.
   The step's parts alone: the forward with and without autograd, the
   backward's Python call without autograd, and a no-op custom autograd
   Function's step (the engine's own cost of a Python Function).
2. cProfile of flashjit's forward calls and training steps: where the host
   time goes (the library's C calls show as one line each).
3. On the benchmark's shapes: the median of triton's do_bench (L2 flushed
   before each call, the way bench_attention.py times) next to the kernel's
   own time from torch.profiler. do_bench's flush keeps the GPU busy for a
   while after it is queued; host time past that shows up in the benchmark.

  python3 bench/host_overhead.py [--dims 64,128] [--seqs 512,1024] --out results/NAME
"""
import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import PEERS, F, flashjit, median_ms, sdpa_kernel, tflops  # noqa: E402


def host_us(fn, calls=200, batches=15):
    """Median host microseconds a call over batches of back-to-back calls."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
        torch.cuda.synchronize()
    return statistics.median(per_call)


def calls_of(q, k, v, causal=False):
    """{name: a call} on [b, s, h, d] tensors (SDPA on the [b, h, s, d] views)."""
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    calls = {"flashjit": lambda: flashjit.attention(q, k, v, causal=causal),
             "flashjit lse": lambda: flashjit.attention(q, k, v, causal=causal, return_lse=True)}
    for key in ("cudnn", "flash"):
        name, backend = PEERS[key]

        def sdpa(backend=backend):
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
        calls[name] = sdpa
    return calls


def training_steps(q, k, v):
    qg, kg, vg = (t.detach().clone().requires_grad_() for t in (q, k, v))
    grad_out = torch.randn_like(q)
    qt, kt, vt = qg.transpose(1, 2), kg.transpose(1, 2), vg.transpose(1, 2)
    name, backend = PEERS["cudnn"]

    def sdpa_step():
        with sdpa_kernel(backend):
            out = F.scaled_dot_product_attention(qt, kt, vt)
        out.transpose(1, 2).backward(grad_out)
    return {"flashjit step": lambda: flashjit.attention(qg, kg, vg).backward(grad_out),
            name + " step": sdpa_step}


class _TrivialFunction(torch.autograd.Function):
    """A custom autograd Function with no work: the engine's cost of one."""
    @staticmethod
    def forward(ctx, q, k, v):
        return q * 1

    @staticmethod
    def backward(ctx, grad_out):
        return grad_out, None, None


def step_parts(q, k, v):
    """The parts of flashjit's training step, each timed alone: the forward
    with and without autograd, the backward's Python call (_launch_backward
    on the forward's O and LSE, no autograd), the library's C calls alone on
    structs built once (the variant's selection alone, and selection plus
    launches), and a no-op custom Function's step (the autograd engine's own
    cost)."""
    from flashjit import _library, functional
    qg, kg, vg = (t.detach().clone().requires_grad_() for t in (q, k, v))
    grad_out = torch.randn_like(q)
    out, lse, forward = functional._launch(q, k, v, False, None, True)
    backward, *outputs = functional._backward_params(forward, q, k, v, out, lse, grad_out)
    lib = _library.library()
    rt, stream = lib.runtime(q.device.index), torch.cuda.current_stream().cuda_stream

    def library_backward(outputs=outputs):  # (the struct's dO and gradients stay alive)
        lib.attention_backward(rt, backward, stream)
    return {"library variant (no launch)": lambda: lib.variant(rt, forward),
            "library forward call": lambda: lib.attention(rt, forward, stream),
            "library backward call": library_backward,
            "flashjit forward, autograd": lambda: flashjit.attention(qg, kg, vg),
            "flashjit forward, no grad": lambda: flashjit.attention(q, k, v),
            "flashjit backward call": lambda: functional._launch_backward(
                forward, q, k, v, out, lse, grad_out),
            "no-op Function step": lambda: _TrivialFunction.apply(qg, kg, vg).backward(grad_out)}


def kernel_us(fn, runs=20):
    """GPU microseconds a call: the sum of its kernels' times (torch.profiler),
    and the kernels' names."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    return sum(e.time_range.elapsed_us() for e in kernels) / runs, sorted({e.name[:60] for e in kernels})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--seqs", default="512,1024,2048")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dtype = torch.bfloat16
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}

    tiny = [torch.randn(1, 128, 1, 128, device="cuda", dtype=dtype) for _ in range(3)]
    result["host_us"] = {name: host_us(fn) for name, fn in calls_of(*tiny).items()}
    result["host_us"].update({name: host_us(fn, calls=50)
                              for name, fn in training_steps(*tiny).items()})
    result["host_us"].update({name: host_us(fn, calls=50)
                              for name, fn in step_parts(*tiny).items()})
    print("host microseconds a call (b 1, s 128, h 1, d 128):")
    for name, us in result["host_us"].items():
        print(f"  {name:24s} {us:7.1f}")

    profiled = {"forward": (calls_of(*tiny)["flashjit"], 2000),
                "step": (training_steps(*tiny)["flashjit step"], 500)}
    for what, (fn, calls) in profiled.items():
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            fn()
        profiler.disable()
        torch.cuda.synchronize()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        result["cprofile_" + what] = text.getvalue()
        print(f"cProfile of {calls} flashjit {what} calls:")
        print(text.getvalue())

    rows = []
    print("| d | s | impl | do_bench ms | kernel ms | difference us | TFLOP/s do_bench | TFLOP/s kernel | kernels")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for d in (int(x) for x in args.dims.split(",")):
        for s in (int(x) for x in args.seqs.split(",")):
            b, h = max(1, 16384 // s), 2048 // d
            q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype) for _ in range(3))
            for name, fn in calls_of(q, k, v).items():
                bench_ms, (gpu_us, kernels) = median_ms(fn), kernel_us(fn)
                gpu_ms = gpu_us / 1e3
                row = {"d": d, "s": s, "impl": name, "do_bench_ms": bench_ms, "kernel_ms": gpu_ms,
                       "kernels": kernels,
                       "tflops_do_bench": tflops(b, h, s, d, False, bench_ms),
                       "tflops_kernel": tflops(b, h, s, d, False, gpu_ms)}
                rows.append(row)
                print(f"| {d} | {s} | {name} | {bench_ms:.4f} | {gpu_ms:.4f} | "
                      f"{(bench_ms - gpu_ms) * 1e3:.1f} | {row['tflops_do_bench']:.0f} | "
                      f"{row['tflops_kernel']:.0f} | {' '.join(kernels)[:70]}", flush=True)
    result["rows"] = rows
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
