//! Quality signals of a document, computed from its text alone.
//!
//! The definitions follow the recipes whose thresholds the filter presets use, so that a
//! threshold means the same thing here as there:
//! - Gopher quality and repetition: Rae et al. 2021, "Scaling Language Models: Methods,
//!   Analysis & Insights from Training Gopher", appendix A1.1, as implemented in datatrove
//!   (`gopher_quality_filter.py`, `gopher_repetition_filter.py`);
//! - FineWeb quality: datatrove `fineweb_quality_filter.py` (Penedo et al. 2024);
//! - C4: Raffel et al. 2020, section 2.2, as in datatrove `c4_filters.py`.
//!
//! Words are whitespace-separated tokens with leading and trailing punctuation split off
//! into tokens of their own (close to the NLTK word tokenizer datatrove uses for English).

use std::collections::{HashMap, HashSet};

/// Gopher's stop words: a document needs a few of them to look like prose.
pub const STOP_WORDS: [&str; 8] = ["the", "be", "to", "of", "and", "that", "have", "with"];

/// Line-final characters that count as terminal punctuation (FineWeb's and C4's idea of a
/// line that ends a sentence), covering Latin, Arabic, Indic, Ethiopic and CJK scripts.
pub const TERMINAL_PUNCTUATION: [char; 22] = [
    '.', '!', '?', '"', '\'', '”', '’', '。', '！', '？', '…', '؟', '۔', '।', '॥', '።', '፧', '։',
    '၊', '။', '᙮', '⁉',
];

/// Lines at most this long (in characters) are "short" (FineWeb's `short_line_length`).
pub const SHORT_LINE_CHARS: usize = 30;

/// Every signal of one document. Fractions are in [0, 1]; a document without words or
/// lines gets zeros rather than NaN.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signals {
    /// Words that are not pure punctuation.
    pub words: u32,
    /// Mean length, in characters, of those words.
    pub mean_word_length: f64,
    /// (`#` + ellipses) per word.
    pub symbol_word_ratio: f64,
    /// Lines whose first non-blank character is a bullet (`•`, `-`, `*`, `‣`, `●`).
    pub bullet_line_frac: f64,
    /// Lines ending with `...` or `…`.
    pub ellipsis_line_frac: f64,
    /// Words with at least one alphabetic character, per word.
    pub alpha_word_frac: f64,
    /// Occurrences of [`STOP_WORDS`] (case-insensitive).
    pub stop_words: u32,
    /// Paragraphs (split on blank lines) that repeat an earlier one, per paragraph...
    pub dup_paragraph_frac: f64,
    /// ...and their characters per character of the text.
    pub dup_paragraph_char_frac: f64,
    /// Lines that repeat an earlier line, per line...
    pub dup_line_frac: f64,
    /// ...and their characters per character of the text.
    pub dup_line_char_frac: f64,
    /// Characters covered by the most frequent 2-, 3- and 4-gram of words (its length
    /// times its count), per character of the text.
    pub top_ngram_char_frac: [f64; 3],
    /// Characters in repeated 5- to 10-grams of words, per character of the text.
    pub dup_ngram_char_frac: [f64; 6],
    /// Lines ending with [`TERMINAL_PUNCTUATION`], per line.
    pub terminal_punct_line_frac: f64,
    /// Lines of at most [`SHORT_LINE_CHARS`] characters, per line.
    pub short_line_frac: f64,
    /// Newlines per word.
    pub newline_ratio: f64,
    /// Characters of lines that repeat an earlier line, per non-newline character
    /// (FineWeb's `char_duplicates_ratio`).
    pub dup_line_char_frac_no_newlines: f64,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn is_punct(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace()
}

/// The word tokens of `text`: whitespace-separated, with leading and trailing punctuation
/// split into one token per character.
pub fn words(text: &str) -> Vec<&str> {
    let chars_of = |s: &'_ str| -> Vec<(usize, usize)> {
        s.char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect()
    };
    let mut out = Vec::new();
    for raw in text.split_whitespace() {
        let Some(start) = raw.find(|c: char| !is_punct(c)) else {
            out.extend(chars_of(raw).into_iter().map(|(a, b)| &raw[a..b]));
            continue;
        };
        let last = raw.rfind(|c: char| !is_punct(c)).unwrap_or(start);
        let end = last + raw[last..].chars().next().map_or(1, char::len_utf8);
        out.extend(chars_of(&raw[..start]).into_iter().map(|(a, b)| &raw[a..b]));
        out.push(&raw[start..end]);
        out.extend(
            chars_of(&raw[end..])
                .into_iter()
                .map(|(a, b)| &raw[end + a..end + b]),
        );
    }
    out
}

