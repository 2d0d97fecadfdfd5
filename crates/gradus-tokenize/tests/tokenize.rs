//! Tokenizer training and encoding on real data.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::{Path, PathBuf};

use gradus_shard::{
    Dataset, DatasetKind, DatasetWriter, Document, Example, Producer, ReadOptions, Record,
    TokenSeq, WriterOptions,
};
use gradus_testkit::temp_file;
use gradus_tokenize::{
    EncodeConfig, EncodeRun, Encoder, ExamplesConfig, OnError, SplitFile, TokenizerKind,
    TrainConfig, encode_dataset, encode_examples, load, train, train_from_dataset,
};
use proptest::prelude::*;

fn documents(dir: &Path, texts: &[String], per_shard: usize) {
    let producer = Producer::new("test", &()).unwrap();
    let mut w = DatasetWriter::create(
        dir,
        DatasetKind::Documents,
        producer,
        vec![],
        WriterOptions {
            max_rows_per_shard: per_shard,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    for (i, chunk) in texts.chunks(per_shard).enumerate() {
        let docs: Vec<Document> = chunk
            .iter()
            .enumerate()
            .map(|(j, t)| Document {
                id: format!("doc:{i}:{j}"),
                text: t.clone(),
                source: "test".into(),
                metadata: None,
            })
            .collect();
        w.write(&format!("s{i}"), &Document::to_batch(&docs).unwrap())
            .unwrap();
        w.finish_source(&format!("s{i}")).unwrap();
    }
    w.seal().unwrap();
}

/// Every tokenizer kind gradus trains.
const ALL_KINDS: [TokenizerKind; 4] = [
    TokenizerKind::ByteBpe,
    TokenizerKind::Wordpiece,
    TokenizerKind::Unigram,
    TokenizerKind::Char,
];

/// A tokenizer of `kind` with `vocab_size` entries, keeping every pair seen once.
fn small(kind: TokenizerKind, vocab_size: usize) -> TrainConfig {
    TrainConfig {
        kind,
        vocab_size,
        min_frequency: 1,
        ..TrainConfig::default()
    }
}

fn sample_corpus() -> Vec<String> {
    let dir = gradus_testkit::workspace_root().join("data/corpus");
    let mut texts = Vec::new();
    for name in ["harbour.txt", "workshop.txt"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        texts.extend(text.split("\n\n").map(|p| p.trim().to_string()));
    }
    texts
}

fn read_rows<R: Record>(dir: &Path) -> Vec<R> {
    Dataset::open(dir)
        .unwrap()
        .batches(&ReadOptions::default())
        .flat_map(|b| R::from_batch(&b.unwrap()).unwrap())
        .collect()
}

#[test]
fn characters_of_tiny_shakespeare() {
    let Some(path) = gradus_testkit::shared("tinyshakespeare/input.txt") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    documents(&tmp.path().join("docs"), std::slice::from_ref(&text), 1);
    let config = TrainConfig {
        kind: TokenizerKind::Char,
        ..TrainConfig::default()
    };
    let tk = train_from_dataset(&tmp.path().join("docs"), &config).unwrap();
    assert_eq!(tk.get_vocab_size(true), 65);
    // nanoGPT's ids: sorted characters, '\n' first and 'z' last.
    assert_eq!(tk.token_to_id("\n"), Some(0));
    assert_eq!(tk.token_to_id("z"), Some(64));
    let ids = tk.encode(text.as_str(), false).unwrap().get_ids().to_vec();
    assert_eq!(ids.len(), text.chars().count());
    assert_eq!(tk.decode(&ids, false).unwrap(), text);
}

fn byte_bpe() -> gradus_tokenize::Tokenizer {
    let config = TrainConfig {
        kind: TokenizerKind::ByteBpe,
        vocab_size: 400,
        min_frequency: 1,
        ..TrainConfig::default()
    };
    train(&config, &sample_corpus()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn byte_level_bpe_round_trips_any_utf8(text in any::<String>()) {
        let tk = BPE.with(|t| t.clone());
        let ids = tk.encode(text.as_str(), false).unwrap().get_ids().to_vec();
        prop_assert_eq!(tk.decode(&ids, false).unwrap(), text);
    }
}

thread_local! {
    static BPE: gradus_tokenize::Tokenizer = byte_bpe();
}

#[test]
fn training_is_byte_stable_and_the_file_loads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    documents(&docs, &sample_corpus(), 4);
    for kind in ALL_KINDS {
        let config = TrainConfig {
            seed: 3,
            sample_docs: 10,
            ..small(kind, 300)
        };
        let a = tmp.path().join(format!("{kind:?}-a.json"));
        let b = tmp.path().join(format!("{kind:?}-b.json"));
        gradus_tokenize::save(&train_from_dataset(&docs, &config).unwrap(), &a).unwrap();
        gradus_tokenize::save(&train_from_dataset(&docs, &config).unwrap(), &b).unwrap();
        let (ta, tb) = (
            std::fs::read_to_string(&a).unwrap(),
            std::fs::read_to_string(&b).unwrap(),
        );
        assert!(ta == tb, "{kind:?}: two trainings with one seed differ");
        let loaded = load(&a).unwrap();
        let text = "The harbour wakes before the town does.";
        let ids = loaded.encode(text, false).unwrap().get_ids().to_vec();
        assert!(!ids.is_empty(), "{kind:?}");
        if kind != TokenizerKind::Wordpiece {
            // WordPiece lower-cases and drops spacing around punctuation.
            assert_eq!(loaded.decode(&ids, false).unwrap(), text, "{kind:?}");
        }
    }
}

/// A tokenizer of special tokens alone is refused: a vocabulary no larger than them, an
/// empty sample, a dataset of empty documents; every kind says so in one line.
#[test]
fn a_tokenizer_of_special_tokens_alone_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    documents(&docs, &sample_corpus(), 4);
    let refused = |config: &TrainConfig, docs: &Path| {
        train_from_dataset(docs, config)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let err = refused(&small(TokenizerKind::Wordpiece, 5), &docs);
    assert!(
        err.contains("vocab_size 5: must be larger than the 5 special tokens"),
        "{err}"
    );
    let no_sample = TrainConfig {
        sample_docs: 0,
        ..small(TokenizerKind::ByteBpe, 300)
    };
    assert!(refused(&no_sample, &docs).contains("sample_docs and sample_bytes"));
    let empty = tmp.path().join("empty");
    documents(&empty, &[String::new(), String::new()], 1);
    for kind in ALL_KINDS {
        let err = refused(&small(kind, 300), &empty);
        assert!(err.contains("no text to train on"), "{kind:?}: {err}");
    }
}

#[test]
fn wordpiece_and_unigram_are_reproducible_on_real_text() {
    // The stock trainers differ from run to run here (184 of 2,000 WordPiece pieces).
    let Some(path) = gradus_testkit::shared("glue-sst2/dev.tsv") else {
        return;
    };
    let texts: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    for kind in [TokenizerKind::Wordpiece, TokenizerKind::Unigram] {
        let config = TrainConfig {
            kind,
            vocab_size: 2000,
            ..TrainConfig::default()
        };
        let runs: Vec<String> = (0..3)
            .map(|_| train(&config, &texts).unwrap().to_string(false).unwrap())
            .collect();
        assert!(
            runs[0] == runs[1] && runs[1] == runs[2],
            "{kind:?} differs between runs"
        );
        let vocab = train(&config, &texts).unwrap().get_vocab_size(true);
        assert!((1900..=2000).contains(&vocab), "{kind:?}: {vocab} pieces");
    }
}

fn wordpiece_on(texts: &[String], vocab: usize) -> gradus_tokenize::Tokenizer {
    let config = TrainConfig {
        kind: TokenizerKind::Wordpiece,
        vocab_size: vocab,
        min_frequency: 1,
        ..TrainConfig::default()
    };
    train(&config, texts).unwrap()
}

#[test]
fn wordpiece_pairs_on_stsb_have_bert_layout_and_are_truncated() {
    let Some(path) = gradus_testkit::shared("glue-stsb/dev.tsv") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let sentences: Vec<String> = text
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split('\t')
                .skip(7)
                .take(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let tk = wordpiece_on(&sentences, 2000);
    let (cls, sep) = (
        tk.token_to_id("[CLS]").unwrap(),
        tk.token_to_id("[SEP]").unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = ExamplesConfig {
        task: "stsb".into(),
        text: "sentence1".into(),
        text_pair: Some("sentence2".into()),
        label: None,
        score: Some("score".into()),
        seq_len: 24,
        ..ExamplesConfig::default()
    };
    let files = [SplitFile::parse(
        &format!("validation={}", path.display()),
        "train",
    )];
    let manifest = encode_examples(&tk, &config, &files, tmp.path(), Default::default()).unwrap();
    assert_eq!(manifest.rows(), 1500);
    assert!(manifest.stats["truncated"].as_u64().unwrap() > 0);
    let rows: Vec<Example> = read_rows(tmp.path());
    assert_eq!(rows[0].target, Some(5.0));
    assert_eq!(rows[0].text, "A man with a hard hat is dancing.");
    for ex in &rows {
        assert!(ex.input_ids.len() <= 24);
        assert_eq!(ex.input_ids[0], cls);
        let seps: Vec<usize> = (0..ex.input_ids.len())
            .filter(|&i| ex.input_ids[i] == sep)
            .collect();
        assert_eq!(seps.len(), 2, "{ex:?}");
        assert_eq!(*seps.last().unwrap(), ex.input_ids.len() - 1);
        let first_b = seps[0] + 1;
        assert!(ex.token_type_ids[..first_b].iter().all(|&t| t == 0));
        assert!(ex.token_type_ids[first_b..].iter().all(|&t| t == 1));
        assert!(
            first_b < ex.input_ids.len() - 1,
            "segment b is empty: {ex:?}"
        );
    }
}

#[test]
fn sst2_train_and_dev_with_binary_labels() {
    let (Some(train_tsv), Some(dev_tsv)) = (
        gradus_testkit::shared("glue-sst2/train.tsv"),
        gradus_testkit::shared("glue-sst2/dev.tsv"),
    ) else {
        return;
    };
    let sentences: Vec<String> = std::fs::read_to_string(&dev_tsv)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let tk = wordpiece_on(&sentences, 3000);
    let tmp = tempfile::tempdir().unwrap();
    let config = ExamplesConfig {
        task: "sst2".into(),
        ..ExamplesConfig::default()
    };
    let files = [
        SplitFile::parse(&format!("train={}", train_tsv.display()), "train"),
        SplitFile::parse(&format!("validation={}", dev_tsv.display()), "train"),
    ];
    let manifest = encode_examples(&tk, &config, &files, tmp.path(), Default::default()).unwrap();
    assert_eq!(manifest.stats["rows"]["train"], 67_349);
    assert_eq!(manifest.stats["rows"]["validation"], 872);
    assert_eq!(manifest.stats["labels"], serde_json::json!(["0", "1"]));
    let labels: std::collections::BTreeSet<Option<i64>> = read_rows::<Example>(tmp.path())
        .iter()
        .map(|e| e.label)
        .collect();
    assert_eq!(labels, [Some(0), Some(1)].into_iter().collect());
    let map: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("labels.json")).unwrap())
            .unwrap();
    assert_eq!(map["names"], serde_json::json!(["0", "1"]));
}

#[test]
fn a_row_without_label_is_reported_with_its_line() {
    let (tmp, tsv) = temp_file(
        "bad.tsv",
        "sentence\tlabel\ngood film \t1\nno label here \t\nbad film \t0\n",
    );
    let tk = wordpiece_on(&["good bad film no label here".to_string()], 100);
    let files = [SplitFile::parse(tsv.to_str().unwrap(), "train")];
    let err = encode_examples(
        &tk,
        &ExamplesConfig::default(),
        &files,
        &tmp.path().join("out"),
        Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bad.tsv:3"), "{err}");
    assert!(err.contains("label"), "{err}");

    let skip = ExamplesConfig {
        on_error: OnError::Skip,
        ..ExamplesConfig::default()
    };
    let m = encode_examples(
        &tk,
        &skip,
        &files,
        &tmp.path().join("skip"),
        Default::default(),
    )
    .unwrap();
    assert_eq!(m.rows(), 2);
    assert_eq!(m.stats["skipped"]["missing_label"], 1);
}

/// Several files in one split keep every example's id unique (ids name the file); one
/// file read for two splits is written for both; the same file twice in one split is
/// refused before anything is written.
#[test]
fn examples_from_several_files_keep_unique_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.tsv"), tmp.path().join("b.tsv"));
    std::fs::write(&a, "sentence\tlabel\ngood film\t1\nbad film\t0\n").unwrap();
    std::fs::write(&b, "sentence\tlabel\nfine film\t1\n").unwrap();
    let tk = wordpiece_on(&["good bad fine film".to_string()], 100);
    let config = ExamplesConfig {
        task: "t".into(),
        seq_len: 8,
        ..ExamplesConfig::default()
    };
    let split = |s: &str, p: &Path| SplitFile::parse(&format!("{s}={}", p.display()), "train");
    let encode = |files: &[SplitFile], out: &Path| {
        encode_examples(&tk, &config, files, out, Default::default())
    };
    let ids = |files: &[SplitFile], name: &str| -> Vec<String> {
        let out = tmp.path().join(name);
        encode(files, &out).unwrap();
        read_rows::<Example>(&out)
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(
        ids(&[split("train", &a), split("train", &b)], "two"),
        ["t:train:a.tsv:2", "t:train:a.tsv:3", "t:train:b.tsv:2"]
    );
    // One file for both splits: each split gets all of its rows.
    assert_eq!(
        ids(&[split("train", &a), split("validation", &a)], "both"),
        ["t:train:2", "t:train:3", "t:validation:2", "t:validation:3"]
    );
    let twice = tmp.path().join("twice");
    let err = encode(&[split("train", &a), split("train", &a)], &twice)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.tsv") && err.contains("twice for split `train`"),
        "{err}"
    );
    assert!(!twice.exists(), "nothing written");
}

/// Settings no examples dataset can be made with are refused by name before any row is
/// written: an unnamed task or one whose name would become a path, and a `seq_len` with
/// no room for text beside the tokenizer's own tokens (which used to give `[CLS] x [SEP]`
/// examples).
#[test]
fn examples_settings_without_room_or_name_are_refused() {
    let (tmp, tsv) = temp_file("ok.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\n");
    let tk = wordpiece_on(&["good bad film".to_string()], 100);
    let files = [SplitFile::parse(tsv.to_str().unwrap(), "train")];
    let out = tmp.path().join("out");
    let refused = |config: ExamplesConfig| {
        encode_examples(&tk, &config, &files, &out, Default::default())
            .unwrap_err()
            .to_string()
    };
    for (config, needle) in [
        (
            ExamplesConfig {
                task: "glue/sst2".into(),
                ..ExamplesConfig::default()
            },
            "task \"glue/sst2\"",
        ),
        (
            ExamplesConfig {
                task: String::new(),
                ..ExamplesConfig::default()
            },
            "task \"\"",
        ),
        (
            ExamplesConfig {
                seq_len: 0,
                ..ExamplesConfig::default()
            },
            "seq_len 0",
        ),
        (
            ExamplesConfig {
                seq_len: 2,
                ..ExamplesConfig::default()
            },
            "seq_len 2: leaves no room for text beside the 2 special tokens",
        ),
    ] {
        let err = refused(config);
        assert!(err.contains(needle), "{err}");
    }
    assert!(!out.join("manifest.json").exists(), "nothing written");
    let fits = ExamplesConfig {
        seq_len: 3,
        ..ExamplesConfig::default()
    };
    assert_eq!(
        encode_examples(&tk, &fits, &files, &out, Default::default())
            .unwrap()
            .rows(),
        2
    );
}

fn encode_all(
    docs: &Path,
    out: &Path,
    run: &EncodeRun,
    progress: impl FnMut(u64),
) -> gradus_shard::Manifest {
    let config = EncodeConfig {
        max_rows_per_shard: 5,
        ..EncodeConfig::default()
    };
    let encoder = Encoder::new(byte_bpe(), &config).unwrap();
    encode_dataset(&encoder, &config, docs, out, run, progress).unwrap()
}

/// The sample corpus as documents (two to a shard) in `root/docs_name`, encoded whole
/// into `root/ref`: the dataset an interrupted or following encode must reproduce.
fn sample_encoded(root: &Path, docs_name: &str) -> (PathBuf, gradus_shard::Manifest) {
    let docs = root.join(docs_name);
    documents(&docs, &sample_corpus(), 2);
    let reference = encode_all(&docs, &root.join("ref"), &EncodeRun::default(), |_| {});
    (docs, reference)
}

#[test]
fn documents_to_tokens_with_eos_split_and_stats() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    let texts = sample_corpus();
    documents(&docs, &texts, 3);
    let out = tmp.path().join("tokens");
    let m = encode_all(&docs, &out, &EncodeRun::default(), |_| {});
    assert!(m.sealed);
    assert_eq!(m.rows() as usize, texts.len());
    let rows: Vec<TokenSeq> = read_rows(&out);
    let tk = load(&out.join("tokenizer.json")).unwrap();
    let eos = tk.token_to_id("<|endoftext|>").unwrap();
    for (row, text) in rows.iter().zip(&texts) {
        assert_eq!(*row.input_ids.last().unwrap(), eos);
        let body = &row.input_ids[..row.input_ids.len() - 1];
        assert_eq!(tk.decode(body, false).unwrap(), *text);
        assert_eq!(row.split, gradus_tokenize::split_of(&row.doc_id, 0.1));
    }
    let tokens: u64 = rows.iter().map(|r| r.input_ids.len() as u64).sum();
    assert_eq!(m.stats["tokens"], tokens);
    assert_eq!(m.stats["documents"], texts.len());
    assert_eq!(m.stats["unknown_token_rate"], 0.0);
    assert!(m.stats["bytes_per_token"].as_f64().unwrap() > 1.5);
    assert!(Dataset::open(&out).unwrap().verify().is_empty());
}

#[test]
fn an_interrupted_encode_resumes_to_the_same_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, reference) = sample_encoded(tmp.path(), "docs");
    let out = tmp.path().join("out");
    let mut finished = 0;
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        encode_all(&docs, &out, &EncodeRun::default(), |_| {
            finished += 1;
            assert!(finished < 4, "simulated crash after three upstream shards");
        })
    }));
    assert!(crashed.is_err());
    let partial = Dataset::open(&out).unwrap();
    assert!(!partial.manifest().sealed && partial.num_rows() > 0);
    let resumed = encode_all(&docs, &out, &EncodeRun::default(), |_| {});
    assert_eq!(resumed.shards, reference.shards);
    assert_eq!(resumed.stats, reference.stats);
}

