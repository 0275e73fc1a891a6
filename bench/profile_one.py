"""Runs one flashjit attention shape a few times (for ncu / SASS inspection).

usage: profile_one.py D S CAUSAL [m,n,w,s,qk,pv,ws]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402

d, s, causal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
tile = tuple(int(x) for x in sys.argv[4].split(",")) if len(sys.argv) > 4 else None
b, h = max(1, 16384 // s), 2048 // d
q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
print(flashjit.variant(q, k, v, causal=causal, tile=tile))
for _ in range(3):
    flashjit.attention(q, k, v, causal=causal, tile=tile)
torch.cuda.synchronize()
