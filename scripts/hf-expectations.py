#!/usr/bin/env python3
"""Records what transformers and sentence-transformers write for each class gradus
exports, on tiny fixed configs: every tensor name and shape, the config keys that
describe the model, and the sentence-transformers module files. The test
`tests/hf_layout.rs` builds the same tiny models with gradus and compares its folders
with this record, so CI catches a renamed tensor or a dropped config key without Python.

Run it again when a class is added or transformers changes its layout:

    HF_PYTHON=/path/to/venv/bin/python make hf-expectations
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from sentence_transformers import SentenceTransformer, models  # noqa: E402

# The tiny configs; tests/hf_layout.rs builds gradus models with the same values.
GPT = dict(vocab_size=20, n_positions=16, n_embd=8, n_layer=2, n_head=2,
           activation_function="gelu", layer_norm_epsilon=1e-5)
BERT = dict(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=16, max_position_embeddings=16, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12)
LABELS = ["a", "b", "c"]


def tensors(folder, file="model.safetensors"):
    with safe_open(os.path.join(folder, file), "pt") as f:
        return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}


def saved(model, keys):
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        with open(os.path.join(d, "config.json")) as f:
            config = json.load(f)
        return {
            "tensors": tensors(d),
            "config": {k: config[k] for k in keys},
        }


def sentence_layout():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        body = os.path.join(d, "body")
        transformers.BertModel(transformers.BertConfig(**BERT)).save_pretrained(body)
        encoder = models.Transformer(body)
        pooling = models.Pooling(BERT["hidden_size"], pooling_mode="mean")
        dense = models.Dense(BERT["hidden_size"], len(LABELS), activation_function=torch.nn.Identity())
        out = os.path.join(d, "st")
        SentenceTransformer(modules=[encoder, pooling, dense]).save(out)
        with open(os.path.join(out, "modules.json")) as f:
            modules = json.load(f)
        dense_dir = os.path.join(out, modules[2]["path"])
        with open(os.path.join(dense_dir, "config.json")) as f:
            dense_config = json.load(f)
        return {
            "module_types": [m["type"] for m in modules],
            "dense_config_keys": sorted(dense_config),
            "dense_tensors": tensors(dense_dir),
        }


def main():
    torch.manual_seed(0)
    gpt_config = transformers.GPT2Config(**GPT, bos_token_id=None, eos_token_id=None)
    bert_config = transformers.BertConfig(**BERT)
    classifier_config = transformers.BertConfig(
        **BERT, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)}
    )
    record = {
        "made_by": f"scripts/hf-expectations.py with transformers {transformers.__version__}, "
                   f"sentence-transformers {sentence_transformers.__version__}",
        "gpt": GPT,
        "bert": BERT,
        "labels": LABELS,
        "GPT2LMHeadModel": saved(transformers.GPT2LMHeadModel(gpt_config), list(GPT)),
        "BertForPreTraining": saved(transformers.BertForPreTraining(bert_config), list(BERT)),
        "BertModel": saved(transformers.BertModel(bert_config), list(BERT)),
        "BertForSequenceClassification": saved(
            transformers.BertForSequenceClassification(classifier_config),
            list(BERT) + ["id2label", "label2id"],
        ),
        "SentenceTransformer": sentence_layout(),
    }
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/hf-expectations.json"
    with open(out, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
