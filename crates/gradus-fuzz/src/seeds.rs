//! Valid inputs for each target, for fuzzers to damage: a fuzzer that starts from
//! something a reader accepts reaches far deeper than one that starts from noise.

use std::path::Path;

use gradus_shard::{DatasetKind, DatasetWriter, Document, Producer, Record, WriterOptions};

/// A raw file of each of [`crate::RAW_FORMATS`], with its extension.
pub fn raw_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "jsonl",
            b"{\"text\": \"A first document.\", \"url\": \"u1\"}\n{\"text\": \"Second one, \\u00e9t\\u00e9.\", \"label\": 1}\n"
                .to_vec(),
        ),
        (
            "tsv",
            b"sentence\tlabel\na fine film\t1\nthe plot \"drags\"\t0\n".to_vec(),
        ),
        (
            "csv",
            b"text,label\n\"a fine, long film\",1\nawful,0\n".to_vec(),
        ),
        ("txt", b"para one\nline two\n\npara two\n".to_vec()),
    ]
}

/// Writes a sealed `documents` dataset of two rows into `dir`.
pub fn write_dataset(dir: &Path) {
    let written = (|| -> Result<(), Box<dyn std::error::Error>> {
        let producer = Producer::new("fuzz", &())?;
        let mut w = DatasetWriter::create(
            dir,
            DatasetKind::Documents,
            producer,
            vec![],
            WriterOptions::default(),
        )?;
        let docs: Vec<Document> = ["Hello there.", "A second document."]
            .iter()
            .enumerate()
            .map(|(i, t)| Document {
                id: format!("seed:{i}"),
                text: (*t).into(),
                source: "seed".into(),
                metadata: None,
            })
            .collect();
        w.write("seed", &Document::to_batch(&docs)?)?;
        w.finish_source("seed")?;
        w.seal()?;
        Ok(())
    })();
    written.unwrap_or_else(|e| panic!("the seed dataset: {e}"));
}

/// The `manifest.json` of [`write_dataset`]'s dataset.
pub fn manifest() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch folder: {e}"));
    write_dataset(dir.path());
    std::fs::read(dir.path().join(gradus_shard::MANIFEST_FILE))
        .unwrap_or_else(|e| panic!("the seed manifest: {e}"))
}

/// Stage configs as the pipelines ship them.
pub fn stage_configs() -> Vec<&'static str> {
    vec![
        include_str!("../../../pipelines/demo/clean.toml"),
        include_str!("../../../pipelines/demo/tokenizer.toml"),
        include_str!("../../../pipelines/demo/encode.toml"),
        include_str!("../../../pipelines/demo/sentiment-examples.toml"),
        include_str!("../../../pipelines/demo/pretrain.toml"),
        include_str!("../../../pipelines/demo/finetune.toml"),
        include_str!("../../../pipelines/demo/multitask.toml"),
        include_str!("../../../pipelines/demo/eval.toml"),
        include_str!("../../../pipelines/shakespeare-char/import.toml"),
    ]
}

/// Pipeline files as shipped.
pub fn pipelines() -> Vec<&'static str> {
    vec![
        include_str!("../../../pipelines/demo.toml"),
        include_str!("../../../pipelines/shakespeare-char.toml"),
    ]
}

/// A small WordPiece `tokenizer.json` with every part a BERT tokenizer has.
pub fn tokenizer_json() -> Vec<u8> {
    let special = |id: u32, content: &str| {
        format!(
            r#"{{"id":{id},"content":"{content}","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}}"#
        )
    };
    let added: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .enumerate()
        .map(|(i, t)| special(i as u32, t))
        .collect();
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", ",", "world", "!", "a", "second",
        "sen", "##tence", ".",
    ];
    let vocab: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("\"{w}\":{i}"))
        .collect();
    format!(
        r###"{{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{added}],
"normalizer":{{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}},
"pre_tokenizer":{{"type":"BertPreTokenizer"}},
"post_processor":{{"type":"TemplateProcessing",
 "single":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}}],
 "pair":[{{"SpecialToken":{{"id":"[CLS]","type_id":0}}}},{{"Sequence":{{"id":"A","type_id":0}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":0}}}},{{"Sequence":{{"id":"B","type_id":1}}}},{{"SpecialToken":{{"id":"[SEP]","type_id":1}}}}],
 "special_tokens":{{"[CLS]":{{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]}},"[SEP]":{{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}}}}},
"decoder":{{"type":"WordPiece","prefix":"##","cleanup":true}},
"model":{{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{{{vocab}}}}}}}"###,
        added = added.join(","),
        vocab = vocab.join(",")
    )
    .into_bytes()
}
