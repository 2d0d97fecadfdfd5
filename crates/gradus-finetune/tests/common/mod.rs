//! The synthetic tasks the fine-tuning and multi-task tests train on: toy TSV files, a
//! WordPiece tokenizer of their text, examples datasets, a tiny random BERT and tiny
//! random decoders.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part; helpers fail loudly

use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_finetune::Predictor;
use gradus_model::{Bert, BertConfig};
use gradus_shard::OpenMode;
use gradus_shard::Prediction;
use gradus_tokenize::{ExamplesConfig, SplitFile, TokenizerKind, TrainConfig as TkConfig};
use tokenizers::Tokenizer;

/// A WordPiece tokenizer of 200 tokens trained on `texts`.
pub fn wordpiece(texts: &[String]) -> Tokenizer {
    let config = TkConfig {
        kind: TokenizerKind::Wordpiece,
        vocab_size: 200,
        min_frequency: 1,
        ..TkConfig::default()
    };
    gradus_tokenize::train(&config, texts).unwrap()
}

/// The examples dataset `out` of task `task` from TSV files `train` and `dev` (labels, or
/// the numeric column `score` when given), inputs cut at 16 tokens.
pub fn encode(
    tk: &Tokenizer,
    task: &str,
    (train, dev): (&Path, &Path),
    score: Option<&str>,
    out: &Path,
) {
    let files = [
        SplitFile::parse(&format!("train={}", train.display()), "train"),
        SplitFile::parse(&format!("validation={}", dev.display()), "train"),
    ];
    let config = ExamplesConfig {
        task: task.into(),
        score: score.map(str::to_string),
        seq_len: 16,
        ..ExamplesConfig::default()
    };
    gradus_tokenize::encode_examples(tk, &config, &files, out, OpenMode::Overwrite).unwrap();
}

/// A tiny random BERT checkpoint (2 layers of width 32, no dropout) of `tk`'s vocabulary
/// in `dir`.
pub fn tiny_bert(tk: &Tokenizer, dir: &Path) -> PathBuf {
    let bert = BertConfig {
        vocab_size: tk.get_vocab_size(true),
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 32,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::default()
    };
    Bert::save_random(&bert, dir, 3).unwrap();
    dir.to_path_buf()
}

/// The model folder `dir` labels a clearly positive and a clearly negative toy sentence
/// `1` and `0` (the synthetic sentiment task learnt); returns its predictions.
pub fn labels_the_toy_sentences(dir: &Path) -> Vec<Prediction> {
    let predictor = Predictor::load(dir, &Device::Cpu).unwrap();
    let texts = [
        ("the movie was very good".to_string(), None),
        ("the plot is awful".to_string(), None),
    ];
    let rows = predictor
        .predict(&predictor.encode(&texts).unwrap())
        .unwrap();
    let names: Vec<_> = rows.iter().map(|p| p.predicted_name.clone()).collect();
    assert_eq!(names, [Some("1".to_string()), Some("0".to_string())]);
    rows
}

/// The vocabulary size (added tokens included) of the tokenizer that encoded `examples`.
pub fn vocab_size(examples: &Path) -> usize {
    gradus_tokenize::load(&examples.join("tokenizer.json"))
        .unwrap()
        .get_vocab_size(true)
}

/// A tiny random decoder (`config`) in `dir`, with the tokenizer of the examples in
/// `examples` beside it (so the vocabularies are checked token for token).
pub fn tiny_decoder(examples: &Path, config: gradus_model::DecoderConfig, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut params = gradus_model::Params::new(Device::Cpu, 3);
    gradus_model::Decoder::new(&config, &mut params).unwrap();
    params.save(&dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config.to_json().to_string()).unwrap();
    std::fs::copy(examples.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    dir.to_path_buf()
}

/// A tiny Llama (width 32, 2 layers, 4 heads sharing 2 key/value heads, its own output
/// layer) of the vocabulary of `examples`' tokenizer.
pub fn tiny_llama(examples: &Path, dir: &Path) -> PathBuf {
    let vocab = vocab_size(examples);
    let llama = gradus_model::LlamaConfig {
        vocab_size: vocab,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        max_position_embeddings: 32,
        ..gradus_model::LlamaConfig::default()
    };
    tiny_decoder(examples, gradus_model::DecoderConfig::Llama(llama), dir)
}

/// A tiny GPT-2 (width 32, 2 layers, 32 positions, no dropout) and a tiny Llama of the
/// vocabulary of `examples`' tokenizer, in `root/gpt` and `root/llama`.
pub fn tiny_decoders(examples: &Path, root: &Path) -> Vec<PathBuf> {
    let vocab = vocab_size(examples);
    let gpt = gradus_model::GptConfig {
        vocab_size: vocab,
        n_positions: 32,
        n_embd: 32,
        n_layer: 2,
        n_head: 2,
        ..gradus_model::GptConfig::default()
    }
    .with_dropout(0.0);
    vec![
        tiny_decoder(
            examples,
            gradus_model::DecoderConfig::Gpt(gpt),
            &root.join("gpt"),
        ),
        tiny_llama(examples, &root.join("llama")),
    ]
}
