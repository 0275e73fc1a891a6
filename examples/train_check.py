#!/usr/bin/env python3
"""Training check: a small causal Transformer language model trained from the
same seed on the same batches twice, once with torch.nn.MultiheadAttention
(PyTorch SDPA) and once with flashjit.nn.MultiheadAttention (flashjit's forward
and backward kernels): fp32 master weights, bf16 autocast (so attention runs
in bf16). The loss curves must agree within noise: bf16 rounding differs
between the kernels, so the runs drift apart slowly but must learn equally
well.

The data is a synthetic language with structure attention has to find: each
sequence is a random "key" segment followed by copies of it, so the loss of
the copied part falls far below log(vocab) only when attention works.

  python3 examples/train_check.py --steps 300 --out train.json   (then bench/plot_training.py)
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import flashjit  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self, attention_cls, embed, heads):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(embed)
        self.attn = attention_cls(embed, heads, batch_first=True)
        self.norm2 = torch.nn.LayerNorm(embed)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(embed, 4 * embed), torch.nn.GELU(),
                                       torch.nn.Linear(4 * embed, embed))

    def forward(self, x):
        h = self.norm1(x)
        if isinstance(self.attn, flashjit.nn.MultiheadAttention):
            a, _ = self.attn(h, h, h, need_weights=False, is_causal=True)
        else:  # torch's module wants the mask too when is_causal is set
            mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device)
            a, _ = self.attn(h, h, h, need_weights=False, attn_mask=mask, is_causal=True)
        x = x + a
        return x + self.mlp(self.norm2(x))


class LanguageModel(torch.nn.Module):
    def __init__(self, attention_cls, vocab, embed, heads, layers, seq):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, embed)
        self.position = torch.nn.Parameter(torch.randn(seq, embed) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(attention_cls, embed, heads) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(embed)
        self.head = torch.nn.Linear(embed, vocab)

    def forward(self, tokens):
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def batches(steps, batch, seq, vocab, period, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    for _ in range(steps):
        key = torch.randint(0, vocab, (batch, period), device="cuda", generator=g)
        yield key.repeat(1, seq // period + 1)[:, :seq + 1]


def train(model, args):
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    losses = []
    for step, tokens in enumerate(batches(args.steps, args.batch, args.seq, args.vocab,
                                          args.period, args.seed)):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, args.vocab),
                                                 tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            print(f"  step {step}: loss {losses[-1]:.4f}", flush=True)
    return losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--period", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    # The same initial weights in both (flashjit's module has torch's parameter names).
    torch.manual_seed(args.seed)
    models = [LanguageModel(cls, args.vocab, args.embed, args.heads, args.layers, args.seq).cuda()
              for cls in (torch.nn.MultiheadAttention, flashjit.nn.MultiheadAttention)]
    models[1].load_state_dict(models[0].state_dict())
    print("PyTorch SDPA (torch.nn.MultiheadAttention):")
    sdpa = train(models[0], args)
    print("flashjit (flashjit.nn.MultiheadAttention):")
    ours = train(models[1], args)
    tail = max(1, args.steps // 10)
    final_sdpa, final_ours = sum(sdpa[-tail:]) / tail, sum(ours[-tail:]) / tail
    gap = max(abs(a - b) for a, b in zip(sdpa, ours))
    print(f"mean loss of the last {tail} steps: SDPA {final_sdpa:.4f}, flashjit {final_ours:.4f};"
          f" largest gap at one step {gap:.4f}; log(vocab) = {math.log(args.vocab):.3f}")
    # Learned (far below chance), and the same curve within noise.
    ok = (final_ours < 0.5 * math.log(args.vocab) and
          abs(final_ours - final_sdpa) < 0.05 * max(final_sdpa, 0.1) + 0.02)
    print("training check", "PASSED" if ok else "FAILED")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "sdpa": sdpa, "flashjit": ours,
                       "device": torch.cuda.get_device_name(), "torch": torch.__version__}, f)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
