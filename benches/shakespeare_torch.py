"""nanoGPT's CPU recipe on Tiny Shakespeare in plain PyTorch, scored as gradus scores it.

The reference for `pipelines/shakespeare-char.toml`: characters (sorted vocabulary), the
first 90% of the text for training and the last 10% held out, 4 layers x 4 heads x 128,
block 64, batch 12, 2000 iterations, AdamW (betas 0.9 / 0.99, weight decay 0.1 on
matrices and embeddings), lr 1e-3 with 100 warmup iterations and cosine to 1e-4, clip
1.0, no dropout, nanoGPT's initialisation and its random-offset batches. The validation
loss is the mean over every back-to-back 64-character window of the held-out tail, as
gradus's trainer computes it (nanoGPT estimates it from random batches).

Usage: python3 shakespeare_torch.py INPUT.txt [SEED ...]
Prints one JSON line per seed: {"seed", "val_loss", "seconds", "tokens_per_second"}.
"""

import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from train_step_torch import Model

BLOCK, BATCH, ITERS, WARMUP, LR, MIN_LR = 64, 12, 2000, 100, 1e-3, 1e-4


def lr_at(it):
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    ratio = (it - WARMUP) / (ITERS - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (LR - MIN_LR)


def nanogpt_init(model, layers):
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "out.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)


def run(text, seed):
    torch.manual_seed(seed)
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    cut = round(len(ids) * 0.9)
    train, val = ids[:cut], ids[cut:]
    model = Model(len(chars), BLOCK, 128, 4, 4, bias=False, pre_ln=True)
    nanogpt_init(model, 4)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR,
        betas=(0.9, 0.99),
    )

    def loss_of(x, y):
        logits = model(x, causal=True) @ model.wte.weight.t()
        return F.cross_entropy(logits.view(-1, len(chars)), y.reshape(-1))

    start = time.perf_counter()
    for it in range(ITERS):
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        ix = torch.randint(len(train) - BLOCK, (BATCH,))
        x = torch.stack([train[i : i + BLOCK] for i in ix])
        y = torch.stack([train[i + 1 : i + 1 + BLOCK] for i in ix])
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    windows = (len(val) - 1) // BLOCK
    with torch.no_grad():
        total = 0.0
        for w in range(0, windows, BATCH):
            n = min(BATCH, windows - w)
            x = val[w * BLOCK : (w + n) * BLOCK].view(n, BLOCK)
            y = val[w * BLOCK + 1 : (w + n) * BLOCK + 1].view(n, BLOCK)
            total += loss_of(x, y).item() * n
    return {
        "seed": seed,
        "val_loss": total / windows,
        "seconds": seconds,
        "tokens_per_second": ITERS * BATCH * BLOCK / seconds,
    }


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    for seed in [int(s) for s in sys.argv[2:]] or [1337]:
        print(json.dumps(run(text, seed)), flush=True)


if __name__ == "__main__":
    main()
