//! The clean stage's DataFusion plan: one SQL query over the `input` table, built from the
//! configuration, with the configured steps registered as UDFs under their SQL names.
//!
//! ```text
//! input ─ normalize_text ─ scrub_pii ─ quality_signals, language, clean_lines
//!       ─ line_signals(cleaned) ─ reason (first failing rule) ─ dedup_keys(kept text)
//! ```
//!
//! Gopher signals are computed on the text before line cleaning and FineWeb's four line
//! signals on the text after it, the order datatrove's FineWeb pipeline runs them in.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;

use crate::config::CleanConfig;
use crate::error::{CleanError, Result};
use crate::filters::{Rule, expand};
use crate::ingest::ingest_schema;
use crate::udf::{SIGNAL_FIELDS, UdfSpec};

/// FineWeb's signals, taken from the line-cleaned text.
pub const LINE_SIGNALS: [&str; 4] = [
    "terminal_punct_line_frac",
    "short_line_frac",
    "newline_ratio",
    "dup_line_char_frac_no_newlines",
];

/// The column that names the evaluation set a kept document shares an n-gram with
/// (`[decontaminate] action = "flag"`), empty when none.
pub const FLAG_COLUMN: &str = "contaminated_by";

/// Columns of the signals table rules are written over (besides `key`, `id`, `source`,
/// `metadata`, `text`).
pub fn signal_columns() -> Vec<String> {
    let mut cols: Vec<String> = vec![
        "bytes_in".into(),
        "chars".into(),
        "lang".into(),
        "lang_score".into(),
        "pii_emails".into(),
        "pii_ipv4".into(),
        "pii_ipv6".into(),
        "lines_removed".into(),
        "sentences".into(),
        "lorem_ipsum".into(),
        "curly_bracket".into(),
    ];
    cols.extend(SIGNAL_FIELDS.iter().map(|f| f.name().clone()));
    cols
}

/// The configured steps, as the functions the plan calls.
pub fn udf_specs(config: &CleanConfig) -> Vec<UdfSpec> {
    let mut specs = vec![
        UdfSpec::NormalizeText(config.normalize),
        UdfSpec::ScrubPii(config.pii),
        UdfSpec::CleanLines(config.lines),
        UdfSpec::QualitySignals,
        UdfSpec::LineSignals,
        UdfSpec::Language,
        UdfSpec::DedupKeys(config.dedup.near_config()),
    ];
    if let Some(index) = config.decontaminate.built() {
        specs.push(UdfSpec::Contamination(index.clone()));
    }
    specs
}

/// Registers the configured steps as UDFs on `ctx`.
pub fn register_udfs(ctx: &SessionContext, config: &CleanConfig) {
    for spec in udf_specs(config) {
        ctx.register_udf(spec.into_udf());
    }
}

/// The common table expressions up to `signals`: every signal as a column, plus
/// `cleaned` (the text after line cleaning) and `text` (before it).
fn signals_ctes(config: &CleanConfig) -> String {
    let quality: Vec<String> = SIGNAL_FIELDS
        .iter()
        .map(|f| f.name())
        .filter(|n| !LINE_SIGNALS.contains(&n.as_str()))
        .map(|n| format!("get_field(q, '{n}') AS {n}"))
        .collect();
    // Without line cleaning the cleaned text is the text, whose line signals
    // `quality_signals` has already computed; only cleaned text needs `line_signals`.
    let (cleaned, line_source, line_call) = if config.lines.enabled {
        ("get_field(c, 'text')", "ls", "line_signals(cleaned)")
    } else {
        ("text", "q", "NULL")
    };
    let line: Vec<String> = LINE_SIGNALS
        .iter()
        .map(|n| format!("get_field({line_source}, '{n}') AS {n}"))
        .collect();
    let (language, lang, score) = if config.detect_language {
        (
            ", language(text) AS l",
            "get_field(l, 'lang')",
            "get_field(l, 'score')",
        )
    } else {
        ("", "CAST('und' AS VARCHAR)", "CAST(0.0 AS DOUBLE)")
    };
    // Steps switched off are left out of the plan rather than run as no-ops.
    let normalized = if config.normalize.is_identity() {
        "text"
    } else {
        "get_field(normalize_text(text), 'text')"
    };
    // The evaluation set a document shares an n-gram with ('' for none).
    let (contamination, contaminated_by) = if config.decontaminate.enabled() {
        (
            ", contamination(text) AS k",
            "get_field(k, 'set') AS contaminated_by, ",
        )
    } else {
        ("", "")
    };
    let (pii, pii_text, pii_counts) = if config.pii.emails || config.pii.ip_addresses {
        (
            "scrub_pii(text)",
            "get_field(p, 'text')",
            "get_field(p, 'emails') AS pii_emails, get_field(p, 'ipv4') AS pii_ipv4, \
             get_field(p, 'ipv6') AS pii_ipv6",
        )
    } else {
        (
            "CAST(NULL AS VARCHAR)",
            "text",
            "CAST(0 AS INT UNSIGNED) AS pii_emails, CAST(0 AS INT UNSIGNED) AS pii_ipv4, \
             CAST(0 AS INT UNSIGNED) AS pii_ipv6",
        )
    };
    format!(
        "WITH
normalized AS (SELECT key, id, source, metadata, octet_length(text) AS bytes_in,
    {normalized} AS text FROM input),
scrubbed AS (SELECT key, id, source, metadata, bytes_in, character_length(text) AS chars,
    text, {pii} AS p FROM normalized),
unscrubbed AS (SELECT key, id, source, metadata, bytes_in, chars,
    {pii_text} AS text, {pii_counts} FROM scrubbed),
measured AS (SELECT *, quality_signals(text) AS q{language}, clean_lines(text) AS c
    {contamination} FROM unscrubbed),
flat AS (SELECT key, id, source, metadata, bytes_in, chars, text, pii_emails, pii_ipv4,
    pii_ipv6, {lang} AS lang, {score} AS lang_score, {contaminated_by}
    {cleaned} AS cleaned, get_field(c, 'lines_removed') AS lines_removed,
    get_field(c, 'sentences') AS sentences, get_field(c, 'lorem_ipsum') AS lorem_ipsum,
    get_field(c, 'curly_bracket') AS curly_bracket, q, {quality} FROM measured),
lined AS (SELECT *, {line_call} AS ls FROM flat),
signals AS (SELECT * EXCLUDE (ls, q), {line} FROM lined)",
        quality = quality.join(", "),
        line = line.join(", "),
    )
}

