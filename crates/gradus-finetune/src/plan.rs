//! Per-parameter learning rates: a head rate apart from the encoder's, layer-wise decay
//! (each layer down from the top gets `decay` times the rate of the one above), and
//! frozen embeddings or bottom layers.

use serde::{Deserialize, Serialize};

/// Which parameters train, and how fast relative to the schedule's rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrPlan {
    /// Encoder layers.
    pub layers: usize,
    /// Layer-wise decay factor; 1 switches it off.
    pub decay: f64,
    /// Head rate / encoder rate.
    pub head_scale: f64,
    pub freeze_embeddings: bool,
    /// Freeze encoder layers `0..freeze_layers`.
    pub freeze_layers: usize,
}

/// Where a parameter sits: the embeddings (0), encoder layer i (i + 1), the top of the
/// encoder (the pooler, `layers + 1`), or a task head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Encoder(usize),
    Head,
}

/// How each body names its parts (HF names): BERT, GPT-2, Llama.
const EMBEDDINGS: &[&str] = &[
    "embeddings.",
    "transformer.wte.",
    "transformer.wpe.",
    "model.embed_tokens.",
];
const LAYERS: &[&str] = &["encoder.layer.", "transformer.h.", "model.layers."];
const TOP: &[&str] = &["pooler.", "transformer.ln_f.", "model.norm.", "lm_head."];

/// The depth of a parameter from its (HF) name.
pub fn depth(name: &str, layers: usize) -> Depth {
    let body = name.strip_prefix("bert.").unwrap_or(name);
    if EMBEDDINGS.iter().any(|p| body.starts_with(p)) {
        return Depth::Encoder(0);
    }
    for prefix in LAYERS {
        if let Some(rest) = body.strip_prefix(prefix)
            && let Some(i) = rest.split('.').next().and_then(|i| i.parse::<usize>().ok())
        {
            return Depth::Encoder(i + 1);
        }
    }
    if TOP.iter().any(|p| body.starts_with(p)) {
        return Depth::Encoder(layers + 1);
    }
    Depth::Head
}

impl LrPlan {
    /// Name prefixes of the frozen parameters.
    /// Name prefixes of the frozen parameters, in every body's names (a name of another
    /// body's matches nothing).
    pub fn frozen_prefixes(&self) -> Vec<String> {
        let mut out: Vec<String> = (0..self.freeze_layers)
            .flat_map(|i| LAYERS.iter().map(move |l| format!("{l}{i}.")))
            .map(|p| match p.starts_with("encoder.") {
                true => format!("bert.{p}"),
                false => p,
            })
            .collect();
        if self.freeze_embeddings {
            out.push("bert.embeddings.".into());
            out.extend(EMBEDDINGS[1..].iter().map(|e| e.to_string()));
        }
        out
    }

    /// The learning-rate multiple of parameter `name`; `None` when it is frozen.
    pub fn scale(&self, name: &str) -> Option<f64> {
        match depth(name, self.layers) {
            Depth::Head => Some(self.head_scale),
            Depth::Encoder(0) if self.freeze_embeddings => None,
            Depth::Encoder(d) if d >= 1 && d <= self.freeze_layers => None,
            Depth::Encoder(d) => {
                let below_top = (self.layers + 1).saturating_sub(d);
                Some(self.decay.powi(below_top as i32))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_freezing_and_head_rate() {
        let plan = LrPlan {
            layers: 2,
            decay: 0.5,
            head_scale: 10.0,
            freeze_embeddings: false,
            freeze_layers: 1,
        };
        assert_eq!(plan.scale("classifier.weight"), Some(10.0));
        assert_eq!(plan.scale("bert.pooler.dense.weight"), Some(1.0));
        assert_eq!(
            plan.scale("bert.encoder.layer.1.output.dense.bias"),
            Some(0.5)
        );
        assert_eq!(plan.scale("bert.encoder.layer.0.output.dense.bias"), None);
        assert_eq!(
            plan.scale("bert.embeddings.word_embeddings.weight"),
            Some(0.125)
        );
        let frozen = LrPlan {
            freeze_embeddings: true,
            ..plan
        };
        assert_eq!(frozen.scale("embeddings.LayerNorm.weight"), None);
        // A decoder's names: GPT-2's and Llama's layers, embeddings and final norm.
        assert_eq!(
            frozen.scale("transformer.h.1.attn.c_attn.weight"),
            Some(0.5)
        );
        assert_eq!(frozen.scale("model.layers.0.mlp.up_proj.weight"), None);
        assert_eq!(frozen.scale("model.embed_tokens.weight"), None);
        assert_eq!(frozen.scale("transformer.ln_f.weight"), Some(1.0));
        let prefixes = frozen.frozen_prefixes();
        for p in [
            "bert.encoder.layer.0.",
            "transformer.h.0.",
            "model.layers.0.",
            "transformer.wte.",
        ] {
            assert!(prefixes.contains(&p.to_string()), "{prefixes:?}");
        }
    }
}
