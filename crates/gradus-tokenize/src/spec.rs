//! Tokenizer kinds: how each is assembled from `tokenizers` components, trained, saved and
//! loaded. Every kind is a standard `tokenizer.json` that HF tokenizers loads unchanged.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder, Vocab};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use crate::deterministic::{unigram_model, word_counts, wordpiece_model, wordpiece_vocab};
use crate::error::{Result, TokenizeError};

/// The tokenizer families gradus trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// GPT-2 style byte-level BPE: any UTF-8 text round-trips, no unknown tokens.
    ByteBpe,
    /// BERT style WordPiece with `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    Wordpiece,
    /// SentencePiece-style Unigram over metaspace-separated words.
    Unigram,
    /// One token per distinct character (nanoGPT's `shakespeare_char`).
    Char,
}

impl TokenizerKind {
    /// The special tokens a kind gets when the config names none.
    pub fn default_special_tokens(self) -> Vec<String> {
        let list: &[&str] = match self {
            Self::ByteBpe => &["<|endoftext|>"],
            Self::Wordpiece => &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            Self::Unigram => &["<pad>", "<unk>", "<s>", "</s>", "<mask>"],
            Self::Char => &[],
        };
        list.iter().map(|s| s.to_string()).collect()
    }
}

/// Settings for training a tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub kind: TokenizerKind,
    /// Target vocabulary size, special tokens included (ignored by `char`).
    pub vocab_size: usize,
    /// Pairs (BPE, WordPiece) seen fewer times are not merged.
    pub min_frequency: u64,
    /// Special tokens; `None` takes the kind's defaults.
    pub special_tokens: Option<Vec<String>>,
    /// Lower-case text before WordPiece (BERT "uncased").
    pub lowercase: bool,
    /// Seed of the training sample.
    pub seed: u64,
    /// Train on at most this many documents...
    pub sample_docs: usize,
    /// ...and at most this many bytes of text (the trainers hold their input in memory).
    pub sample_bytes: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            kind: TokenizerKind::ByteBpe,
            vocab_size: 8192,
            min_frequency: 2,
            special_tokens: None,
            lowercase: true,
            seed: 42,
            sample_docs: 1_000_000,
            sample_bytes: 256 << 20,
        }
    }
}

