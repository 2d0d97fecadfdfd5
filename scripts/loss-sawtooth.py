#!/usr/bin/env python3
"""The largest rise between consecutive 10-step mean training losses after warmup, from
a run's train.jsonl: an epoch sawtooth shows as a rise at each epoch start.

    scripts/loss-sawtooth.py RUN/train.jsonl [--warmup STEPS] [--window 10]
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("train_jsonl")
ap.add_argument("--warmup", type=int, default=0)
ap.add_argument("--window", type=int, default=10)
args = ap.parse_args()
rows = [json.loads(line) for line in open(args.train_jsonl) if line.strip()]
losses = [(r["step"], r["loss"]) for r in rows if "loss" in r and r["step"] > args.warmup]
means = []
for i in range(0, len(losses) - args.window + 1, args.window):
    chunk = losses[i : i + args.window]
    means.append(sum(l for _, l in chunk) / len(chunk))
rises = [b - a for a, b in zip(means, means[1:])]
worst = max(rises) if rises else float("nan")
print(f"{len(losses)} steps after warmup, {len(means)} windows of {args.window}: "
      f"largest rise {worst:.3f}, last window mean {means[-1]:.3f}")
