"""Runs one flashjit forward+backward shape a few times (for ncu on the backward kernels).

usage: profile_backward.py D S CAUSAL [DKV_TILE]
  (b = 16384 / S, h = 2048 / D, bf16; the deterministic kernels on default tiles, or with DKV_TILE
  "m,n,w,s[,wgmma[,ws]]" the atomic-dQ backward on that key-block tile)
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402

d, s, causal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
options = {"deterministic": True}  # the dQ and dK/dV kernels (the default may be atomic)
if len(sys.argv) > 4:
    options = {"atomic_dq": True,
               "backward_tiles": ((0, 0, 0, 0), tuple(int(x) for x in sys.argv[4].split(",")))}
b, h = max(1, 16384 // s), 2048 // d
q, k, v = (torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
           for _ in range(3))
grad_out = torch.randn(b, s, h, d, device="cuda", dtype=torch.bfloat16)
for _ in range(3):
    flashjit.attention(q, k, v, causal=causal, **options).backward(grad_out)
torch.cuda.synchronize()