impl TrainConfig {
    /// Refuses settings that would train a tokenizer of special tokens alone: a
    /// vocabulary no larger than them, or an empty training sample.
    pub fn check(&self) -> Result<()> {
        let specials = self.special_tokens().len();
        if self.kind != TokenizerKind::Char && self.vocab_size <= specials {
            return Err(TokenizeError::Config(format!(
                "vocab_size {}: must be larger than the {specials} special tokens it includes",
                self.vocab_size
            )));
        }
        if self.sample_docs == 0 || self.sample_bytes == 0 {
            return Err(TokenizeError::Config(
                "sample_docs and sample_bytes must be positive: they bound the training sample"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The special tokens to use.
    pub fn special_tokens(&self) -> Vec<String> {
        self.special_tokens
            .clone()
            .unwrap_or_else(|| self.kind.default_special_tokens())
    }

    fn added_tokens(&self) -> Vec<AddedToken> {
        self.special_tokens()
            .into_iter()
            .map(|t| AddedToken::from(t, true))
            .collect()
    }
}

/// Trains a tokenizer of `config.kind` on `texts` (already sampled). The same texts and
/// config give a byte-identical `tokenizer.json` on every run.
pub fn train<S: AsRef<str> + Send + Sync>(config: &TrainConfig, texts: &[S]) -> Result<Tokenizer> {
    config.check()?;
    if texts.iter().all(|t| t.as_ref().is_empty()) {
        return Err(TokenizeError::Config(
            "no text to train on: every document of the sample is empty".into(),
        ));
    }
    let specials = config.special_tokens();
    let mut tokenizer = match config.kind {
        TokenizerKind::Char => return char_tokenizer(texts.iter(), &specials),
        TokenizerKind::ByteBpe => byte_bpe(config, texts)?,
        TokenizerKind::Wordpiece => {
            let normalizer = BertNormalizer::new(true, true, None, config.lowercase);
            let counts = word_counts(texts, Some(&normalizer), &BertPreTokenizer)?;
            let vocab =
                wordpiece_vocab(&counts, &specials, config.vocab_size, config.min_frequency)?;
            let mut tk = Tokenizer::new(wordpiece_model(vocab)?);
            tk.with_normalizer(Some(normalizer))
                .map_err(|e| TokenizeError::tk("building the tokenizer", e))?;
            tk.with_pre_tokenizer(Some(BertPreTokenizer));
            tk.with_decoder(Some(WordPieceDecoder::default()));
            tk
        }
        TokenizerKind::Unigram => {
            let metaspace = Metaspace::new('\u{2581}', PrependScheme::Always, true);
            let counts = word_counts(texts, None, &metaspace)?;
            let mut tk = Tokenizer::new(unigram_model(&counts, &specials, config.vocab_size)?);
            tk.with_pre_tokenizer(Some(metaspace));
            tk.with_decoder(Some(MetaspaceDecoder::new(
                '\u{2581}',
                PrependScheme::Always,
                true,
            )));
            tk
        }
    };
    tokenizer
        .add_special_tokens(config.added_tokens())
        .map_err(|e| TokenizeError::tk("adding special tokens", e))?;
    if config.kind == TokenizerKind::Wordpiece {
        let template = bert_template(&tokenizer)?;
        tokenizer.with_post_processor(Some(template));
    }
    Ok(tokenizer)
}

/// GPT-2 style byte-level BPE. Its symbols are the 256 byte characters in a fixed order,
/// so the stock trainer is reproducible here.
fn byte_bpe<S: AsRef<str> + Send + Sync>(config: &TrainConfig, texts: &[S]) -> Result<Tokenizer> {
    let mut tk = Tokenizer::new(BPE::default());
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tk.with_decoder(Some(ByteLevelDecoder::default()));
    tk.with_post_processor(Some(ByteLevel::new(false, true, true)));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(config.vocab_size)
        .min_frequency(config.min_frequency)
        .special_tokens(config.added_tokens())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build()
        .into();
    tk.train(&mut trainer, texts.iter())
        .map_err(|e| TokenizeError::tk("training the tokenizer", e))?;
    Ok(tk)
}

/// `[CLS] a [SEP]` and `[CLS] a [SEP] b [SEP]` with token types 0 and 1, as BERT.
pub fn bert_template(tokenizer: &Tokenizer) -> Result<TemplateProcessing> {
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| TokenizeError::Config(format!("vocabulary has no {t} token")))
    };
    TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| TokenizeError::tk("BERT template", e))?
        .special_tokens(vec![("[CLS]", id("[CLS]")?), ("[SEP]", id("[SEP]")?)])
        .build()
        .map_err(|e| TokenizeError::tk("BERT template", e))
}

/// Every distinct character, sorted by code point, is one token (ids in that order, as
/// nanoGPT's `stoi`); special tokens follow. A BPE model without merges over the whole
/// text does exactly this, and the fuse decoder joins tokens back without separators.
pub fn char_tokenizer<I, S>(texts: I, special: &[String]) -> Result<Tokenizer>
where
    I: Iterator<Item = S>,
    S: AsRef<str>,
{
    let mut chars = BTreeSet::new();
    for text in texts {
        chars.extend(text.as_ref().chars());
    }
    char_tokenizer_from(&chars, special)
}

/// A character tokenizer over exactly `chars`.
pub fn char_tokenizer_from(chars: &BTreeSet<char>, special: &[String]) -> Result<Tokenizer> {
    let vocab: Vocab = chars
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    let model = BPE::builder()
        .vocab_and_merges(vocab, Vec::new())
        .build()
        .map_err(|e| TokenizeError::tk("character vocabulary", e))?;
    let mut tk = Tokenizer::new(ModelWrapper::BPE(model));
    tk.with_decoder(Some(Fuse::new()));
    let added: Vec<AddedToken> = special
        .iter()
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    tk.add_special_tokens(added)
        .map_err(|e| TokenizeError::tk("adding special tokens", e))?;
    Ok(tk)
}

/// Loads an existing tokenizer: a `tokenizer.json`, a BERT `vocab.txt` (WordPiece,
/// lower-cased as the uncased BERT models), or a model folder holding either.
pub fn load(path: &Path) -> Result<Tokenizer> {
    if path.is_dir() {
        for name in ["tokenizer.json", "vocab.txt"] {
            if path.join(name).exists() {
                return load(&path.join(name));
            }
        }
        return Err(TokenizeError::Config(format!(
            "{}: no tokenizer.json or vocab.txt in this folder",
            path.display()
        )));
    }
    let what = format!("loading tokenizer {}", path.display());
    let mut tk = if path.extension().is_some_and(|e| e == "txt") {
        bert_from_vocab(path)?
    } else {
        if !path.exists() {
            let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
            return Err(TokenizeError::io(path, missing));
        }
        guarded(&what, || Tokenizer::from_file(path))?.map_err(|e| TokenizeError::tk(&what, e))?
    };
    // Shipped tokenizers often carry padding and truncation for their own training;
    // gradus decides both per stage.
    tk.with_padding(None);
    tk.with_truncation(None)
        .map_err(|e| TokenizeError::tk(&what, e))?;
    // A damaged post-processor or decoder loads and then panics on first use: try it now.
    guarded(&what, || {
        let _ = tk.encode("a b", true);
        let _ = tk.encode(("a", "b"), true);
        let _ = tk.decode(&[0, 1], true);
    })?;
    Ok(tk)
}

/// Runs a call into the tokenizers library, which panics on some malformed files (a
/// decoder of an unknown shape, a template naming a special token it does not define),
/// and turns a panic into an error. The panic hook is silenced meanwhile: the error is
/// the one line the user sees.
fn guarded<T>(what: &str, call: impl FnOnce() -> T) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    std::panic::set_hook(hook);
    out.map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no reason given");
        TokenizeError::tk(what, format!("not a usable tokenizer ({reason})"))
    })
}