/// The stage's query: one row per input document with every signal, the drop `reason`
/// (null when kept), the `text` to write (cleaned when kept, as it was before line
/// cleaning when dropped) and the dedup keys of kept documents.
pub fn query(config: &CleanConfig, rules: &[Rule]) -> String {
    let reason = if rules.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        let whens: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "WHEN NOT coalesce(({}), false) THEN '{}'",
                    r.keep,
                    r.name.replace('\'', "''")
                )
            })
            .collect();
        format!("CASE {} ELSE CAST(NULL AS VARCHAR) END", whens.join(" "))
    };
    let mut columns: Vec<String> = signal_columns()
        .into_iter()
        .filter(|c| c != "bytes_in" && c != "chars")
        .collect();
    if config.decontaminate.flags() {
        columns.push(FLAG_COLUMN.into());
    }
    format!(
        "{ctes},
judged AS (SELECT *, {reason} AS reason FROM signals),
keyed AS (SELECT *, dedup_keys(CASE WHEN reason IS NULL THEN cleaned END) AS dk FROM judged)
SELECT key, id, source, metadata, bytes_in, chars,
    CASE WHEN reason IS NULL THEN cleaned ELSE text END AS text, reason,
    {columns},
    get_field(dk, 'exact') AS exact, get_field(dk, 'bands') AS bands,
    get_field(dk, 'signature') AS signature
FROM keyed",
        ctes = signals_ctes(config),
        columns = columns.join(", "),
    )
}

/// A context with the steps registered and an empty `input` table, to check a plan.
fn check_context(config: &CleanConfig) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    register_udfs(&ctx, config);
    let empty = MemTable::try_new(ingest_schema(), vec![vec![]])?;
    ctx.register_table("input", Arc::new(empty))?;
    Ok(ctx)
}

/// Expands the filters and plans every rule on its own, so that a bad preset name or a
/// bad SQL predicate fails before any work, naming the rule.
pub async fn validate(config: &CleanConfig) -> Result<Vec<Rule>> {
    config.check().map_err(CleanError::Config)?;
    let mut rules = expand(&config.filters).map_err(CleanError::Config)?;
    // Reads the evaluation sets once, before any work.
    config.decontaminate.index()?;
    rules.extend(config.decontaminate.rules());
    if config.lines.enabled {
        // Line cleaning can remove every line of a document the filters let through.
        rules.push(Rule {
            name: "lines.emptied".into(),
            keep: "character_length(cleaned) > 0".into(),
        });
    }
    let ctx = check_context(config)?;
    let ctes = signals_ctes(config);
    for rule in &rules {
        if !config.detect_language && rule.keep.contains("lang") {
            return Err(CleanError::Config(format!(
                "filter `{}` uses the language, but detect_language = false",
                rule.name
            )));
        }
        let sql = format!("{ctes} SELECT ({}) AS keep FROM signals", rule.keep);
        let bad = |e: String| {
            CleanError::Config(format!(
                "filter `{}`: invalid predicate `{}`: {e}",
                rule.name, rule.keep
            ))
        };
        let df = ctx.sql(&sql).await.map_err(|e| bad(e.to_string()))?;
        let ty = df.schema().field(0).data_type().clone();
        if ty != DataType::Boolean && ty != DataType::Null {
            return Err(bad(format!("it is {ty}, not a boolean")));
        }
    }
    Ok(rules)
}

/// The schema the stage's query produces (for the staging files).
pub async fn output_schema(config: &CleanConfig, rules: &[Rule]) -> Result<SchemaRef> {
    let ctx = check_context(config)?;
    let df = ctx.sql(&query(config, rules)).await?;
    Ok(Arc::new(df.schema().as_arrow().clone()))
}
