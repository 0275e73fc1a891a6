#!/usr/bin/env python3
"""Sustained forward throughput, power and SM clock: flashjit against SDPA's cuDNN
backend, each run back to back for several seconds in turn (rounds), while
nvidia-smi samples power.draw / clocks.sm / temperature every 100 ms.

do_bench's 400 ms medians catch a card between power states; at the H200's
700 W cap the kernels settle within a second. Here each phase runs SECONDS
seconds (the first second is left out of the averages), so the TFLOP/s are
steady-state and GFLOP/J compares the work done per energy at the cap.

  python3 bench/bench_sustained.py [--cells 64:1024:causal,64:1024:full,128:8192:full]
      [--dtypes bf16,fp16] [--seconds 6] [--rounds 2] --out results/NAME   (NAME.json)
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import F, SDPBackend, flashjit, sdpa_kernel, tflops  # noqa: E402

SETTLE_S = 1.0  # left out of each phase's averages


def phases(dtype, d, s, causal, seconds, rounds):
    """Runs flashjit and cuDNN in turn, `rounds` times, `seconds` each; yields a
    row per phase with its wall-clock span and TFLOP/s."""
    b, h = max(1, 16384 // s), 2048 // d
    q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=dtype) for _ in range(3))
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    out = flashjit.attention(q, k, v, causal=causal)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal).transpose(1, 2)
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    if not err < 1e-2:
        raise RuntimeError(f"flashjit result wrong at d={d} s={s} causal={causal}: {err}")

    def cudnn():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
    kernels = (("flashjit", lambda: flashjit.attention(q, k, v, causal=causal)), ("cudnn", cudnn))
    for r in range(rounds):
        for name, fn in kernels:
            torch.cuda.synchronize()
            t0, calls = time.time(), 0
            while time.time() - t0 < seconds:
                for _ in range(20):
                    fn()
                calls += 20
                torch.cuda.synchronize()
            t1 = time.time()
            yield {"dtype": str(dtype).removeprefix("torch."), "d": d, "s": s, "causal": causal,
                   "round": r, "kernel": name, "t0": t0, "t1": t1, "calls": calls,
                   "tflops": tflops(b, h, s, d, causal, (t1 - t0) * 1e3 / calls)}
            time.sleep(1.0)


def read_samples(path):
    """(unix time, watts, MHz, °C) of nvidia-smi's CSV lines (local timestamps)."""
    samples = []
    for line in open(path).read().splitlines():
        fields = [x.strip() for x in line.split(",")]
        if len(fields) != 4:
            continue
        t = datetime.datetime.strptime(fields[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        samples.append((t, float(fields[1]), float(fields[2]), float(fields[3])))
    return samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="64:1024:causal,64:1024:full,128:8192:full")
    ap.add_argument("--dtypes", default="bf16,fp16")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="", help="path prefix for .json")
    args = ap.parse_args()
    smi_log = "/tmp/bench_sustained_smi.csv"
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=timestamp,power.draw,clocks.sm,temperature.gpu",
                            "--format=csv,noheader,nounits", "-lms", "100", "-f", smi_log])
    rows = []
    try:
        for dt in args.dtypes.split(","):
            dtype = torch.bfloat16 if dt == "bf16" else torch.float16
            for cell in args.cells.split(","):
                d, s, mask = cell.split(":")
                rows += phases(dtype, int(d), int(s), mask == "causal", args.seconds, args.rounds)
    finally:
        smi.terminate()
        smi.wait()
    samples = read_samples(smi_log)
    for r in rows:
        inside = [x for x in samples if r["t0"] + SETTLE_S <= x[0] <= r["t1"]]
        if not inside:
            raise RuntimeError("no nvidia-smi samples inside a phase")
        r["watts"] = sum(x[1] for x in inside) / len(inside)
        r["sm_mhz"] = sum(x[2] for x in inside) / len(inside)
        r["max_temp_c"] = max(x[3] for x in inside)
        r["gflop_per_joule"] = r["tflops"] * 1e3 / r["watts"]
        print(f"{r['dtype']} d{r['d']} s{r['s']} {'causal' if r['causal'] else 'full'} "
              f"r{r['round']} {r['kernel']:9s} {r['tflops']:6.0f} TFLOP/s {r['watts']:6.0f} W "
              f"{r['sm_mhz']:6.0f} MHz {r['max_temp_c']:3.0f} C {r['gflop_per_joule']:6.0f} GFLOP/J")
    if args.out:
        props = torch.cuda.get_device_properties(0)
        header = (f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, "
                  f"cuDNN {torch.backends.cudnn.version()}; {datetime.date.today()}")
        json.dump({"header": header, "rows": rows}, open(args.out + ".json", "w"), indent=1)


if __name__ == "__main__":
    main()
