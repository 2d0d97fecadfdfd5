#!/usr/bin/env python3
"""Writes data/word-tasks/{train,dev}.tsv: prompts whose answers can be checked.

Each prompt asks to reverse or to sort the letters of a short made-up lowercase word
("reverse: gradus" -> "sudarg", "sort: gradus" -> "adgrsu"). 20,000 training and 1,000
held-out prompts; no word appears in both. Seeded, so the files are the same on every
machine:

    python3 scripts/make-word-tasks.py
"""
import random
from pathlib import Path

SEED = 20261204
TRAIN, DEV = 20_000, 1_000
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def word(rng):
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))


def answer(op, w):
    return w[::-1] if op == "reverse" else "".join(sorted(w))


def main():
    rng = random.Random(SEED)
    seen, rows = set(), []
    while len(rows) < TRAIN + DEV:
        w = word(rng)
        if w in seen:
            continue
        seen.add(w)
        op = rng.choice(["reverse", "sort"])
        rows.append((f"{op}: {w}", answer(op, w)))
    out = Path(__file__).resolve().parent.parent / "data" / "word-tasks"
    out.mkdir(parents=True, exist_ok=True)
    for name, part in [("train", rows[:TRAIN]), ("dev", rows[TRAIN:])]:
        with open(out / f"{name}.tsv", "w") as f:
            f.write("prompt\tresponse\n")
            f.writelines(f"{p}\t{r}\n" for p, r in part)


if __name__ == "__main__":
    main()