#[test]
fn follow_mode_encodes_an_upstream_being_written() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = sample_corpus();
    let (_, reference) = sample_encoded(tmp.path(), "ref-docs");

    let docs = tmp.path().join("docs");
    let writer_docs = docs.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        documents(&writer_docs, &texts, 2);
    });
    let run = EncodeRun {
        follow: Some(std::time::Duration::from_secs(30)),
        ..EncodeRun::default()
    };
    let followed = encode_all(&docs, &tmp.path().join("out"), &run, |_| {});
    writer.join().unwrap();
    // Same shards; lineage paths differ only by the upstream folder name.
    let strip = |m: &gradus_shard::Manifest| {
        m.shards
            .iter()
            .map(|s| (s.rows, s.checksum.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&followed), strip(&reference));
}

#[test]
fn the_minilm_tokenizer_gives_the_reference_ids() {
    let (Some(model), Some(reference)) = (
        gradus_testkit::minilm(),
        gradus_testkit::shared("minilm-reference/reference.json"),
    ) else {
        return;
    };
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference).unwrap()).unwrap();
    // The shipped tokenizer.json, and the same vocabulary read from vocab.txt.
    for tk in [
        load(&model).unwrap(),
        load(&model.join("vocab.txt")).unwrap(),
    ] {
        for sentence in reference["sentences"].as_array().unwrap() {
            let text = sentence["text"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(sentence["input_ids"].clone()).unwrap();
            let got = tk.encode(text, true).unwrap().get_ids().to_vec();
            assert_eq!(got, want, "{text}");
        }
    }
}

#[test]
fn hf_tokenizers_in_python_loads_every_kind_unchanged() {
    let Some(site) = gradus_testkit::python_package("tokenizers==0.23.3") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let texts = sample_corpus();
    let probe = "The harbour wakes, before the town does: 7 boats. Café ☕!";
    let mut expected = serde_json::Map::new();
    for kind in ALL_KINDS {
        let config = small(kind, 400);
        let tk = train(&config, &texts).unwrap();
        let path = tmp.path().join(format!("{kind:?}.json"));
        gradus_tokenize::save(&tk, &path).unwrap();
        let ids = tk.encode(probe, true).unwrap().get_ids().to_vec();
        expected.insert(path.display().to_string(), serde_json::json!(ids));
    }
    let script = "import json, sys\nfrom tokenizers import Tokenizer\n\
        paths = json.loads(sys.argv[1])\n\
        print(json.dumps({p: Tokenizer.from_file(p).encode(sys.argv[2]).ids for p in paths}))";
    let paths: Vec<&String> = expected.keys().collect();
    let out = std::process::Command::new("python3")
        .args(["-c", script, &serde_json::to_string(&paths).unwrap(), probe])
        .env("PYTHONPATH", &site)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, expected);
}
