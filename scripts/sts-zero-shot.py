#!/usr/bin/env python3
"""How well each encoder folder scores STS-B dev with no fine-tuning: the Pearson and
Spearman correlation of the cosine of mean-pooled embeddings with the gold scores (how
sentence-transformers evaluates all-MiniLM-L6-v2). A continued pretraining that moves the
encoder away from the geometry its contrastive training gave it shows here first.

    HF_PYTHON=/path/to/venv/bin/python  # torch + transformers
    $HF_PYTHON scripts/sts-zero-shot.py STSB_DEV_TSV MODEL_DIR [MODEL_DIR ...]

Prints one line per folder: `pearson P  spearman S  DIR`.
"""
import csv
import sys

import torch
from transformers import AutoModel, AutoTokenizer


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def pearson(a, b):
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def embed(model, tok, texts):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            batch = tok(texts[i : i + 64], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            mean = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(mean, dim=-1))
    return torch.cat(out)


def main():
    dev, dirs = sys.argv[1], sys.argv[2:]
    with open(dev, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    first = [r["sentence1"] for r in rows]
    second = [r["sentence2"] for r in rows]
    gold = [float(r["score"]) for r in rows]
    torch.manual_seed(0)
    for d in dirs:
        tok = AutoTokenizer.from_pretrained(d)
        model = AutoModel.from_pretrained(d).eval()
        cos = (embed(model, tok, first) * embed(model, tok, second)).sum(-1).tolist()
        print(f"pearson {pearson(cos, gold):.4f}  spearman {pearson(ranks(cos), ranks(gold)):.4f}  {d}")


if __name__ == "__main__":
    main()
