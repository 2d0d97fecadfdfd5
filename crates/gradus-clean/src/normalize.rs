//! Text normalisation: each step is named and switched on or off in the pipeline TOML
//! (`[normalize]`), and they always run in the order of the fields below.

use serde::{Deserialize, Serialize};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick, is_nfkc_quick};

/// The Unicode normal form applied first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnicodeForm {
    /// Leave code points as they are.
    None,
    /// Canonical composition: `e` + combining acute becomes `é`.
    Nfc,
    /// Compatibility composition as well: ligatures, full-width forms, `ﬁ` to `fi`.
    Nfkc,
}

/// Which normalisation steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    pub unicode: UnicodeForm,
    /// Drop control characters (Unicode `Cc` other than newline and tab) and the
    /// byte-order mark.
    pub strip_control: bool,
    /// `\r\n` and `\r` become `\n`; tabs and Unicode spaces become a space; runs of
    /// spaces collapse to one; lines lose trailing spaces; three or more newlines become
    /// two (a paragraph break); the text is trimmed.
    pub whitespace: bool,
    /// Lower-case everything (off by default: case carries information for a model).
    pub lowercase: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            unicode: UnicodeForm::Nfc,
            strip_control: true,
            whitespace: true,
            lowercase: false,
        }
    }
}

impl NormalizeConfig {
    /// No step on: the text passes through untouched.
    pub fn is_identity(&self) -> bool {
        self.unicode == UnicodeForm::None
            && !self.strip_control
            && !self.whitespace
            && !self.lowercase
    }

    /// Applies the enabled steps to `text`.
    pub fn apply(&self, text: &str) -> String {
        // The quick checks answer "already normalised" for nearly all text, without
        // the cost of recomposing it.
        let mut out: String = match self.unicode {
            UnicodeForm::None => text.to_owned(),
            UnicodeForm::Nfc if is_nfc_quick(text.chars()) == IsNormalized::Yes => text.to_owned(),
            UnicodeForm::Nfc => text.nfc().collect(),
            UnicodeForm::Nfkc if is_nfkc_quick(text.chars()) == IsNormalized::Yes => {
                text.to_owned()
            }
            UnicodeForm::Nfkc => text.nfkc().collect(),
        };
        if self.strip_control {
            out.retain(|c| !is_stripped_control(c));
        }
        if self.whitespace {
            out = normalize_whitespace(&out);
        }
        if self.lowercase {
            out = out.to_lowercase();
        }
        out
    }
}

fn is_stripped_control(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t' && c != '\r') || c == '\u{feff}'
}

/// See [`NormalizeConfig::whitespace`]. One pass: pending spaces and newlines are
/// written only when a visible character follows them.
fn normalize_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut space, mut newlines) = (false, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = if c == '\r' {
            // `\r\n` is one line break, a lone `\r` another.
            chars.next_if_eq(&'\n');
            '\n'
        } else {
            c
        };
        if c == '\n' {
            newlines += 1;
            space = false;
        } else if c.is_whitespace() {
            space = true;
        } else {
            if !out.is_empty() {
                match newlines {
                    0 if space => out.push(' '),
                    0 => {}
                    1 => out.push('\n'),
                    _ => out.push_str("\n\n"),
                }
            }
            out.push(c);
            (space, newlines) = (false, 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_steps() {
        let cfg = NormalizeConfig::default();
        // Decomposed é, a NUL, a BOM, CRLF, tabs, a no-break space, blank lines.
        let raw = "\u{feff}Cafe\u{301}\0 au\tlait \r\n\r\n\r\n  second\u{a0}\u{a0}line  \rthird";
        assert_eq!(cfg.apply(raw), "Café au lait\n\nsecond line\nthird");
    }

    #[test]
    fn nfkc_and_lowercase_are_opt_in() {
        let text = "ﬁne ＡＢＣ";
        assert_eq!(NormalizeConfig::default().apply(text), text);
        let cfg = NormalizeConfig {
            unicode: UnicodeForm::Nfkc,
            lowercase: true,
            ..NormalizeConfig::default()
        };
        assert_eq!(cfg.apply(text), "fine abc");
    }

    #[test]
    fn identity_changes_nothing() {
        let cfg = NormalizeConfig {
            unicode: UnicodeForm::None,
            strip_control: false,
            whitespace: false,
            lowercase: false,
        };
        assert!(cfg.is_identity());
        let raw = "a\r\n\tb\0";
        assert_eq!(cfg.apply(raw), raw);
    }
}
