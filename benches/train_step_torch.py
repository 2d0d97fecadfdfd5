"""The two training steps of benches/train_step.rs in PyTorch, for a side-by-side ratio.

nanoGPT's CPU Shakespeare step (4 layers, 4 heads, 128 wide, block 64, batch 12, no bias,
exact GELU, AdamW) and a BERT-mini MLM step (4 post-LN layers, 256 wide, 4 heads, seq 128,
batch 32, every 7th position predicted, 8,192 tokens). Eager mode on the threads torch
picks by default; tokens over the median step time. Prints {"gpt_nanogpt_cpu": tokens/s, "bert_mini_mlm": tokens/s, "torch_version": ...,
"torch_threads": ...} as JSON.

Usage: python3 train_step_torch.py [--bench | --test] [gpt | bert]
"""

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, bias, pre_ln):
        super().__init__()
        self.heads, self.pre_ln = heads, pre_ln
        self.ln_1 = nn.LayerNorm(d, bias=bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.proj = nn.Linear(d, d, bias=bias)
        self.fc = nn.Linear(d, 4 * d, bias=bias)
        self.out = nn.Linear(4 * d, d, bias=bias)

    def attend(self, x, causal):
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, d))

    def forward(self, x, causal):
        if self.pre_ln:  # GPT-2
            x = x + self.attend(self.ln_1(x), causal)
            return x + self.out(F.gelu(self.fc(self.ln_2(x))))
        x = self.ln_1(x + self.attend(x, causal))  # BERT
        return self.ln_2(x + self.out(F.gelu(self.fc(x))))


class Model(nn.Module):
    def __init__(self, vocab, positions, d, layers, heads, bias, pre_ln):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(positions, d)
        self.blocks = nn.ModuleList(Block(d, heads, bias, pre_ln) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, bias=bias)
        self.pre_ln = pre_ln

    def forward(self, ids, causal):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        if not self.pre_ln:
            x = self.ln_f(x)
        for blk in self.blocks:
            x = blk(x, causal)
        return self.ln_f(x) if self.pre_ln else x


def gpt_step():
    model = Model(65, 64, 128, 4, 4, bias=False, pre_ln=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    ids = torch.arange(12 * 65).remainder(65)
    x, y = ids[: 12 * 64].view(12, 64), ids[1 : 12 * 64 + 1]

    def step():
        logits = model(x, causal=True) @ model.wte.weight.t()
        loss = F.cross_entropy(logits.view(-1, 65), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, 12 * 64


def bert_step():
    model = Model(8192, 128, 256, 4, 4, bias=True, pre_ln=False)
    transform = nn.Sequential(nn.Linear(256, 256), nn.GELU(), nn.LayerNorm(256))
    params = list(model.parameters()) + list(transform.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    n = 32 * 128
    ids = (torch.arange(n) * 31).remainder(8192).view(32, 128)
    picked = torch.tensor([i for i in range(n) if i % 7 == 3])
    targets = (picked * 13).remainder(8192)

    def step():
        h = model(ids, causal=False).reshape(n, 256)[picked]
        logits = transform(h) @ model.wte.weight.t()
        loss = F.cross_entropy(logits, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, n


def tokens_per_second(make, steps):
    """Tokens over the median step time (after 3 warm-up steps), as the Rust side does."""
    step, tokens = make()
    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return tokens / sorted(times)[len(times) // 2]


def main():
    bench = "--bench" in sys.argv
    only = next((a for a in sys.argv[1:] if a in ("gpt", "bert")), None)
    torch.manual_seed(0)
    out = {}
    if only in (None, "gpt"):
        out["gpt_nanogpt_cpu"] = tokens_per_second(gpt_step, 60 if bench else 2)
    if only in (None, "bert"):
        out["bert_mini_mlm"] = tokens_per_second(bert_step, 15 if bench else 2)
    out["torch_version"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
