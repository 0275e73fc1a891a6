#!/usr/bin/env python3
"""Draws the benchmark JSON (bench_attention.py --out) as PNGs:
TFLOP/s vs sequence length per head dim and mask, and peak memory of one call
(naive vs flashjit) vs sequence length.   python3 bench/plot_results.py NAME.json"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path):
    data = json.load(open(path))
    rows = data["rows"]
    impls = [k for k in rows[0] if isinstance(rows[0][k], dict) and k != "variant"]
    groups = sorted({(r["d"], r["causal"]) for r in rows})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False)
    for ax, (d, causal) in zip(axes[0], groups):
        sel = [r for r in rows if r["d"] == d and r["causal"] == causal]
        for impl in impls:
            pts = [(r["s"], r[impl]["tflops"]) for r in sel if "tflops" in r.get(impl, {})]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=impl, linewidth=2 if impl == "flashjit" else 1)
        ax.set_xscale("log", base=2)
        ax.set_title(f"d={d}{' causal' if causal else ''}")
        ax.set_xlabel("sequence length")
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(data["header"], fontsize=8)
    fig.tight_layout()
    out = path.replace(".json", "-tflops.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for (d, causal) in groups:
        sel = [r for r in rows if r["d"] == d and r["causal"] == causal]
        ax.plot([r["s"] for r in sel], [r["flashjit"]["peak_mib"] for r in sel], marker="o",
                label=f"flashjit d={d}{' causal' if causal else ''}")
        naive = [(r["s"], r["naive_peak_mib"]) for r in sel if "naive_peak_mib" in r]
        if naive:
            ax.plot(*zip(*naive), marker="x", linestyle="--",
                    label=f"naive d={d}{' causal' if causal else ''}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (16k tokens per batch)")
    ax.set_ylabel("peak memory of one call (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    out = path.replace(".json", "-memory.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1])
