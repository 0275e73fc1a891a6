#!/usr/bin/env python3
"""The classic drop-in: a small Transformer block (self-attention with
torch.nn.MultiheadAttention, a linear layer, residuals), embed 512, 8 heads,
seq 1024, batch 4, run with torch's module and with flashjit.nn.MultiheadAttention
carrying the same weights; the outputs must agree within bf16 tolerance."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self, attention_cls, embed=512, heads=8):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(embed)
        self.attn = attention_cls(embed, heads, batch_first=True)
        self.norm2 = torch.nn.LayerNorm(embed)
        self.mlp = torch.nn.Linear(embed, embed)

    def forward(self, x, causal=False):
        h = self.norm1(x)
        mask = (torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device,
                                                                     dtype=x.dtype)
                if causal and isinstance(self.attn, torch.nn.MultiheadAttention) and
                not isinstance(self.attn, flashjit.nn.MultiheadAttention) else None)
        kwargs = {"attn_mask": mask} if mask is not None else {}
        a, _ = self.attn(h, h, h, need_weights=False, is_causal=causal, **kwargs)
        x = x + a
        return x + self.mlp(self.norm2(x))


def main():
    torch.manual_seed(0)
    device, dtype = "cuda", torch.bfloat16
    reference = Block(torch.nn.MultiheadAttention).to(device, dtype).eval()
    ours = Block(flashjit.nn.MultiheadAttention).to(device, dtype).eval()
    ours.load_state_dict(reference.state_dict())  # same parameter names and shapes
    x = torch.randn(4, 1024, 512, device=device, dtype=dtype)
    worst = 0.0
    with torch.no_grad():
        for causal in (False, True):
            want = reference(x, causal).float()
            got = ours(x, causal).float()
            rel = ((got - want).norm() / want.norm()).item()
            worst = max(worst, rel)
            print(f"transformer block, causal={causal}: relative L2 difference {rel:.2e}")
    ok = worst < 2e-2  # both run in bf16; differences come from rounding
    print("pytorch_block:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
