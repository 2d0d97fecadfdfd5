//! WordPiece and Unigram training that gives the same `tokenizer.json` on every run.
//!
//! The stock trainers are not reproducible: the WordPiece trainer numbers `##x` symbols in
//! hash-map order, which decides how tied merges break (two runs on SST-2 differed in 184
//! of 2,000 pieces), and the Unigram trainer sums its E-step in thread and hash-map order
//! (scores differ in the last bits). Here word counts are computed exactly, in parallel,
//! into a sorted map; the trainers' core algorithms then run on that fixed input.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ahash::AHashMap;
use compact_str::CompactString;
use rayon::prelude::*;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder, Vocab};
use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::{Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

use crate::error::{Result, TokenizeError};

/// Marks the start of a word while WordPiece is learned as BPE (SentencePiece's `▁`).
const WORD_START: char = '\u{2581}';

/// Exact counts of the words `pre` splits the normalised texts into.
pub(crate) fn word_counts<S: AsRef<str> + Sync>(
    texts: &[S],
    normalizer: Option<&(dyn Normalizer + Sync)>,
    pre: &(dyn PreTokenizer + Sync),
) -> Result<BTreeMap<String, u64>> {
    let err = |e| TokenizeError::tk("splitting training text into words", e);
    let counts = texts
        .par_chunks(256)
        .map(|chunk| -> Result<HashMap<String, u64>> {
            let mut counts = HashMap::new();
            for text in chunk {
                let mut pts = PreTokenizedString::from(text.as_ref());
                if let Some(n) = normalizer {
                    pts.normalize(|s| n.normalize(s)).map_err(err)?;
                }
                pre.pre_tokenize(&mut pts).map_err(err)?;
                for (word, _, _) in pts.get_splits(OffsetReferential::Original, OffsetType::Byte) {
                    *counts.entry(word.to_string()).or_default() += 1;
                }
            }
            Ok(counts)
        })
        .try_reduce(HashMap::new, |mut a, b| {
            for (w, c) in b {
                *a.entry(w).or_default() += c;
            }
            Ok(a)
        })?;
    Ok(counts.into_iter().collect())
}

/// Learns a WordPiece vocabulary of at most `vocab_size` entries: BPE over words marked
/// with a leading `▁` (character ids in code-point order, so ties break the same way on
/// every run), then pieces that start with `▁` become word-initial pieces and the others
/// `##` continuations. Every character is kept in both forms so nothing maps to `[UNK]`
/// that the training text could spell.
pub(crate) fn wordpiece_vocab(
    counts: &BTreeMap<String, u64>,
    specials: &[String],
    vocab_size: usize,
    min_frequency: u64,
) -> Result<Vocab> {
    let alphabet: BTreeSet<char> = counts.keys().flat_map(|w| w.chars()).collect();
    let mut words: AHashMap<CompactString, u64> = AHashMap::with_capacity(counts.len());
    for (w, c) in counts {
        words.insert(CompactString::from(format!("{WORD_START}{w}")), *c);
    }
    // Merges that only glue `▁` to a single character add no new piece: ask for that many
    // more than needed and cut the result to size.
    let fixed = specials.len() + 2 * alphabet.len();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size.saturating_sub(fixed) + 2 * alphabet.len() + 1)
        .min_frequency(min_frequency)
        .show_progress(false)
        .build();
    let mut bpe = BPE::default();
    trainer
        .do_train(&words, &mut bpe)
        .map_err(|e| TokenizeError::tk("learning WordPiece merges", e))?;
    let mut learned: Vec<(u32, String)> =
        bpe.get_vocab().into_iter().map(|(t, i)| (i, t)).collect();
    learned.sort();

    let mut ordered: Vec<String> = specials.to_vec();
    ordered.extend(alphabet.iter().map(|c| c.to_string()));
    ordered.extend(alphabet.iter().map(|c| format!("##{c}")));
    for (_, token) in learned {
        let piece = match token.strip_prefix(WORD_START) {
            Some(initial) => initial.to_string(),
            None => format!("##{token}"),
        };
        if piece.trim_start_matches("##").chars().count() > 1 {
            ordered.push(piece);
        }
    }
    let mut vocab = Vocab::default();
    for token in ordered {
        if vocab.len() >= vocab_size.max(specials.len() + 1) {
            break;
        }
        let next = vocab.len() as u32;
        vocab.entry(token).or_insert(next);
    }
    Ok(vocab)
}

