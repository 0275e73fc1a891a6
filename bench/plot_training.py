#!/usr/bin/env python3
"""Plots the loss curves of examples/train_check.py --out FILE.json into a PNG."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(path, png):
    data = json.load(open(path))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(data["sdpa"], label="PyTorch SDPA (torch.nn.MultiheadAttention)", lw=1.2)
    ax.plot(data["flashjit"], label="flashjit (flashjit.nn.MultiheadAttention)", lw=1.2, ls="--")
    a = data["args"]
    ax.set_title(f"{a['layers']}-layer causal LM, embed {a['embed']}, {a['heads']} heads, "
                 f"seq {a['seq']}, bf16 — {data['device']}", fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
