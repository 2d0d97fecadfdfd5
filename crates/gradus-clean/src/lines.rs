//! C4 line-level cleaning (Raffel et al. 2020, section 2.2), with the defaults and order of
//! datatrove's `C4QualityFilter` (`datatrove/pipeline/filters/c4_filters.py`):
//!
//! each line is stripped, then dropped if it has a word over 1,000 characters, loses its
//! citation markers (`[1]`, `[edit]`, `[citation needed]`), is dropped if it does not end
//! in terminal punctuation (or ends in an ellipsis), has fewer than 3 words, mentions
//! "javascript" or a cookie / terms-of-use / privacy policy. A line containing
//! "lorem ipsum" or `{` condemns the whole document, and a document left with fewer than
//! 5 sentences fails the `c4` filter. Those verdicts come out as signals
//! ([`LineCleaning`]); the filter itself is SQL over them (see `filters`).

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Lines containing any of these (lower-cased) are boilerplate.
pub const POLICY_SUBSTRINGS: [&str; 6] = [
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
];

/// Characters a kept line must end with (C4's `! . " ?`, plus `'` as datatrove).
const END_PUNCTUATION: [char; 5] = ['.', '?', '!', '"', '\''];

static CITATION: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a literal pattern, covered by the tests
    Regex::new(r"\[\d*\]|\[edit\]|\[citation needed\]").unwrap()
});

/// Settings of the line cleaning step (`[lines]` in the pipeline TOML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineConfig {
    /// Run the step at all (on by default, as in C4; FineWeb runs it too).
    pub enabled: bool,
    /// Drop lines that do not end in terminal punctuation (FineWeb turns this off).
    pub require_terminal_punct: bool,
    /// Lines with fewer words are dropped.
    pub min_words_per_line: usize,
    /// Lines with a longer word (in characters) are dropped.
    pub max_word_length: usize,
    pub remove_citations: bool,
    pub drop_javascript: bool,
    pub drop_policy: bool,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            require_terminal_punct: true,
            min_words_per_line: 3,
            max_word_length: 1000,
            remove_citations: true,
            drop_javascript: true,
            drop_policy: true,
        }
    }
}

/// The cleaned text and what the cleaning saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineCleaning {
    pub text: String,
    /// Lines removed (blank lines are not counted).
    pub lines_removed: u32,
    /// Sentences in the kept lines.
    pub sentences: u32,
    /// A kept line mentions "lorem ipsum".
    pub lorem_ipsum: bool,
    /// A kept line contains `{` (code or template residue).
    pub curly_bracket: bool,
}

impl LineConfig {
    /// Cleans `text` line by line; kept lines are joined with `\n`.
    pub fn apply(&self, text: &str) -> LineCleaning {
        let mut out = LineCleaning::default();
        let mut kept: Vec<String> = Vec::new();
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            match self.keep_line(line, &mut out) {
                Some(line) => {
                    out.sentences += count_sentences(&line);
                    kept.push(line);
                }
                None => out.lines_removed += 1,
            }
        }
        out.text = kept.join("\n");
        out
    }

    /// The line as kept, or `None` to drop it; flags document-level verdicts in `out`.
    fn keep_line(&self, line: &str, out: &mut LineCleaning) -> Option<String> {
        let words = line.split_whitespace().count();
        if line
            .split_whitespace()
            .any(|w| w.chars().count() > self.max_word_length)
        {
            return None;
        }
        let line = if self.remove_citations && line.contains('[') {
            CITATION.replace_all(line, "").into_owned()
        } else {
            line.to_owned()
        };
        if self.require_terminal_punct
            && (!line.ends_with(END_PUNCTUATION) || line.ends_with("..."))
        {
            return None;
        }
        if words < self.min_words_per_line {
            return None;
        }
        // The phrases looked for are ASCII, so ASCII case folding finds them all.
        let lower = line.to_ascii_lowercase();
        if lower.contains("lorem ipsum") {
            out.lorem_ipsum = true;
        }
        if self.drop_javascript && lower.contains("javascript") {
            return None;
        }
        if line.contains('{') {
            out.curly_bracket = true;
        }
        if self.drop_policy && POLICY_SUBSTRINGS.iter().any(|p| lower.contains(p)) {
            return None;
        }
        Some(line)
    }
}

/// Sentences in a line: runs of `.`, `!`, `?` (or their CJK forms) followed by a space or
/// the end of the line; a line without any still counts as one.
pub fn count_sentences(line: &str) -> u32 {
    let mut count = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '。' | '！' | '？') {
            // CJK text puts no space after a full stop.
            count += 1;
        } else if matches!(c, '.' | '!' | '?') {
            while chars.next_if(|n| matches!(n, '.' | '!' | '?')).is_some() {}
            match chars.peek() {
                None => count += 1,
                Some(n) if n.is_whitespace() || matches!(n, '"' | '\'' | ')') => count += 1,
                _ => {}
            }
        }
    }
    count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_c4_lines() {
        let text = "A good line with words.\n\
                    no terminal punctuation here\n\
                    Too short.\n\
                    Please enable JavaScript to view this page.\n\
                    This site uses cookies to work.\n\
                    Cited fact here.[1] And more text follows[citation needed].\n\
                    It trails off...";
        let c = LineConfig::default().apply(text);
        assert_eq!(
            c.text,
            "A good line with words.\nCited fact here. And more text follows."
        );
        assert_eq!(c.lines_removed, 5);
        assert_eq!(c.sentences, 3);
        assert!(!c.lorem_ipsum && !c.curly_bracket);
    }

    #[test]
    fn document_verdicts() {
        let c = LineConfig::default().apply("Lorem ipsum dolor sit amet.\nvar x = {a: 1};");
        assert!(c.lorem_ipsum);
        // The `{` line lacks terminal punctuation after `;`, so it is dropped first.
        assert!(!c.curly_bracket);
        let c = LineConfig::default().apply("Use {braces} in your templates.");
        assert!(c.curly_bracket);
    }

    #[test]
    fn terminal_punctuation_can_be_optional() {
        let cfg = LineConfig {
            require_terminal_punct: false,
            ..LineConfig::default()
        };
        assert_eq!(
            cfg.apply("no punctuation at all").text,
            "no punctuation at all"
        );
    }

    #[test]
    fn sentences() {
        assert_eq!(count_sentences("One. Two! Three?"), 3);
        assert_eq!(count_sentences("Version 2.5 is out."), 1);
        assert_eq!(count_sentences("Wait... what?!"), 2);
        assert_eq!(count_sentences("no end mark"), 1);
        assert_eq!(count_sentences("句子一。句子二。"), 2);
    }
}
