//! `report.json` and `report.md`: what the clean stage took in, dropped and kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CleanError, Result};
use crate::filters::filter_of;

/// Replacements made by the PII step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    pub emails: u64,
    pub ipv4: u64,
    pub ipv6: u64,
}

/// The stage's accounting. `docs_in == docs_out + sum(drops)` always holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub files: u64,
    pub docs_in: u64,
    /// Bytes of raw text read (UTF-8, before normalisation).
    pub bytes_in: u64,
    pub docs_out: u64,
    /// Bytes of text written.
    pub bytes_out: u64,
    /// Malformed input skipped, by kind (`malformed_json`, `invalid_utf8`, ...).
    pub input_errors: BTreeMap<String, u64>,
    /// Documents dropped, by the rule that dropped them (`exact_duplicate` and
    /// `near_duplicate` for dedup).
    pub drops: BTreeMap<String, u64>,
    /// The same, summed per filter (`gopher_quality`, `c4`, ...).
    pub drops_by_filter: BTreeMap<String, u64>,
    /// Documents kept but marked as sharing an n-gram with an evaluation set, by set
    /// (`[decontaminate] action = "flag"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flagged: BTreeMap<String, u64>,
    /// Exact duplicate clusters: size (kept copy included) → count.
    pub exact_clusters: BTreeMap<u64, u64>,
    /// Near-duplicate clusters: size → count.
    pub near_clusters: BTreeMap<u64, u64>,
    pub languages_in: BTreeMap<String, u64>,
    pub languages_out: BTreeMap<String, u64>,
    pub pii: PiiCounts,
    /// Lines removed by line cleaning from kept documents.
    pub lines_removed: u64,
    pub seconds: f64,
    pub docs_per_second: f64,
    pub mb_per_second: f64,
    pub threads: usize,
    pub partitions: usize,
}

impl Report {
    /// Adds one document's drop.
    pub fn drop_for(&mut self, reason: &str) {
        *self.drops.entry(reason.to_string()).or_default() += 1;
        *self
            .drops_by_filter
            .entry(filter_of(reason).to_string())
            .or_default() += 1;
    }

    pub fn finish_timing(&mut self, seconds: f64) {
        self.seconds = seconds;
        let s = seconds.max(1e-9);
        self.docs_per_second = self.docs_in as f64 / s;
        self.mb_per_second = self.bytes_in as f64 / 1e6 / s;
    }

    /// Writes `report.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| CleanError::Internal(e.to_string()))?;
        let path = dir.join("report.json");
        std::fs::write(&path, json + "\n").map_err(|e| CleanError::io(&path, e))?;
        let path = dir.join("report.md");
        std::fs::write(&path, self.markdown()).map_err(|e| CleanError::io(&path, e))?;
        Ok(())
    }

    /// The report as a Markdown page.
    pub fn markdown(&self) -> String {
        let mut md =
            String::from("# Clean report\n\n| | documents | MB |\n| --- | ---: | ---: |\n");
        let mb = |b: u64| format!("{:.2}", b as f64 / 1e6);
        let _ = writeln!(md, "| in | {} | {} |", self.docs_in, mb(self.bytes_in));
        let _ = writeln!(md, "| out | {} | {} |", self.docs_out, mb(self.bytes_out));
        let _ = writeln!(
            md,
            "\n{} files in {:.2} s: {:.0} documents/s, {:.2} MB/s ({} threads, {} partitions).",
            self.files,
            self.seconds,
            self.docs_per_second,
            self.mb_per_second,
            self.threads,
            self.partitions
        );
        section(&mut md, "Drops per filter", &self.drops_by_filter);
        section(&mut md, "Drops per rule", &self.drops);
        if !self.flagged.is_empty() {
            section(
                &mut md,
                "Kept but flagged as contaminated, per evaluation set",
                &self.flagged,
            );
        }
        section(&mut md, "Input errors (skipped)", &self.input_errors);
        let sizes = |m: &BTreeMap<u64, u64>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        section(
            &mut md,
            "Exact duplicate clusters (size: count)",
            &sizes(&self.exact_clusters),
        );
        section(
            &mut md,
            "Near-duplicate clusters (size: count)",
            &sizes(&self.near_clusters),
        );
        section(&mut md, "Languages in", &self.languages_in);
        section(&mut md, "Languages out", &self.languages_out);
        let _ = writeln!(
            md,
            "\n## PII replaced\n\ne-mail addresses {}, IPv4 {}, IPv6 {}; lines removed by line cleaning {}.",
            self.pii.emails, self.pii.ipv4, self.pii.ipv6, self.lines_removed
        );
        md
    }
}

fn section(md: &mut String, title: &str, rows: &BTreeMap<String, u64>) {
    let _ = writeln!(md, "\n## {title}\n");
    if rows.is_empty() {
        md.push_str("none\n");
        return;
    }
    md.push_str("| | count |\n| --- | ---: |\n");
    let mut sorted: Vec<(&String, &u64)> = rows.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, v) in sorted {
        let _ = writeln!(md, "| {k} | {v} |");
    }
}
