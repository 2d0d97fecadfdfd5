//! The special tokens a stage needs (classifier, separator, mask, padding, end of text,
//! unknown), found once for every stage from what the tokenizer says about them: its
//! post-processor (which tokens frame a sequence), its padding settings, and its added
//! special tokens by role. BERT spells the mask `[MASK]`, SentencePiece models `<mask>`,
//! GPT-2 ends text with `<|endoftext|>` and T5 with `</s>`: the role is what matters.

use serde_json::Value;
use tokenizers::Tokenizer;

/// Ids of the special tokens a tokenizer has, by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Opens a sequence (`[CLS]`, `<s>`).
    pub cls: Option<u32>,
    /// Ends a sequence or separates a pair (`[SEP]`, `</s>`).
    pub sep: Option<u32>,
    pub mask: Option<u32>,
    pub pad: Option<u32>,
    /// Ends a document (`<|endoftext|>`, `</s>`, `<eos>`).
    pub eos: Option<u32>,
    pub unk: Option<u32>,
}

/// A role a special token plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Cls,
    Sep,
    Mask,
    Pad,
    Eos,
    Unk,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Cls => "classifier (cls)",
            Self::Sep => "separator (sep)",
            Self::Mask => "mask",
            Self::Pad => "padding (pad)",
            Self::Eos => "end-of-text (eos)",
            Self::Unk => "unknown (unk)",
        }
    }

    /// The names a token of this role goes by once its brackets are stripped.
    fn names(self) -> &'static [&'static str] {
        match self {
            Self::Cls => &["cls", "s", "bos", "startoftext"],
            Self::Sep => &["sep", "/s", "eos"],
            Self::Mask => &["mask"],
            Self::Pad => &["pad", "padding"],
            Self::Eos => &["endoftext", "eos", "/s", "eot"],
            Self::Unk => &["unk", "unknown"],
        }
    }
}

impl SpecialTokens {
    /// The special tokens of `tokenizer`.
    pub fn of(tokenizer: &Tokenizer) -> Self {
        let framing = framing(tokenizer);
        let added = added_special(tokenizer);
        let by_role = |role: Role| {
            role.names().iter().find_map(|name| {
                added
                    .iter()
                    .find(|(_, content)| bare(content) == *name)
                    .map(|(id, _)| *id)
            })
        };
        let pad = tokenizer.get_padding().map(|p| p.pad_id);
        Self {
            cls: framing.0.or_else(|| by_role(Role::Cls)),
            sep: framing.1.or_else(|| by_role(Role::Sep)),
            mask: by_role(Role::Mask),
            pad: pad.or_else(|| by_role(Role::Pad)),
            eos: by_role(Role::Eos),
            unk: by_role(Role::Unk).or_else(|| model_unk(tokenizer)),
        }
    }

    /// The id of `role`, or an error saying that `needs` needs it.
    pub fn require(&self, role: Role, needs: &str) -> crate::Result<u32> {
        let id = match role {
            Role::Cls => self.cls,
            Role::Sep => self.sep,
            Role::Mask => self.mask,
            Role::Pad => self.pad,
            Role::Eos => self.eos,
            Role::Unk => self.unk,
        };
        id.ok_or_else(|| {
            crate::TokenizeError::Config(format!(
                "the tokenizer has no {} token, which {needs} needs",
                role.name()
            ))
        })
    }
}

/// A token's name without its brackets, lower-cased: `[MASK]`, `<mask>` → `mask`.
fn bare(content: &str) -> String {
    content
        .trim_matches(|c| matches!(c, '[' | ']' | '<' | '>' | '|'))
        .to_ascii_lowercase()
}

/// Added tokens marked special, by id, then bracketed tokens of the vocabulary (a
/// `vocab.txt` or an older `tokenizer.json` may hold `[MASK]` as a plain entry).
fn added_special(tokenizer: &Tokenizer) -> Vec<(u32, String)> {
    let mut added: Vec<(u32, String)> = tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(_, t)| t.special)
        .map(|(id, t)| (id, t.content))
        .collect();
    added.sort();
    let bracketed = |t: &str| {
        (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('<') && t.ends_with('>'))
    };
    let mut plain: Vec<(u32, String)> = tokenizer
        .get_vocab(false)
        .into_iter()
        .filter(|(t, _)| t.len() > 2 && bracketed(t))
        .map(|(t, id)| (id, t))
        .collect();
    plain.sort();
    added.extend(plain);
    added
}

/// The tokens the post-processor puts first and last around a single sequence.
fn framing(tokenizer: &Tokenizer) -> (Option<u32>, Option<u32>) {
    let Some(pp) = tokenizer.get_post_processor() else {
        return (None, None);
    };
    let Ok(json) = serde_json::to_value(pp) else {
        return (None, None);
    };
    framing_of(&json, tokenizer)
}

