"""One SDPA cuDNN forward+backward at d 128 (1024 and 8192 tokens, bf16) for ncu to
read cuDNN's launch configuration (grid, block, registers, shared memory):

  ncu --kernel-name regex:"bprop|fprop" --launch-count 4 --section LaunchStats \
      --section Occupancy python3 bench/cudnn_launch_config.py
"""
import torch
from torch.nn.attention import sdpa_kernel, SDPBackend

for s in (1024, 8192):
    b = 16384 // s
    q = torch.randn(b, 16, s, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn_like(q, requires_grad=True)
    v = torch.randn_like(q, requires_grad=True)
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        o.backward(torch.randn_like(o))
    torch.cuda.synchronize()