fn bert_from_vocab(path: &Path) -> Result<Tokenizer> {
    let what = format!("loading vocabulary {}", path.display());
    let model = WordPiece::from_file(&path.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| TokenizeError::tk(&what, e))?;
    let mut tk = Tokenizer::new(model);
    tk.with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| TokenizeError::tk(&what, e))?;
    tk.with_pre_tokenizer(Some(BertPreTokenizer));
    tk.with_decoder(Some(WordPieceDecoder::default()));
    let specials: Vec<AddedToken> = TokenizerKind::Wordpiece
        .default_special_tokens()
        .into_iter()
        .filter(|t| tk.token_to_id(t).is_some())
        .map(|t| AddedToken::from(t, true))
        .collect();
    tk.add_special_tokens(specials)
        .map_err(|e| TokenizeError::tk(&what, e))?;
    let template = bert_template(&tk)?;
    tk.with_post_processor(Some(template));
    Ok(tk)
}

/// Saves `tokenizer` as pretty JSON (stable bytes for equal tokenizers).
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| TokenizeError::io(parent, e))?;
    }
    tokenizer
        .save(path, true)
        .map_err(|e| TokenizeError::tk(format!("saving {}", path.display()), e))
}

/// A hash that identifies a tokenizer by its serialised form.
pub fn fingerprint(tokenizer: &Tokenizer) -> Result<String> {
    let json = tokenizer
        .to_string(false)
        .map_err(|e| TokenizeError::tk("serialising the tokenizer", e))?;
    Ok(gradus_shard::checksum_bytes(json.as_bytes()))
}
