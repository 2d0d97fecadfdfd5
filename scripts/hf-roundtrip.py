#!/usr/bin/env python3
"""Opens gradus model folders in transformers or sentence-transformers and compares what
they compute with gradus's own outputs (`gradus outputs`) on fixed texts.

A dev tool, not a test dependency: it needs torch, transformers and sentence-transformers
(`make hf-roundtrip HF_PYTHON=/path/to/venv/bin/python`).

    scripts/hf-roundtrip.py --gradus target/debug/gradus FOLDER [FOLDER ...]

Each folder opens in the class its layout names: sentence-transformers when it has
`modules.json`, else the class in `config.json`'s `architectures`. The check fails when
the load reports a missing or mismatched tensor, when the tokenizer's ids differ from
gradus's, when a causal LM's greedy continuation differs, when any output differs by
more than --tolerance (1e-4), or when transformers loads the checkpoint of a
sentence-transformers folder's run (`../checkpoints/best`) instead of refusing it.
Exit status 1 on any failure.
"""

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

TEXTS = [
    "the film was wonderful and moving",
    "a dull, tedious mess",
    "ROMEO:\nBut soft, what light",
]


def gradus_outputs(gradus, folder):
    out = subprocess.run(
        [gradus, "outputs", folder, *TEXTS], check=True, capture_output=True, text=True
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def max_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def load(cls, folder):
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "mismatched_keys") and v}
    if bad:
        raise AssertionError(f"{cls.__name__} load report: {bad}")
    return model.eval(), sorted(info.get("unexpected_keys") or [])


def check_ids(tokenizer, rows, specials):
    for row in rows:
        ids = tokenizer(row["text"], add_special_tokens=specials)["input_ids"]
        if list(ids) != list(row["input_ids"]):
            raise AssertionError(f"tokenizer ids differ on {row['text']!r}: {ids} vs {row['input_ids']}")


def causal_lm(folder, rows):
    model, unexpected = load(transformers.AutoModelForCausalLM, folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    check_ids(tokenizer, rows, specials=False)
    worst = 0.0
    eos = model.config.eos_token_id
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0]
            worst = max(worst, max_diff(logits, row["logits"]))
            new = model.generate(
                ids,
                max_new_tokens=len(row["greedy"]) if eos is not None else 20,
                do_sample=False,
                attention_mask=torch.ones_like(ids),
                pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else 0,
            )[0, ids.shape[1]:].tolist()
        if eos is not None and eos in new:
            new = new[: new.index(eos) + 1]
        if new != row["greedy"]:
            raise AssertionError(f"greedy tokens differ on {row['text']!r}: {new} vs {row['greedy']}")
    return worst, "logits and greedy tokens", unexpected


def bert(folder, rows, cls):
    model, unexpected = load(getattr(transformers, cls), folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    check_ids(tokenizer, rows, specials=True)
    worst = 0.0
    for row in rows:
        ids = torch.tensor([row["input_ids"]])
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        if cls == "BertForPreTraining":
            worst = max(worst, max_diff(out.prediction_logits[0], row["prediction_logits"]))
            worst = max(worst, max_diff(out.seq_relationship_logits[0], row["seq_relationship_logits"]))
        elif cls == "BertForSequenceClassification":
            worst = max(worst, max_diff(out.logits[0], row["outputs"]))
        else:
            worst = max(worst, max_diff(out.last_hidden_state[0], row["last_hidden_state"]))
    return worst, "outputs", unexpected


def sentence(folder, rows):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(folder, device="cpu")
    check_ids(model.tokenizer, rows, specials=True)
    emb = model.encode([r["text"] for r in rows], convert_to_numpy=True, batch_size=len(rows))
    worst = 0.0
    for row, e in zip(rows, emb):
        if "outputs" in row:
            want = row["outputs"]
        else:
            want = np.mean(np.asarray(row["last_hidden_state"]), axis=0)
        worst = max(worst, max_diff(e, want))
    return worst, "SentenceTransformer.encode", []


def checkpoint_refused(folder):
    """A sentence-transformers folder's run keeps checkpoints in gradus's own layout;
    transformers must refuse them rather than read the head through the pooler."""
    best = os.path.join(os.path.dirname(os.path.abspath(folder)), "checkpoints", "best")
    if not os.path.isfile(os.path.join(best, "config.json")):
        return
    try:
        transformers.AutoModelForSequenceClassification.from_pretrained(best)
    except Exception as e:  # noqa: BLE001 - any refusal will do, as long as it says why
        if "not a transformers model" in str(e):
            return
        raise AssertionError(f"{best}: refused, but not saying why: {e}") from e
    raise AssertionError(f"{best}: transformers loaded a checkpoint it computes differently")


def check(gradus, folder):
    rows = gradus_outputs(gradus, folder)
    if os.path.isfile(os.path.join(folder, "modules.json")):
        checkpoint_refused(folder)
        return "SentenceTransformer", sentence(folder, rows)
    with open(os.path.join(folder, "config.json")) as f:
        cls = json.load(f)["architectures"][0]
    if cls in ("GPT2LMHeadModel", "LlamaForCausalLM"):
        return cls, causal_lm(folder, rows)
    return cls, bert(folder, rows, cls)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradus", required=True, help="the gradus binary")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("folders", nargs="+")
    args = ap.parse_args()
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    failed = 0
    for folder in args.folders:
        try:
            cls, (worst, what, unexpected) = check(args.gradus, folder)
        except Exception as e:  # noqa: BLE001 - one line per folder, then go on
            failed += 1
            print(f"FAIL {folder}: {type(e).__name__}: {e}")
            continue
        status = "ok  " if worst <= args.tolerance else "FAIL"
        failed += status == "FAIL"
        extra = f" (unused tensors: {', '.join(unexpected)})" if unexpected else ""
        print(f"{status} {folder}: {cls}, {what} max abs diff {worst:.2e}{extra}")
    if failed:
        print(f"{failed} of {len(args.folders)} folders failed")
        sys.exit(1)
    print(f"all {len(args.folders)} folders open with the same outputs")


if __name__ == "__main__":
    main()
