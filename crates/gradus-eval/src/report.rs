//! The evaluation report: one section per evaluated run, written as `report.json` and
//! rendered as `report.md` with the charts beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::error::{EvalError, Result};

/// What a section evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// A causal or masked language model on a `tokens` dataset.
    LanguageModel,
    /// A classification or regression head on an `examples` dataset.
    Task,
}

/// A chart file beside the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plot {
    pub title: String,
    /// Relative to the report's folder.
    pub file: String,
}

/// One evaluated model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub name: String,
    pub kind: SectionKind,
    /// The run folder the model came from.
    pub source: String,
    /// The model folder that run started from (its run record's `base_model`), so that
    /// the report shows the chain: base model → continued → fine-tuned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_from: Option<String>,
    /// The dataset and split evaluated.
    pub data: String,
    /// The metric that stands for the section, e.g. `perplexity` or `accuracy`.
    pub key_metric: String,
    /// Whether a larger key metric is better.
    pub higher_is_better: bool,
    pub metrics: BTreeMap<String, f64>,
    /// Baselines on the same data, by name, with the same metric names.
    pub baselines: BTreeMap<String, BTreeMap<String, f64>>,
    /// Structured extras: confusion matrix, per-class F1, correlation report.
    pub details: serde_json::Value,
    pub plots: Vec<Plot>,
    /// Text shown as is, e.g. a generated sample.
    pub sample: Option<String>,
}

impl Section {
    /// The key metric's value.
    pub fn key_value(&self) -> Option<f64> {
        self.metrics.get(&self.key_metric).copied()
    }

    /// `(baseline, value)` of the first baseline that reports the key metric.
    pub fn key_baseline(&self) -> Option<(&str, f64)> {
        self.key_baselines().into_iter().next()
    }

    /// `(baseline, value)` of every baseline that reports the key metric.
    pub fn key_baselines(&self) -> Vec<(&str, f64)> {
        self.baselines
            .iter()
            .filter_map(|(b, m)| Some((b.as_str(), *m.get(&self.key_metric)?)))
            .collect()
    }

    /// The key metric's baselines as `value (name)`, joined by `; `; `–` without one.
    pub fn baselines_line(&self) -> String {
        let all: Vec<String> = self
            .key_baselines()
            .into_iter()
            .map(|(b, v)| format!("{} ({b})", fmt(v)))
            .collect();
        if all.is_empty() {
            "–".into()
        } else {
            all.join("; ")
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub title: String,
    pub sections: Vec<Section>,
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}

impl Report {
    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::file(dir, e))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::file(&json, e))?;
        std::fs::write(&json, text + "\n").map_err(|e| EvalError::file(&json, e))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown()).map_err(|e| EvalError::file(&md, e))
    }

    /// The report as Markdown: a summary table, then each section's figures and charts.
    pub fn markdown(&self) -> String {
        let mut md = format!("# {}\n\n", self.title);
        md.push_str("| model | data | metric | value | baseline |\n|---|---|---|---|---|\n");
        for s in &self.sections {
            let value = s.key_value().map_or("–".into(), fmt);
            let base = s.baselines_line();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {value} | {base} |",
                s.name, s.data, s.key_metric
            );
        }
        for s in &self.sections {
            let _ = write!(md, "\n## {}\n\nFrom `{}`, on {}.", s.name, s.source, s.data);
            if let Some(base) = &s.started_from {
                let _ = write!(md, " Started from `{base}`.");
            }
            md.push_str("\n\n");
            let mut names: Vec<&str> = vec!["model"];
            names.extend(s.baselines.keys().map(String::as_str));
            let _ = writeln!(md, "| metric | {} |", names.join(" | "));
            let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
            for (k, v) in &s.metrics {
                let mut row = format!("| {k} | {} |", fmt(*v));
                for b in s.baselines.values() {
                    let _ = write!(row, " {} |", b.get(k).map_or("–".into(), |v| fmt(*v)));
                }
                let _ = writeln!(md, "{row}");
            }
            for p in &s.plots {
                let _ = write!(md, "\n![{}]({})\n", p.title, p.file);
            }
            if let Some(sample) = &s.sample {
                let _ = write!(md, "\nSample:\n\n```text\n{sample}\n```\n");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> Section {
        Section {
            name: "pretrain".into(),
            kind: SectionKind::LanguageModel,
            source: "runs/x/pretrain".into(),
            started_from: Some("runs/general/model".into()),
            data: "tokens (validation)".into(),
            key_metric: "perplexity".into(),
            higher_is_better: false,
            metrics: [("perplexity".to_string(), 4.5), ("loss".to_string(), 1.5)].into(),
            baselines: [(
                "kneser-ney-3".to_string(),
                [("perplexity".to_string(), 9.25)].into(),
            )]
            .into(),
            details: serde_json::Value::Null,
            plots: vec![Plot {
                title: "loss".into(),
                file: "pretrain-loss.svg".into(),
            }],
            sample: Some("To be".into()),
        }
    }

    #[test]
    fn markdown_shows_model_against_baseline() {
        let r = Report {
            title: "demo".into(),
            sections: vec![section()],
        };
        let md = r.markdown();
        assert!(
            md.contains(
                "| pretrain | tokens (validation) | perplexity | 4.5000 | 9.2500 (kneser-ney-3) |"
            ),
            "{md}"
        );
        assert!(md.contains("| loss | 1.5000 | – |"), "{md}");
        assert!(md.contains("Started from `runs/general/model`."), "{md}");
        assert!(md.contains("![loss](pretrain-loss.svg)"));
        let dir = tempfile::tempdir().unwrap();
        r.write(dir.path()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["sections"][0]["metrics"]["perplexity"], 4.5);
    }
}
