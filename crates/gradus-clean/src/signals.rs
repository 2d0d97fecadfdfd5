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

use xxhash_rust::xxh3::xxh3_64;

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
    /// The larger of `#` per word and ellipses (`...`, `…`) per word (Gopher drops a
    /// document when either exceeds 0.1).
    pub symbol_word_ratio: f64,
    /// Lines whose first non-blank character is a bullet (`•`, `-`, `*`, `‣`, `●`).
    pub bullet_line_frac: f64,
    /// Lines ending with `...` or `…`.
    pub ellipsis_line_frac: f64,
    /// Words with at least one alphabetic character, per word token, punctuation tokens
    /// included (as datatrove's Gopher filter divides by every token).
    pub alpha_word_frac: f64,
    /// Distinct [`STOP_WORDS`] present (case-insensitive); Gopher wants at least two.
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

/// The words of [`words`] that are not punctuation, without building the rest: the
/// core of each whitespace token once its leading and trailing punctuation is trimmed.
fn real_words(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .map(|t| t.trim_matches(is_punct))
        .filter(|core| !core.is_empty())
        .collect()
}

/// How many tokens [`words`] would give, without building them: a whitespace token is
/// its core plus one token per leading or trailing punctuation character.
fn token_count(text: &str) -> usize {
    text.split_whitespace()
        .map(|t| {
            let core = t.trim_matches(is_punct);
            t.chars().count() - core.chars().count() + usize::from(!core.is_empty())
        })
        .sum()
}

/// How many of `items` repeat an earlier item, and their total length in characters.
fn duplicates<'a>(items: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = ahash::AHashSet::with_capacity(items.size_hint().0);
    let (mut count, mut chars) = (0, 0);
    for item in items {
        if !seen.insert(item) {
            count += 1;
            chars += item.chars().count();
        }
    }
    (count, chars)
}

/// A word n-gram as one 64-bit key: the word hashes mixed in order (collisions between
/// the few thousand n-grams of a document are negligible at 64 bits).
fn ngram_keys(hashes: &[u64], n: usize) -> impl Iterator<Item = u64> + '_ {
    hashes.windows(n).map(|w| {
        w.iter().fold(0xcbf2_9ce4_8422_2325_u64, |acc, h| {
            (acc ^ h)
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(29)
        })
    })
}

/// Characters covered by the most frequent `n`-gram (joined with spaces) times its count;
/// an n-gram seen once counts too, as in datatrove, so a very short text scores high here.
fn top_ngram_chars(hashes: &[u64], lens: &[usize], n: usize) -> usize {
    if hashes.len() < n {
        return 0;
    }
    let mut counts: ahash::AHashMap<u64, (usize, usize)> =
        ahash::AHashMap::with_capacity(hashes.len());
    for (i, key) in ngram_keys(hashes, n).enumerate() {
        counts.entry(key).or_insert((0, i)).0 += 1;
    }
    counts
        .values()
        .map(|&(c, first)| (lens[first..first + n].iter().sum::<usize>() + n - 1) * c)
        .max()
        .unwrap_or(0)
}

/// Characters in `n`-grams that repeat an earlier one, scanning left to right and
/// jumping past a repeat (so overlapping repeats are not counted twice), as Gopher.
fn repeated_ngram_chars(hashes: &[u64], lens: &[usize], n: usize) -> usize {
    if hashes.len() < n {
        return 0;
    }
    let keys: Vec<u64> = ngram_keys(hashes, n).collect();
    let mut seen = ahash::AHashSet::with_capacity(keys.len());
    let (mut chars, mut i) = (0, 0);
    while i < keys.len() {
        if seen.contains(&keys[i]) {
            chars += lens[i..i + n].iter().sum::<usize>();
            i += n;
        } else {
            seen.insert(keys[i]);
            i += 1;
        }
    }
    chars
}

