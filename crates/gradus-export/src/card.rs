//! `README.md`, the model card: what the model is, how it opens, and the run it came
//! from (base model, data, steps, figures, run record).

use std::fmt::Write as _;

use gradus_record::RunRecord;

use crate::kind::{ModelFolder, ModelKind};
use crate::layout::Layout;

/// Where a folder came from: its run's record, and how it was taken from the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance<'a> {
    pub record: Option<&'a RunRecord>,
    /// `the kept model`, `checkpoint step-120`, ….
    pub taken: Option<&'a str>,
}

/// The model card of `folder` written in `layout`.
pub fn render(folder: &ModelFolder, layout: Layout, from: Provenance<'_>) -> String {
    let library = match layout {
        Layout::Hf => "transformers",
        Layout::SentenceTransformers => "sentence-transformers",
    };
    let mut s = format!("---\nlibrary_name: {library}\ntags:\n- gradus\n---\n\n");
    let _ = writeln!(s, "# A {} trained by gradus\n", folder.kind.describe());
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| opens in | {} |", opens_in(folder.kind, layout));
    if let Some(task) = folder.task() {
        let _ = writeln!(s, "| task | {} |", task_line(task));
    }
    if let Some(r) = from.record {
        facts(&mut s, r, from.taken);
    }
    if let Some(r) = from.record.filter(|r| !r.figures.is_empty()) {
        let _ = writeln!(s, "\n## Figures\n\n| metric | value |\n|---|---|");
        for (name, value) in &r.figures {
            let _ = writeln!(s, "| {name} | {value:.4} |");
        }
    }
    let _ = writeln!(
        s,
        "\n## Loading\n\n```python\n{}\n```",
        snippet(folder.kind, layout)
    );
    s
}

fn facts(s: &mut String, r: &RunRecord, taken: Option<&str>) {
    let path = |p: &std::path::Path| format!("`{}`", p.display());
    let base = r
        .facts
        .base_model
        .as_deref()
        .map_or("random initialisation".into(), path);
    let data: Vec<String> = r.facts.data.iter().map(|d| path(d)).collect();
    let _ = writeln!(s, "| base model | {base} |");
    let _ = writeln!(s, "| data | {} |", data.join(", "));
    if let Some(tk) = &r.facts.tokenizer {
        let _ = writeln!(s, "| tokenizer | {} |", path(tk));
    }
    let _ = writeln!(s, "| seed | {} |", r.facts.seed);
    if let Some(steps) = r.steps {
        let _ = writeln!(s, "| steps | {steps} |");
    }
    if let Some(best) = r.best_line().zip(r.best) {
        let _ = writeln!(s, "| best | {} at step {} |", best.0, best.1.step);
    }
    let _ = writeln!(s, "| taken | {} |", taken.unwrap_or("the kept model"));
    let _ = writeln!(
        s,
        "| run record | `run.json` of the {} run (gradus {}, config {}) |",
        r.kind, r.gradus_version, r.config_hash
    );
}

fn task_line(task: &serde_json::Map<String, serde_json::Value>) -> String {
    let field = |k: &str| task.get(k).map_or(String::new(), |v| v.to_string());
    format!(
        "{} ({}, pooling {}, labels {}, max_len {})",
        field("name").trim_matches('"'),
        field("kind").trim_matches('"'),
        field("pooling").trim_matches('"'),
        field("labels"),
        field("max_len")
    )
}

fn opens_in(kind: ModelKind, layout: Layout) -> String {
    match layout {
        Layout::Hf => format!("transformers `{}`", kind.hf_class().unwrap_or("BertModel")),
        Layout::SentenceTransformers => match kind {
            ModelKind::Task(_) => "sentence-transformers `SentenceTransformer`: `encode` gives \
                                   the head's outputs (logits of each label, or the regression \
                                   value)"
                .into(),
            _ => "sentence-transformers `SentenceTransformer` (mean pooling)".into(),
        },
    }
}

fn snippet(kind: ModelKind, layout: Layout) -> &'static str {
    match (layout, kind) {
        (Layout::SentenceTransformers, _) => {
            "from sentence_transformers import SentenceTransformer\n\
             model = SentenceTransformer(\"PATH\")\n\
             outputs = model.encode([\"a sentence\"])"
        }
        (_, ModelKind::CausalLm(_)) => {
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\
             model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n\
             tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"
        }
        (_, ModelKind::Task(_)) => {
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\
             model = AutoModelForSequenceClassification.from_pretrained(\"PATH\")\n\
             tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"
        }
        (_, ModelKind::Pretraining) => {
            "from transformers import BertForPreTraining, AutoTokenizer\n\
             model = BertForPreTraining.from_pretrained(\"PATH\")\n\
             tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"
        }
        _ => {
            "from transformers import AutoModel, AutoTokenizer\n\
             model = AutoModel.from_pretrained(\"PATH\")\n\
             tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"
        }
    }
}