fn framing_of(pp: &Value, tokenizer: &Tokenizer) -> (Option<u32>, Option<u32>) {
    // BertProcessing and RobertaProcessing: `"cls": ["[CLS]", 101]`.
    let pair_id = |key: &str| pp.get(key)?.get(1)?.as_u64().map(|v| v as u32);
    if pp.get("cls").is_some() {
        return (pair_id("cls"), pair_id("sep"));
    }
    // A sequence of processors: the first that frames.
    if let Some(list) = pp.get("processors").and_then(Value::as_array) {
        return list
            .iter()
            .map(|p| framing_of(p, tokenizer))
            .find(|f| f.0.is_some() || f.1.is_some())
            .unwrap_or_default();
    }
    // TemplateProcessing: the special pieces before and after `$A`.
    let Some(single) = pp.get("single").and_then(Value::as_array) else {
        return (None, None);
    };
    let special = |piece: &Value| -> Option<u32> {
        let name = piece.get("SpecialToken")?.get("id")?.as_str()?;
        let ids = pp.pointer(&format!("/special_tokens/{}/ids", escape(name)));
        ids.and_then(|ids| ids.get(0)?.as_u64().map(|v| v as u32))
            .or_else(|| tokenizer.token_to_id(name))
    };
    let at = single.iter().position(|p| p.get("Sequence").is_some());
    let Some(at) = at else {
        return (None, None);
    };
    let first = single[..at].first().and_then(special);
    let last = single[at + 1..].last().and_then(special);
    (first, last)
}

/// A JSON pointer token: `~` and `/` escaped.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The model's own unknown token (WordPiece, BPE and Unigram models name one).
fn model_unk(tokenizer: &Tokenizer) -> Option<u32> {
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    if let Some(id) = model.get("unk_id").and_then(Value::as_u64) {
        return Some(id as u32);
    }
    let token = model.get("unk_token")?.as_str()?;
    tokenizer.token_to_id(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TokenizerKind, TrainConfig, train};

    const TEXT: &[&str] = &[
        "the cat sat on the mat",
        "a dog ran in the park",
        "the film was wonderful and moving",
    ];

    fn trained(kind: TokenizerKind) -> Tokenizer {
        let config = TrainConfig {
            kind,
            vocab_size: 120,
            ..TrainConfig::default()
        };
        train(&config, TEXT).unwrap()
    }

    #[test]
    fn wordpiece_roles_come_from_its_template() {
        let tk = trained(TokenizerKind::Wordpiece);
        let s = SpecialTokens::of(&tk);
        let id = |t| tk.token_to_id(t);
        assert_eq!(s.cls, id("[CLS]"));
        assert_eq!(s.sep, id("[SEP]"));
        assert_eq!(s.mask, id("[MASK]"));
        assert_eq!(s.pad, id("[PAD]"));
        assert_eq!(s.unk, id("[UNK]"));
        assert_eq!(s.eos, None);
    }

    #[test]
    fn unigram_roles_are_found_under_their_own_spelling() {
        let tk = trained(TokenizerKind::Unigram);
        let s = SpecialTokens::of(&tk);
        let id = |t| tk.token_to_id(t);
        assert_eq!(s.cls, id("<s>"));
        assert_eq!(s.sep, id("</s>"));
        assert_eq!(s.mask, id("<mask>"));
        assert_eq!(s.pad, id("<pad>"));
        assert_eq!(s.eos, id("</s>"));
        assert!(s.mask.is_some() && s.pad.is_some());
    }

    #[test]
    fn byte_bpe_ends_text_and_has_no_mask() {
        let tk = trained(TokenizerKind::ByteBpe);
        let s = SpecialTokens::of(&tk);
        assert_eq!(s.eos, tk.token_to_id("<|endoftext|>"));
        let e = s.require(Role::Mask, "MLM").unwrap_err().to_string();
        assert!(e.contains("no mask token, which MLM needs"), "{e}");
    }

    #[test]
    fn a_template_with_other_names_frames_by_position() {
        let mut tk = trained(TokenizerKind::Unigram);
        let template = tokenizers::processors::template::TemplateProcessing::builder()
            .try_single("<s> $A </s>")
            .unwrap()
            .special_tokens(vec![
                ("<s>", tk.token_to_id("<s>").unwrap()),
                ("</s>", tk.token_to_id("</s>").unwrap()),
            ])
            .build()
            .unwrap();
        tk.with_post_processor(Some(template));
        let s = SpecialTokens::of(&tk);
        assert_eq!(s.cls, tk.token_to_id("<s>"));
        assert_eq!(s.sep, tk.token_to_id("</s>"));
    }
}