/// Computes every signal of `text`.
pub fn compute(text: &str) -> Signals {
    let real = real_words(text);
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
    let line = line_signals_of(text, n_words, &nonempty_lines, dup_line_chars, chars);
    let hashes: Vec<u64> = real.iter().map(|w| lowercase_hash(w)).collect();
    let lens: Vec<usize> = real.iter().map(|w| w.chars().count()).collect();
    let top = [2, 3, 4].map(|n| ratio(top_ngram_chars(&hashes, &lens, n), chars));
    let dup = [5, 6, 7, 8, 9, 10].map(|n| ratio(repeated_ngram_chars(&hashes, &lens, n), chars));
    Signals {
        words: n_words as u32,
        mean_word_length: if n_words == 0 {
            0.0
        } else {
            lens.iter().sum::<usize>() as f64 / n_words as f64
        },
        symbol_word_ratio: ratio(text.matches('#').count(), n_words).max(ratio(ellipses, n_words)),
        bullet_line_frac: ratio(bullets, lines.len()),
        ellipsis_line_frac: ratio(ellipsis_lines, lines.len()),
        alpha_word_frac: ratio(
            real.iter()
                .filter(|w| w.chars().any(char::is_alphabetic))
                .count(),
            token_count(text),
        ),
        stop_words: STOP_WORDS
            .iter()
            .filter(|s| real.iter().any(|w| w.eq_ignore_ascii_case(s)))
            .count() as u32,
        dup_paragraph_frac: ratio(dup_paras, paragraphs.len()),
        dup_paragraph_char_frac: ratio(dup_para_chars, chars),
        dup_line_frac: ratio(dup_lines, nonempty_lines.len()),
        dup_line_char_frac: ratio(dup_line_chars, chars),
        top_ngram_char_frac: top,
        dup_ngram_char_frac: dup,
        terminal_punct_line_frac: line.terminal_punct_line_frac,
        short_line_frac: line.short_line_frac,
        newline_ratio: line.newline_ratio,
        dup_line_char_frac_no_newlines: line.dup_line_char_frac_no_newlines,
    }
}

/// A word's hash, case-folded (allocating only for words with capitals).
fn lowercase_hash(word: &str) -> u64 {
    if word.chars().any(char::is_uppercase) {
        xxh3_64(word.to_lowercase().as_bytes())
    } else {
        xxh3_64(word.as_bytes())
    }
}

/// FineWeb's four line signals, which the clean stage takes from the text after line
/// cleaning (as datatrove runs `FineWebQualityFilter` after `C4QualityFilter`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LineSignals {
    pub terminal_punct_line_frac: f64,
    pub short_line_frac: f64,
    pub newline_ratio: f64,
    pub dup_line_char_frac_no_newlines: f64,
}

/// [`LineSignals`] of `text`.
pub fn line_signals(text: &str) -> LineSignals {
    let n_words = text
        .split_whitespace()
        .filter(|t| t.chars().any(|c| !is_punct(c)))
        .count();
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    let (_, dup_chars) = duplicates(lines.iter().copied());
    line_signals_of(text, n_words, &lines, dup_chars, text.chars().count())
}

/// The line signals from parts [`compute`] has already worked out: the non-empty lines,
/// the characters of repeated lines and the text's length in characters.
fn line_signals_of(
    text: &str,
    n_words: usize,
    lines: &[&str],
    dup_chars: usize,
    chars: usize,
) -> LineSignals {
    let terminal = lines
        .iter()
        .filter(|l| l.trim_end().ends_with(TERMINAL_PUNCTUATION))
        .count();
    let short = lines
        .iter()
        .filter(|l| l.trim().chars().count() <= SHORT_LINE_CHARS)
        .count();
    let newlines = text.matches('\n').count();
    LineSignals {
        terminal_punct_line_frac: ratio(terminal, lines.len()),
        short_line_frac: ratio(short, lines.len()),
        newline_ratio: ratio(newlines, n_words),
        dup_line_char_frac_no_newlines: ratio(dup_chars, chars - newlines),
    }
}

/// Bytes of a document the language detector reads: the first 2 kB (300 words or so)
/// decide as well as the whole and keep long documents from dominating the stage's time.
pub const LANGUAGE_SAMPLE_BYTES: usize = 2_000;