/// A WordPiece model over `vocab` with BERT's `[UNK]` and `##`.
pub(crate) fn wordpiece_model(vocab: Vocab) -> Result<WordPiece> {
    WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .build()
        .map_err(|e| TokenizeError::tk("building the WordPiece model", e))
}

/// Trains a Unigram model on sorted word counts, with the tokenizers' thread pool off for
/// the duration so the E-step sums in one fixed order.
pub(crate) fn unigram_model(
    counts: &BTreeMap<String, u64>,
    specials: &[String],
    vocab_size: usize,
) -> Result<Unigram> {
    let unk = specials.iter().find(|t| t.contains("unk")).cloned();
    let trainer = UnigramTrainerBuilder::default()
        .vocab_size(vocab_size as u32)
        .special_tokens(
            specials
                .iter()
                .map(|t| tokenizers::AddedToken::from(t.clone(), true))
                .collect(),
        )
        .unk_token(unk)
        .show_progress(false)
        .build()
        .map_err(|e| TokenizeError::tk("Unigram trainer", e))?;
    let sentences: Vec<(String, u32)> = counts
        .iter()
        .map(|(w, c)| (w.clone(), (*c).min(u64::from(u32::MAX)) as u32))
        .collect();
    let mut model = Unigram::default();
    let parallel = tokenizers::utils::parallelism::get_parallelism();
    tokenizers::utils::parallelism::set_parallelism(false);
    let trained = trainer.do_train(sentences, &mut model);
    tokenizers::utils::parallelism::set_parallelism(parallel);
    trained.map_err(|e| TokenizeError::tk("training the Unigram model", e))?;
    canonical_unigram(&model, specials)
}

/// The trainer adds the characters its pruning dropped in hash-set order, each scoring
/// `min + k * 0.0001` for its position k. Handing those scores out again in character
/// order, then sorting all pieces by (score, text), makes the result independent of that
/// order.
fn canonical_unigram(model: &Unigram, specials: &[String]) -> Result<Unigram> {
    const PENALTY_STEP: f64 = 0.0001;
    type Pieces = Vec<(String, f64)>;
    let (mut head, mut rest): (Pieces, Pieces) = model
        .iter()
        .map(|(t, s)| (t.clone(), *s))
        .partition(|(t, _)| specials.contains(t));
    let floor = rest.iter().map(|(_, s)| *s).fold(f64::INFINITY, f64::min);
    let on_step = |s: f64| {
        let k = (s - floor) / PENALTY_STEP;
        k.round() >= 0.0 && (k - k.round()).abs() < 1e-6
    };
    let mut added: Vec<usize> = (0..rest.len())
        .filter(|&i| rest[i].0.chars().count() == 1 && on_step(rest[i].1))
        .collect();
    let mut scores: Vec<f64> = added.iter().map(|&i| rest[i].1).collect();
    scores.sort_by(f64::total_cmp);
    added.sort_by(|&a, &b| rest[a].0.cmp(&rest[b].0));
    for (i, score) in added.into_iter().zip(scores) {
        rest[i].1 = score;
    }
    rest.sort_by(|(ta, sa), (tb, sb)| sb.total_cmp(sa).then_with(|| ta.cmp(tb)));
    let unk = head.iter().position(|(t, _)| t.contains("unk"));
    head.extend(rest);
    Unigram::from(head, unk, model.byte_fallback())
        .map_err(|e| TokenizeError::tk("ordering the Unigram pieces", e))
}
