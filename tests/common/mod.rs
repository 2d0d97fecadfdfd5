//! Fixtures the end-to-end tests share: a tiny corpus, tokenizer and BERT built by the
//! stage binaries, and examples datasets encoded with its tokenizer.

#![allow(dead_code)] // each test binary uses its own part
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::{Path, PathBuf};

use gradus_testkit::{run_bin as run, succeeded as ok};

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tokens dataset and its tokenizer, as a pretraining reads them.
pub struct Corpus {
    pub tokens: PathBuf,
    pub tokenizer: PathBuf,
}

/// Documents, a word-piece tokenizer and tokens of the first column of `train_tsv`.
pub fn corpus(root: &Path, train_tsv: &Path) -> Corpus {
    corpus_of(root, train_tsv, "wordpiece")
}

/// [`corpus`] with a tokenizer of kind `kind`.
pub fn corpus_of(root: &Path, train_tsv: &Path, kind: &str) -> Corpus {
    let sentences = root.join("sentences.txt");
    let text = std::fs::read_to_string(train_tsv).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    std::fs::write(&sentences, lines.join("\n")).unwrap();
    let kind = format!("kind={kind}");
    let tokenizer = [
        "--set",
        kind.as_str(),
        "--set",
        "vocab_size=120",
        "--set",
        "min_frequency=1",
    ];
    corpus_from_lines(root, &sentences, &tokenizer, "validation_fraction=0.1")
}

/// Each line of `text` a document (`ROOT/documents`), a tokenizer trained on them with
/// `tokenizer` flags (`ROOT/tokenizer`), and their tokens with `validation` set
/// (`ROOT/tokens`).
pub fn corpus_from_lines(root: &Path, text: &Path, tokenizer: &[&str], validation: &str) -> Corpus {
    let (docs, tk, tokens) = (
        root.join("documents"),
        root.join("tokenizer"),
        root.join("tokens"),
    );
    let gradus = env!("CARGO_BIN_EXE_gradus");
    let tokenize = env!("CARGO_BIN_EXE_gradus-tokenize");
    ok(&run(
        gradus,
        &[
            "import",
            "-i",
            s(text),
            "-o",
            s(&docs),
            "--set",
            "text_unit=line",
        ],
    ));
    let train = ["train", "-i", s(&docs), "-o", s(&tk)];
    ok(&run(tokenize, &[&train[..], tokenizer].concat()));
    let tokenizer = tk.join("tokenizer.json");
    ok(&run(
        tokenize,
        &[
            "encode",
            "-i",
            s(&docs),
            "-t",
            s(&tokenizer),
            "-o",
            s(&tokens),
            "--set",
            validation,
        ],
    ));
    Corpus { tokens, tokenizer }
}

/// The flags of a `steps`-step MLM pretraining of a tiny BERT on `corpus` into `out`.
pub fn pretrain_args(corpus: &Corpus, out: &Path, steps: u64) -> Vec<String> {
    [
        "-o",
        s(out),
        "--objective",
        "mlm",
        "--set",
        &format!("data.tokens=\"{}\"", corpus.tokens.display()),
        "--set",
        &format!("data.tokenizer=\"{}\"", corpus.tokenizer.display()),
        "--set",
        "data.seq_len=16",
        "--set",
        "data.batch_size=8",
        "--set",
        "data.eval_windows=16",
        "--set",
        "bert.hidden_size=32",
        "--set",
        "bert.num_hidden_layers=1",
        "--set",
        "bert.num_attention_heads=2",
        "--set",
        "bert.intermediate_size=64",
        "--set",
        "bert.max_position_embeddings=32",
        "--set",
        &format!("train.steps={steps}"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// [`corpus`] and a 30-step MLM pretraining of a tiny BERT; its model folder.
pub fn pretrain(root: &Path, train_tsv: &Path) -> PathBuf {
    let corpus = corpus(root, train_tsv);
    let run_dir = root.join("pretrain");
    let args = pretrain_args(&corpus, &run_dir, 30);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&run(env!("CARGO_BIN_EXE_gradus-pretrain"), &args));
    let model = run_dir.join("model");
    assert!(
        model.join("tokenizer.json").is_file(),
        "the model folder carries its tokenizer"
    );
    model
}

/// An examples dataset of `tsv` files (`train.tsv`, `dev.tsv` in `dir`) encoded with the
/// model's tokenizer.
pub fn examples(model: &Path, dir: &Path, task: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{task}-examples"));
    let tokenizer = model.join("tokenizer.json");
    let args = [
        "examples",
        "-t",
        s(&tokenizer),
        "-i",
        &format!("train={}", dir.join(format!("{task}-train.tsv")).display()),
        "-i",
        &format!(
            "validation={}",
            dir.join(format!("{task}-dev.tsv")).display()
        ),
        "-o",
        s(&out),
        "--set",
        &format!("task=\"{task}\""),
        "--set",
        "seq_len=24",
    ];
    ok(&run(
        env!("CARGO_BIN_EXE_gradus-tokenize"),
        &[&args[..], extra].concat(),
    ));
    out
}

/// The run record (`run.json`) of a run folder.
pub fn record(run: &Path) -> gradus_record::RunRecord {
    gradus_record::RunRecord::require(run).unwrap()
}
