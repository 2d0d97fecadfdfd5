//! The prompt template of instruction examples: how a prompt and its response become
//! one token sequence. Training and generation both go through [`Template::encode_prompt`],
//! so a model sees at generation exactly the prompt tokens it was trained on.

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{Result, TokenizeError};
use crate::special::{Role, SpecialTokens};

/// The placeholder a template puts the prompt at.
pub const PROMPT: &str = "{prompt}";

/// A prompt template and the token that ends a response; saved as `instruction.json`
/// beside instruction examples and with the fine-tuned model (`gradus_task.template`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Text around the prompt, with one `{prompt}`: `"Q: {prompt}\nA: "`.
    pub text: String,
    /// The token after every response (a generated answer ends there): its text in the
    /// tokenizer's vocabulary.
    pub eos: String,
}

/// A template and the tokenizer's ids for it, checked.
#[derive(Debug, Clone)]
pub struct TemplateEncoder<'a> {
    tokenizer: &'a Tokenizer,
    template: &'a Template,
    /// The id of `template.eos`.
    pub eos: u32,
}

impl Template {
    /// `text`, ended by `eos` or, when `eos` is `None`, by the tokenizer's end-of-text
    /// token; refused unless `text` has exactly one `{prompt}`.
    pub fn new(text: &str, eos: Option<&str>, tokenizer: &Tokenizer) -> Result<Self> {
        let eos = match eos {
            Some(eos) => eos.to_string(),
            None => {
                let id = SpecialTokens::of(tokenizer).require(
                    Role::Eos,
                    "an instruction template (or name one with `eos = \"...\"`)",
                )?;
                tokenizer.id_to_token(id).unwrap_or_default()
            }
        };
        let template = Self {
            text: text.to_string(),
            eos,
        };
        template.encoder(tokenizer)?;
        Ok(template)
    }

    /// The template bound to `tokenizer`, after checking that it has one `{prompt}` and
    /// that `eos` is one token of it.
    pub fn encoder<'a>(&'a self, tokenizer: &'a Tokenizer) -> Result<TemplateEncoder<'a>> {
        if self.text.matches(PROMPT).count() != 1 {
            return Err(TokenizeError::Config(format!(
                "template {:?}: put `{PROMPT}` in it exactly once",
                self.text
            )));
        }
        let eos = tokenizer.token_to_id(&self.eos).ok_or_else(|| {
            TokenizeError::Config(format!(
                "eos {:?} is not a token of the tokenizer: name one it has",
                self.eos
            ))
        })?;
        Ok(TemplateEncoder {
            tokenizer,
            template: self,
            eos,
        })
    }

    /// The text the model reads before a response to `prompt`.
    pub fn apply(&self, prompt: &str) -> String {
        self.text.replacen(PROMPT, prompt, 1)
    }
}

impl TemplateEncoder<'_> {
    fn ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| TokenizeError::tk("encoding an instruction", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The tokens of `prompt` in the template: what generation continues.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        self.ids(&self.template.apply(prompt))
    }

    /// The templated prompt, the response and the end token as one sequence, with its
    /// segments: 0 for prompt tokens, 1 for the response and its end (the tokens a loss
    /// counts).
    pub fn encode(&self, prompt: &str, response: &str) -> Result<(Vec<u32>, Vec<u8>)> {
        let mut ids = self.encode_prompt(prompt)?;
        let prompt_len = ids.len();
        ids.extend(self.ids(response)?);
        ids.push(self.eos);
        let mut segments = vec![0u8; prompt_len];
        segments.resize(ids.len(), 1);
        Ok((ids, segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::char_tokenizer;

    fn tokenizer() -> Tokenizer {
        char_tokenizer(["Q: reverse abc\nA: cba"].iter(), &["<|endoftext|>".into()]).unwrap()
    }

    #[test]
    fn the_prompt_of_training_is_the_prompt_of_generation() {
        let tk = tokenizer();
        let t = Template::new("Q: {prompt}\nA: ", None, &tk).unwrap();
        assert_eq!(t.eos, "<|endoftext|>");
        let enc = t.encoder(&tk).unwrap();
        let (ids, segments) = enc.encode("reverse abc", "cba").unwrap();
        let prompt = enc.encode_prompt("reverse abc").unwrap();
        assert_eq!(&ids[..prompt.len()], prompt.as_slice());
        assert_eq!(prompt.len(), "Q: reverse abc\nA: ".len());
        assert_eq!(ids.len(), prompt.len() + 4);
        assert_eq!(ids.last(), Some(&enc.eos));
        assert!(segments[..prompt.len()].iter().all(|&s| s == 0));
        assert!(segments[prompt.len()..].iter().all(|&s| s == 1));
    }

    #[test]
    fn a_template_needs_one_prompt_and_a_known_end_token() {
        let tk = tokenizer();
        let err = Template::new("Q: \nA: ", None, &tk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly once"), "{err}");
        let err = Template::new("{prompt}", Some("<eos>"), &tk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"<eos>\" is not a token"), "{err}");
        let plain = char_tokenizer(["abc"].iter(), &[]).unwrap();
        let err = Template::new("{prompt}", None, &plain)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no end-of-text (eos) token"), "{err}");
        assert_eq!(
            Template::new("{prompt}", Some("c"), &plain).unwrap().eos,
            "c"
        );
    }
}