/// The language of `text` (ISO 639-1 code where one exists, as fastText and FineWeb
/// write them, else ISO 639-3) and whatlang's confidence in [0, 1]; `("und", 0.0)` when
/// no language can be told.
pub fn language(text: &str) -> (&'static str, f64) {
    let mut end = text.len().min(LANGUAGE_SAMPLE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    whatlang::detect(&text[..end]).map_or(("und", 0.0), |info| {
        (iso639_1(info.lang().code()), info.confidence())
    })
}

/// ISO 639-3 codes of whatlang's languages to ISO 639-1 (unchanged where none exists).
fn iso639_1(code: &'static str) -> &'static str {
    #[rustfmt::skip]
    const TABLE: [(&str, &str); 69] = [
        ("afr", "af"), ("aka", "ak"), ("amh", "am"), ("ara", "ar"), ("aze", "az"),
        ("bel", "be"), ("ben", "bn"), ("bul", "bg"), ("cat", "ca"), ("ces", "cs"),
        ("cmn", "zh"), ("cym", "cy"), ("dan", "da"), ("deu", "de"), ("ell", "el"),
        ("eng", "en"), ("epo", "eo"), ("est", "et"), ("fin", "fi"), ("fra", "fr"),
        ("guj", "gu"), ("heb", "he"), ("hin", "hi"), ("hrv", "hr"), ("hun", "hu"),
        ("hye", "hy"), ("ind", "id"), ("ita", "it"), ("jav", "jv"), ("jpn", "ja"),
        ("kan", "kn"), ("kat", "ka"), ("khm", "km"), ("kor", "ko"), ("lat", "la"),
        ("lav", "lv"), ("lit", "lt"), ("mal", "ml"), ("mar", "mr"), ("mkd", "mk"),
        ("mya", "my"), ("nep", "ne"), ("nld", "nl"), ("nob", "nb"), ("ori", "or"),
        ("pan", "pa"), ("pes", "fa"), ("pol", "pl"), ("por", "pt"), ("ron", "ro"),
        ("rus", "ru"), ("sin", "si"), ("slk", "sk"), ("slv", "sl"), ("sna", "sn"),
        ("spa", "es"), ("srp", "sr"), ("swe", "sv"), ("tam", "ta"), ("tel", "te"),
        ("tgl", "tl"), ("tha", "th"), ("tuk", "tk"), ("tur", "tr"), ("ukr", "uk"),
        ("urd", "ur"), ("uzb", "uz"), ("vie", "vi"), ("yid", "yi"),
    ];
    TABLE
        .iter()
        .find(|(three, _)| *three == code)
        .map_or(code, |(_, two)| two)
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
    fn real_words_are_the_non_punctuation_words() {
        let text = "Hello, world... (yes) -- a-b “quoted” 日本語。 ...";
        let want: Vec<&str> = words(text)
            .into_iter()
            .filter(|w| w.chars().any(|c| !is_punct(c)))
            .collect();
        assert_eq!(real_words(text), want);
        assert_eq!(token_count(text), words(text).len());
        assert_eq!(want, ["Hello", "world", "yes", "a-b", "quoted", "日本語"]);
    }

    #[test]
    fn word_counts_and_lengths() {
        // Words: The(3) cat(3) sat(3) on(2) the(3) mat(3); "." is punctuation.
        let s = compute("The cat sat on the mat.");
        assert_eq!(s.words, 6);
        assert!(close(s.mean_word_length, 17.0 / 6.0));
        assert_eq!(s.stop_words, 1, "`the` twice is one distinct stop word");
        assert_eq!(compute("To be or not to be, that is it.").stop_words, 3);
        // Six alphabetic words among seven tokens: the full stop is a token.
        assert!(close(s.alpha_word_frac, 6.0 / 7.0));
        assert_eq!(token_count("\"Hi,\" -- 42 ok..."), 11);
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
        // Words: one tag two three four = 5; one '#', two ellipses: max(1/5, 2/5).
        assert!(close(s.symbol_word_ratio, 2.0 / 5.0));
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
        let chars = 39.0;
        // No n-gram repeats: the top one is the longest seen once ("differs from" etc.).
        assert!(close(plain.top_ngram_char_frac[0], 12.0 / chars));
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
        assert_eq!(en, "en");
        assert!(conf > 0.0 && conf <= 1.0);
        assert_eq!(
            language("Der schnelle braune Fuchs springt über den faulen Hund.").0,
            "de"
        );
        assert_eq!(language("").0, "und");
    }
}
