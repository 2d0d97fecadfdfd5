//! Document filters: named SQL predicates over the signal columns, in order; a document
//! is dropped by the first one it fails, and that rule's name is its drop reason.
//!
//! The presets expand to the rules and thresholds their recipes publish:
//! - `gopher_repetition`, `gopher_quality`: Rae et al. 2021 ("Scaling Language Models:
//!   Methods, Analysis & Insights from Training Gopher"), table A1 and appendix A1.1;
//!   thresholds and rule order as datatrove `GopherRepetitionFilter` /
//!   `GopherQualityFilter` defaults;
//! - `c4`: Raffel et al. 2020, section 2.2, document-level verdicts of the line cleaning
//!   (datatrove `C4QualityFilter`: `lorem_ipsum`, `curly_bracket`, `too_few_sentences`);
//! - `fineweb`: Penedo et al. 2024, datatrove `FineWebQualityFilter` defaults
//!   (`line_punct_thr` 0.12, `short_line_thr` 0.67 at 30 characters,
//!   `char_duplicates_ratio` 0.01, `new_line_ratio` 0.3).
//!
//! Rule names are `preset.rule`; a user rule keeps the name it is given.

use serde::{Deserialize, Serialize};

/// A named keep-condition: documents for which `keep` is not true are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// SQL boolean expression over the signal columns.
    pub keep: String,
}

/// One entry of `filters` in the pipeline TOML: a preset's name, or a rule of one's own
/// (`{ name = "english", keep = "lang = 'en' AND lang_score > 0.65" }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FilterSpec {
    Preset(String),
    Rule(Rule),
}

/// The names `filters` accepts as presets.
pub const PRESETS: [&str; 4] = ["gopher_repetition", "gopher_quality", "c4", "fineweb"];

/// The filters of the default chain, in datatrove's FineWeb order.
pub fn default_filters() -> Vec<FilterSpec> {
    PRESETS
        .iter()
        .map(|p| FilterSpec::Preset((*p).into()))
        .collect()
}

/// The rules of a preset, or `None` for an unknown name.
pub fn preset(name: &str) -> Option<Vec<Rule>> {
    let rules: &[(&str, &str)] = match name {
        "gopher_repetition" => &[
            ("dup_paragraph_frac", "dup_paragraph_frac <= 0.3"),
            ("dup_paragraph_char_frac", "dup_paragraph_char_frac <= 0.2"),
            ("dup_line_frac", "dup_line_frac <= 0.3"),
            ("dup_line_char_frac", "dup_line_char_frac <= 0.2"),
            ("top_2gram", "top_2gram_char_frac <= 0.2"),
            ("top_3gram", "top_3gram_char_frac <= 0.18"),
            ("top_4gram", "top_4gram_char_frac <= 0.16"),
            ("dup_5gram", "dup_5gram_char_frac <= 0.15"),
            ("dup_6gram", "dup_6gram_char_frac <= 0.14"),
            ("dup_7gram", "dup_7gram_char_frac <= 0.13"),
            ("dup_8gram", "dup_8gram_char_frac <= 0.12"),
            ("dup_9gram", "dup_9gram_char_frac <= 0.11"),
            ("dup_10gram", "dup_10gram_char_frac <= 0.10"),
        ],
        "gopher_quality" => &[
            ("min_words", "words >= 50"),
            ("max_words", "words <= 100000"),
            ("min_mean_word_length", "mean_word_length >= 3"),
            ("max_mean_word_length", "mean_word_length <= 10"),
            ("symbol_word_ratio", "symbol_word_ratio <= 0.1"),
            ("bullet_lines", "bullet_line_frac <= 0.9"),
            ("ellipsis_lines", "ellipsis_line_frac <= 0.3"),
            ("alpha_words", "alpha_word_frac >= 0.8"),
            ("stop_words", "stop_words >= 2"),
        ],
        "c4" => &[
            ("lorem_ipsum", "NOT lorem_ipsum"),
            ("curly_bracket", "NOT curly_bracket"),
            ("too_few_sentences", "sentences >= 5"),
        ],
        "fineweb" => &[
            ("line_punct_ratio", "terminal_punct_line_frac > 0.12"),
            ("short_line_ratio", "short_line_frac < 0.67"),
            ("char_dup_ratio", "dup_line_char_frac_no_newlines < 0.01"),
            ("list_ratio", "newline_ratio <= 0.3"),
        ],
        _ => return None,
    };
    Some(
        rules
            .iter()
            .map(|(rule, keep)| Rule {
                name: format!("{name}.{rule}"),
                keep: (*keep).into(),
            })
            .collect(),
    )
}

/// The rule every run starts with: a document with no text after normalisation.
pub fn empty_rule() -> Rule {
    Rule {
        name: "empty".into(),
        keep: "chars > 0".into(),
    }
}

/// `specs` expanded to rules, after the `empty` rule; an unknown preset is an error
/// naming it.
pub fn expand(specs: &[FilterSpec]) -> Result<Vec<Rule>, String> {
    let mut rules = vec![empty_rule()];
    for spec in specs {
        match spec {
            FilterSpec::Preset(name) => rules.extend(preset(name).ok_or_else(|| {
                format!(
                    "filters: unknown preset `{name}` (presets: {})",
                    PRESETS.join(", ")
                )
            })?),
            FilterSpec::Rule(rule) => rules.push(rule.clone()),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for rule in &rules {
        if !seen.insert(rule.name.as_str()) {
            return Err(format!("filters: rule name `{}` is used twice", rule.name));
        }
    }
    Ok(rules)
}

/// The filter part of a rule's name: `gopher_quality` for `gopher_quality.min_words`.
pub fn filter_of(reason: &str) -> &str {
    reason.split_once('.').map_or(reason, |(f, _)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_expand_in_order_after_empty() {
        let rules = expand(&default_filters()).unwrap();
        assert_eq!(rules[0].name, "empty");
        assert_eq!(rules[1].name, "gopher_repetition.dup_paragraph_frac");
        assert_eq!(rules.last().unwrap().name, "fineweb.list_ratio");
        assert_eq!(rules.len(), 1 + 13 + 9 + 3 + 4);
        assert_eq!(filter_of("gopher_quality.min_words"), "gopher_quality");
        assert_eq!(filter_of("english"), "english");
    }

    #[test]
    fn unknown_presets_and_repeated_names_are_errors() {
        let err = expand(&[FilterSpec::Preset("gopher".into())]).unwrap_err();
        assert!(
            err.contains("`gopher`") && err.contains("gopher_quality"),
            "{err}"
        );
        let twice = FilterSpec::Rule(Rule {
            name: "x".into(),
            keep: "true".into(),
        });
        assert!(expand(&[twice.clone(), twice]).is_err());
    }

    #[test]
    fn toml_mixes_presets_and_rules() {
        #[derive(Deserialize)]
        struct T {
            filters: Vec<FilterSpec>,
        }
        let t: T =
            toml::from_str(r#"filters = ["c4", { name = "english", keep = "lang = 'en'" }]"#)
                .unwrap();
        assert_eq!(t.filters[0], FilterSpec::Preset("c4".into()));
        assert!(matches!(&t.filters[1], FilterSpec::Rule(r) if r.name == "english"));
    }
}
