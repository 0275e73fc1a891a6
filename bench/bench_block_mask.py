#!/usr/bin/env python3
"""flashjit with a user-given block mask vs FlexAttention with the same blocks.

Rows at b 1, s 16384, h 16, d 128 bf16 (blocks of 128 x 128): attention
without a mask, then block-sparse patterns that no range can describe (a
random 25% of the blocks; a band of 3 blocks around the diagonal plus the
first block column, BigBird-like without the random part; a causal random
50%). flashjit visits only the listed blocks (flashjit.BlockMask, lists
checked once when built); FlexAttention (torch.compile'd) gets a BlockMask of
the same blocks from create_block_mask (made once, outside the timing; every
block "full", so neither runs an element-wise mask except causal's diagonal).
Forward and forward + backward. TFLOP/s count the visited (query, key) pairs
(4 d per pair forward, 3.5x that forward + backward: seven products for two,
bench_backward.py's convention). Every flashjit output
is first compared with FlexAttention's (relative L2 < 2e-2).

  python3 bench/bench_block_mask.py --out results/NAME   (NAME.md, NAME.json)
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402
from bench_variants import cell_text, gpu_header, publish, speedup_text, time_cells  # noqa: E402

B, S, H, D, BLOCK = 1, 16384, 16, 128, 128
N = S // BLOCK


def patterns():
    """(name, dense [N, N] block table, causal)."""
    i = torch.arange(N, device="cuda")[:, None]
    j = torch.arange(N, device="cuda")[None, :]
    gen = torch.Generator(device="cuda").manual_seed(0)
    rand = torch.rand(N, N, device="cuda", generator=gen)
    return [("no mask (all blocks)", torch.ones(N, N, dtype=torch.bool, device="cuda"), False),
            ("random 25% of blocks", rand < 0.25, False),
            ("band +-1 block + first column", ((i - j).abs() <= 1) | (j == 0), False),
            ("causal, random 50% below the diagonal", ((rand < 0.5) & (j <= i)) | (i == j), True)]


def flex_call(q, k, v, table, causal):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, qi, ki):
        keep = table[qi // BLOCK, ki // BLOCK]
        return keep & (ki <= qi) if causal else keep

    block_mask = create_block_mask(mask_mod, None, None, S, S, _compile=True)
    compiled = torch.compile(flex_attention, dynamic=False)
    qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
    return lambda: compiled(qt, kt, vt, block_mask=block_mask).transpose(1, 2)


def train_step(fn, q, k, v, grad):
    def step():
        out = fn(q, k, v)
        out.backward(grad)
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write OUT.md and OUT.json")
    args = ap.parse_args()
    header = gpu_header()
    rows = []
    for name, table, causal in patterns():
        q, k, v, grad = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
                         for _ in range(4))
        mask = flashjit.BlockMask.from_dense(table[None, None], (BLOCK, BLOCK))
        ours = lambda q, k, v: flashjit.attention(q, k, v, causal=causal, block_mask=mask)  # noqa: E731
        flex = flex_call(q, k, v, table, causal)
        rel = ((ours(q, k, v).float() - flex().float()).norm() / flex().float().norm()).item()
        assert rel < 2e-2, f"{name}: flashjit vs FlexAttention relative L2 {rel}"
        pairs = int(table.sum().item()) * BLOCK * BLOCK
        if causal:
            pairs -= N * BLOCK * (BLOCK - 1) // 2  # the diagonal blocks' upper triangles
        flops = 4.0 * D * pairs * B * H
        row = {"name": name, "blocks": int(table.sum().item()), "causal": causal, "rel_l2": rel}
        fwd, both = {}, {}
        leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        flex_leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
        flex_train = flex_call(*flex_leaves, table, causal)
        fwd_cells = {"flashjit": lambda: ours(q, k, v), "flexattention": flex}
        both_cells = {"flashjit": train_step(ours, *leaves, grad),
                      "flexattention": train_step(lambda q, k, v: flex_train(), *flex_leaves,
                                                  grad)}
        if bool(table.all()):  # the cost of walking lists: flashjit without a block mask
            plain = lambda q, k, v: flashjit.attention(q, k, v, causal=causal)  # noqa: E731
            fwd_cells["flashjit without block mask"] = lambda: plain(q, k, v)
            both_cells["flashjit without block mask"] = train_step(plain, *leaves, grad)
        time_cells(fwd, fwd_cells, flops)
        time_cells(both, both_cells, 3.5 * flops)
        row["fwd"], row["fwd_bwd"] = fwd, both
        rows.append(row)
        print(f"{name}: fwd {cell_text(fwd, 'flashjit')} vs flex {cell_text(fwd, 'flexattention')};"
              f" fwd+bwd {cell_text(both, 'flashjit')} vs {cell_text(both, 'flexattention')}",
              flush=True)
    dense_ms = rows[0]["fwd"]["flashjit"]["ms"]
    lines = [f"# Block masks: flashjit vs FlexAttention (b {B}, s {S}, h {H}, d {D}, blocks "
             f"{BLOCK})", "", header, "",
             "| pattern | blocks | fwd flashjit ms (TFLOP/s) | fwd Flex | fwd speedup vs Flex | "
             "fwd time vs no mask | fwd+bwd flashjit | fwd+bwd Flex | fwd+bwd speedup |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['blocks']} | {cell_text(r['fwd'], 'flashjit')} | "
                     f"{cell_text(r['fwd'], 'flexattention')} | "
                     f"{speedup_text(r['fwd'], 'flexattention')} | "
                     f"{r['fwd']['flashjit']['ms'] / dense_ms:.2f} | "
                     f"{cell_text(r['fwd_bwd'], 'flashjit')} | "
                     f"{cell_text(r['fwd_bwd'], 'flexattention')} | "
                     f"{speedup_text(r['fwd_bwd'], 'flexattention')} |")
    plain = rows[0]
    lines += ["", f"flashjit on the same shape without a block mask: fwd "
              f"{cell_text(plain['fwd'], 'flashjit without block mask')}, fwd+bwd "
              f"{cell_text(plain['fwd_bwd'], 'flashjit without block mask')}."]
    publish(args.out, lines, {"header": header, "rows": rows})


if __name__ == "__main__":
    main()