/// How many of `items` repeat an earlier item, and their total length in characters.
fn duplicates<'a>(items: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut count, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(item) {
            count += 1;
            chars += item.chars().count();
        }
    }
    (count, chars)
}

/// Characters covered by the most frequent `n`-gram (joined with spaces) times its count.
fn top_ngram_chars(words: &[&str], n: usize) -> usize {
    if words.len() < n {
        return 0;
    }
    let mut counts: HashMap<Vec<&str>, usize> = HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram.to_vec()).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, c)| *c > 1)
        .map(|(gram, c)| (gram.iter().map(|w| w.chars().count()).sum::<usize>() + n - 1) * c)
        .max()
        .unwrap_or(0)
}

/// Characters in `n`-grams that repeat an earlier one, scanning left to right and
/// jumping past a repeat (so overlapping repeats are not counted twice), as Gopher.
fn repeated_ngram_chars(words: &[&str], n: usize) -> usize {
    let mut seen = HashSet::new();
    let (mut chars, mut i) = (0, 0);
    while i + n <= words.len() {
        let gram = &words[i..i + n];
        if seen.contains(gram) {
            chars += gram.iter().map(|w| w.chars().count()).sum::<usize>();
            i += n;
        } else {
            seen.insert(gram);
            i += 1;
        }
    }
    chars
}

/// Computes every signal of `text`.
pub fn compute(text: &str) -> Signals {
    let tokens = words(text);
    let real: Vec<&str> = tokens
        .iter()
        .copied()
        .filter(|w| w.chars().any(|c| !is_punct(c)))
        .collect();
    let n_words = real.len();
    let chars = text.chars().count();
    let lines: Vec<&str> = text.lines().collect();
    let nonempty_lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    let paragraphs: Vec<&str> = text
        .trim()
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.is_empty())
        .collect();
    let (dup_paras, dup_para_chars) = duplicates(paragraphs.iter().copied());
    let (dup_lines, dup_line_chars) = duplicates(nonempty_lines.iter().copied());
    let ellipses = text.matches("...").count() + text.matches('…').count();
    let bullets = lines
        .iter()
        .filter(|l| l.trim_start().starts_with(['•', '-', '*', '‣', '●']))
        .count();
    let ellipsis_lines = lines
        .iter()
        .filter(|l| {
            let l = l.trim_end();
            l.ends_with("...") || l.ends_with('…')
        })
        .count();
    let terminal = nonempty_lines
        .iter()
        .filter(|l| l.trim_end().ends_with(TERMINAL_PUNCTUATION))
        .count();
    let short = nonempty_lines
        .iter()
        .filter(|l| l.trim().chars().count() <= SHORT_LINE_CHARS)
        .count();
    let lower: Vec<String> = real.iter().map(|w| w.to_lowercase()).collect();
    let word_refs: Vec<&str> = lower.iter().map(String::as_str).collect();
    let top = [2, 3, 4].map(|n| ratio(top_ngram_chars(&word_refs, n), chars));
    let dup = [5, 6, 7, 8, 9, 10].map(|n| ratio(repeated_ngram_chars(&word_refs, n), chars));
    let no_newline_chars = chars - text.matches('\n').count();
    Signals {
        words: n_words as u32,
        mean_word_length: if n_words == 0 {
            0.0
        } else {
            real.iter().map(|w| w.chars().count()).sum::<usize>() as f64 / n_words as f64
        },
        symbol_word_ratio: ratio(text.matches('#').count() + ellipses, n_words),
        bullet_line_frac: ratio(bullets, lines.len()),
        ellipsis_line_frac: ratio(ellipsis_lines, lines.len()),
        alpha_word_frac: ratio(
            real.iter()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count(),
            n_words,
        ),
        stop_words: lower
            .iter()
            .filter(|w| STOP_WORDS.contains(&w.as_str()))
            .count() as u32,
        dup_paragraph_frac: ratio(dup_paras, paragraphs.len()),
        dup_paragraph_char_frac: ratio(dup_para_chars, chars),
        dup_line_frac: ratio(dup_lines, nonempty_lines.len()),
        dup_line_char_frac: ratio(dup_line_chars, chars),
        top_ngram_char_frac: top,
        dup_ngram_char_frac: dup,
        terminal_punct_line_frac: ratio(terminal, nonempty_lines.len()),
        short_line_frac: ratio(short, nonempty_lines.len()),
        newline_ratio: ratio(text.matches('\n').count(), n_words),
        dup_line_char_frac_no_newlines: ratio(dup_line_chars, no_newline_chars),
    }
}

/// The language of `text` (ISO 639-3 code) and the detector's confidence in [0, 1];
/// `("und", 0.0)` when no language can be told.
pub fn language(text: &str) -> (&'static str, f64) {
    whatlang::detect(text).map_or(("und", 0.0), |info| (info.lang().code(), info.confidence()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn punctuation_is_split_off_words() {
        assert_eq!(
            words("Hello, world... (yes)"),
            ["Hello", ",", "world", ".", ".", ".", "(", "yes", ")"]
        );
        assert_eq!(words("café — naïve"), ["café", "—", "naïve"]);
        assert_eq!(words("don't"), ["don't"]);
    }

    #[test]
    fn word_counts_and_lengths() {
        // Words: The(3) cat(3) sat(3) on(2) the(3) mat(3); "." is punctuation.
        let s = compute("The cat sat on the mat.");
        assert_eq!(s.words, 6);
        assert!(close(s.mean_word_length, 17.0 / 6.0));
        assert_eq!(s.stop_words, 2);
        assert!(close(s.alpha_word_frac, 1.0));
        assert!(close(s.terminal_punct_line_frac, 1.0));
        assert!(close(s.newline_ratio, 0.0));
    }

    #[test]
    fn non_ascii_text_counts_characters_not_bytes() {
        // Two words of 4 and 5 characters (7 and 6 bytes in UTF-8).
        let s = compute("日本語の 漢字テスト。");
        assert_eq!(s.words, 2);
        assert!(close(s.mean_word_length, 4.5));
        assert!(close(s.terminal_punct_line_frac, 1.0));
        let s = compute("Größe über Maß");
        assert_eq!(s.words, 3);
        assert!(close(s.mean_word_length, 4.0));
    }

    #[test]
    fn symbols_bullets_and_ellipses() {
        let text = "- one #tag\n• two...\nthree …\nfour";
        let s = compute(text);
        // Words: one tag two three four = 5; symbols: one '#', two ellipses.
        assert!(close(s.symbol_word_ratio, 3.0 / 5.0));
        assert!(close(s.bullet_line_frac, 2.0 / 4.0));
        assert!(close(s.ellipsis_line_frac, 2.0 / 4.0));
        assert!(close(s.newline_ratio, 3.0 / 5.0));
        // Only "two..." and "three …" end with terminal punctuation.
        assert!(close(s.terminal_punct_line_frac, 2.0 / 4.0));
        assert!(close(s.short_line_frac, 1.0));
    }

    #[test]
    fn duplicate_lines_and_paragraphs() {
        let text = "alpha line\nbeta\nalpha line\n\nbeta\n\nalpha line\nbeta\nalpha line";
        let s = compute(text);
        // Non-empty lines: alpha line, beta, alpha line, beta, alpha line, beta, alpha line
        // -> 5 repeats of 7 lines; repeated characters: 3 * 10 + 2 * 4 = 38.
        assert!(close(s.dup_line_frac, 5.0 / 7.0));
        let chars = text.chars().count() as f64;
        assert!(close(s.dup_line_char_frac, 38.0 / chars));
        assert!(close(
            s.dup_line_char_frac_no_newlines,
            38.0 / (chars - 8.0)
        ));
        // Paragraphs: "alpha line\nbeta\nalpha line", "beta", "alpha line\nbeta\nalpha line".
        assert!(close(s.dup_paragraph_frac, 1.0 / 3.0));
        assert!(close(s.dup_paragraph_char_frac, 26.0 / chars));
    }

    #[test]
    fn repeated_ngrams() {
        let text = "a b c d e a b c d e a b c d e";
        let s = compute(text);
        let chars = text.chars().count() as f64; // 29
        // Top bigram "a b" (3 chars) occurs 3 times.
        assert!(close(s.top_ngram_char_frac[0], 9.0 / chars));
        // 5-grams: "abcde" seen at 0, repeats at 5 and 10 -> 2 * 5 characters.
        assert!(close(s.dup_ngram_char_frac[0], 10.0 / chars));
        // 10-grams: words 5..15 repeat words 0..10 once -> 10 characters.
        assert!(close(s.dup_ngram_char_frac[5], 10.0 / chars));
        let plain = compute("every word here differs from all others");
        assert_eq!(plain.top_ngram_char_frac, [0.0; 3]);
        assert_eq!(plain.dup_ngram_char_frac, [0.0; 6]);
    }

    #[test]
    fn empty_text_is_all_zero() {
        assert_eq!(compute(""), Signals::default());
    }

    #[test]
    fn languages_are_told_apart() {
        let (en, conf) =
            language("The quick brown fox jumps over the lazy dog near the river bank.");
        assert_eq!(en, "eng");
        assert!(conf > 0.0 && conf <= 1.0);
        assert_eq!(
            language("Der schnelle braune Fuchs springt über den faulen Hund.").0,
            "deu"
        );
        assert_eq!(language("").0, "und");
    }
}
