//! The clean stage end to end: real Common Crawl pages, dedup, filters, bad input, resume.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::{AsArray, RecordBatch};
use gradus_clean::filters::{FilterSpec, Rule};
use gradus_clean::{CleanConfig, CleanError, CleanRun, InputSpec, NearMode, OnError, Report};
use gradus_shard::{Dataset, OpenMode, ReadOptions};

const CC: &str = "cc-web-sample/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz";

async fn run(config: &CleanConfig, output: &Path) -> Result<Report, CleanError> {
    let on_docs = |_: u64| {};
    CleanRun {
        config,
        output,
        mode: OpenMode::Overwrite,
        on_docs: &on_docs,
        stop_after_files: None,
        cluster: None,
    }
    .run()
    .await
}

/// (id, text) of every output document, in order.
fn documents(dir: &Path) -> Vec<(String, String)> {
    let ds = Dataset::open(dir).unwrap();
    let mut out = Vec::new();
    for batch in ds.batches(&ReadOptions::default().columns(&["id", "text"])) {
        let batch: RecordBatch = batch.unwrap();
        let ids = batch.column(0).as_string::<i32>();
        let texts = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((ids.value(i).to_string(), texts.value(i).to_string()));
        }
    }
    out
}

fn rejected_reasons(dir: &Path) -> Vec<(String, String)> {
    let ds = Dataset::open(dir.join("rejected")).unwrap();
    let mut out = Vec::new();
    for batch in ds.batches(&ReadOptions::default().columns(&["id", "reason"])) {
        let batch = batch.unwrap();
        let ids = batch.column(0).as_string::<i32>();
        let reasons = batch.column(1).as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.push((ids.value(i).to_string(), reasons.value(i).to_string()));
        }
    }
    out
}

fn adds_up(r: &Report) {
    let dropped: u64 = r.drops.values().sum();
    assert_eq!(r.docs_in, r.docs_out + dropped, "{r:?}");
    assert_eq!(r.drops_by_filter.values().sum::<u64>(), dropped);
}

/// Inputs with default settings, one per path.
fn specs(paths: &[impl AsRef<Path>]) -> Vec<InputSpec> {
    paths
        .iter()
        .map(|p| InputSpec::path(p.as_ref().to_string_lossy()))
        .collect()
}

/// The default settings over the Common Crawl sample; none (after a loud message) when
/// the sample is missing outside CI.
fn cc_config() -> Option<CleanConfig> {
    let cc = gradus_testkit::shared(CC)?;
    Some(CleanConfig {
        inputs: specs(&[&cc]),
        ..CleanConfig::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn common_crawl_empty_pages_and_exact_duplicates() {
    let Some(mut config) = cc_config() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    // Only the `empty` rule and exact dedup on the normalised text, to see the sample's
    // own duplicate groups.
    config.filters = vec![];
    config.lines.enabled = false;
    config.dedup.near = NearMode::Off;
    config.keep_rejected = true;
    let r = run(&config, out.path()).await.unwrap();
    assert_eq!(r.docs_in, 697);
    assert_eq!(r.drops["empty"], 27);
    // Four groups of identical text: 27 empty (dropped as empty), 7, 3 and 2 copies.
    assert_eq!(r.drops["exact_duplicate"], 6 + 2 + 1);
    assert_eq!(r.exact_clusters, [(2, 1), (3, 1), (7, 1)].into());
    assert_eq!(r.input_errors.len(), 0);
    adds_up(&r);
    let docs = documents(out.path());
    assert_eq!(docs.len() as u64, r.docs_out);
    let mut texts: Vec<&String> = docs.iter().map(|(_, t)| t).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(
        texts.len(),
        docs.len(),
        "no two kept documents share a text"
    );
    // Ids are the source, the file and the line; dropped copies name what they copy.
    assert!(
        docs[0]
            .0
            .starts_with("CC-MAIN-20190717121559-20190717143559-00140/CC-MAIN")
    );
    let rejected = rejected_reasons(out.path());
    assert_eq!(rejected.len() as u64, 27 + 9);
    assert!(rejected.iter().any(|(_, r)| r == "exact_duplicate"));
}

/// Share of alphabetic characters outside the Latin script blocks.
fn non_latin_share(text: &str) -> f64 {
    let alpha: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let non_latin = alpha.iter().filter(|c| **c as u32 > 0x024F).count();
    non_latin as f64 / alpha.len().max(1) as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn common_crawl_english_filter_and_full_chain() {
    let Some(mut config) = cc_config() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    config.filters.insert(
        0,
        FilterSpec::Rule(Rule {
            name: "english".into(),
            keep: "lang = 'en'".into(),
        }),
    );
    let r = run(&config, out.path()).await.unwrap();
    adds_up(&r);
    assert!(r.drops["english"] > 114, "{:?}", r.drops);
    assert_eq!(r.languages_out.keys().collect::<Vec<_>>(), ["en"]);
    for (id, text) in documents(out.path()) {
        assert!(non_latin_share(&text) < 0.5, "{id} is mostly non-Latin");
    }
    // The default chain keeps a minority of raw web pages, as datatrove's does.
    assert!(r.docs_out > 50 && r.docs_out < 400, "{} kept", r.docs_out);
    assert!(r.drops_by_filter.contains_key("gopher_quality"));
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("| english |"));
    let json: Report =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json.docs_out, r.docs_out);
}

/// Paragraphs of unrelated prose: a base text and several small edits of it.
fn near_duplicate_corpus(dir: &Path, files: usize) -> Vec<PathBuf> {
    let base = "The river rose slowly through the night, and by morning the lower fields \
        were under water. Farmers moved their cattle to the ridge above the village while \
        the school opened its hall to families whose houses stood nearest the bank. By noon \
        the rain had eased, but the water kept coming down from the hills for two more days, \
        and the bridge on the old road was closed until engineers could inspect it.";
    let unrelated = [
        "Bread rises best in a warm kitchen. Mix the flour, water, salt and yeast, knead \
         for ten minutes, then leave the dough covered for an hour before shaping the loaf \
         and baking it in a hot oven until the crust is deep brown and sounds hollow.",
        "The orchestra tuned for a long minute before the conductor raised her baton. The \
         first movement opened quietly with the strings alone, and the brass did not enter \
         until the theme had been passed twice between the violins and the cellos.",
        "Chess openings reward study, yet beginners gain more from tactics: forks, pins and \
         skewers decide most games between new players long before any careful plan made \
         in the opening has a chance to matter on the board.",
    ];
    let edits = [
        base.to_string(),
        base.replace("slowly", "steadily"),
        base.replace("two more days", "three more days"),
        base.replace("Farmers", "The farmers"),
        base.replace("engineers", "the engineers"),
    ];
    let mut docs: Vec<String> = edits.to_vec();
    docs.extend(unrelated.iter().map(|s| s.to_string()));
    let mut paths = Vec::new();
    for f in 0..files {
        let path = dir.join(format!("part-{f}.jsonl"));
        let mut out = std::fs::File::create(&path).unwrap();
        for (i, d) in docs.iter().enumerate() {
            if i % files == f {
                writeln!(out, "{}", serde_json::json!({ "text": d })).unwrap();
            }
        }
        paths.push(path);
    }
    paths
}

#[tokio::test(flavor = "multi_thread")]
async fn near_duplicates_cluster_and_output_ignores_partitions() {
    let input = tempfile::tempdir().unwrap();
    let paths = near_duplicate_corpus(input.path(), 4);
    let mut outputs = Vec::new();
    for partitions in [1, 2, 8] {
        let out = tempfile::tempdir().unwrap();
        let config = CleanConfig {
            inputs: specs(&paths),
            filters: vec![],
            partitions,
            keep_rejected: true,
            ..CleanConfig::default()
        };
        let r = run(&config, out.path()).await.unwrap();
        assert_eq!(r.docs_in, 8);
        assert_eq!(r.drops.get("near_duplicate"), Some(&4), "{:?}", r.drops);
        assert_eq!(r.near_clusters, [(5, 1)].into());
        adds_up(&r);
        let docs = documents(out.path());
        // The cluster keeps the base text, the first document of part-0.
        assert!(docs.iter().any(|(id, _)| id.ends_with("part-0.jsonl:1")));
        outputs.push(docs);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_filter_from_toml_applies_and_a_bad_one_fails_first() {
    let input = tempfile::tempdir().unwrap();
    let paths = near_duplicate_corpus(input.path(), 1);
    let toml = format!(
        r#"
filters = [{{ name = "long", keep = "words BETWEEN 50 AND 100000 AND lang = 'en'" }}]
[[inputs]]
path = "{}"
source = "prose"
[dedup]
near = "off"
"#,
        paths[0].display()
    );
    let config: CleanConfig = toml::from_str(&toml).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = run(&config, out.path()).await.unwrap();
    // The five flood texts are long enough; the three others are under 50 words.
    assert_eq!(r.drops.get("long"), Some(&3), "{:?}", r.drops);
    assert_eq!(r.docs_out, 5);
    assert!(
        documents(out.path())[0]
            .0
            .starts_with("prose/part-0.jsonl:")
    );

    // A filter that does not parse, and one naming an unknown column, are refused by the
    // filter's name before anything is written.
    let out = tempfile::tempdir().unwrap();
    for (from, to, named) in [
        ("BETWEEN 50", "BETWEN 50", "BETWEN"),
        ("words BETWEEN", "wordz BETWEEN", "wordz"),
    ] {
        let bad: CleanConfig = toml::from_str(&toml.replace(from, to)).unwrap();
        let target = out.path().join(named);
        let err = run(&bad, &target).await.unwrap_err().to_string();
        assert!(
            err.contains("filter `long`") && err.contains(named),
            "{err}"
        );
        assert!(!target.exists(), "nothing is written before the check");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_counted_or_fails_with_file_and_line() {
    let input = tempfile::tempdir().unwrap();
    let good = r#"{"text": "A perfectly fine line of text for the corpus."}"#;
    let jsonl = input.path().join("mixed.jsonl");
    let mut bytes = format!("{good}\n{{not json\n").into_bytes();
    bytes.extend(b"{\"text\": \"bad \xff utf8\"}\n");
    bytes.extend(b"{\"title\": \"no text field\"}\n");
    bytes.extend(format!("{good}\n").as_bytes());
    std::fs::write(&jsonl, bytes).unwrap();
    let empty = input.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    let missing = input.path().join("missing.jsonl");
    let mut config = CleanConfig {
        inputs: specs(&[&jsonl, &empty, &missing]),
        filters: vec![],
        ..CleanConfig::default()
    };
    config.dedup.exact = false;
    config.lines.enabled = false;
    let out = tempfile::tempdir().unwrap();
    let r = run(&config, out.path()).await.unwrap();
    assert_eq!(r.docs_in, 2);
    let errors: Vec<(&str, u64)> = r
        .input_errors
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        errors,
        [
            ("empty_file", 1),
            ("invalid_utf8", 1),
            ("malformed_json", 1),
            ("missing_file", 1),
            ("missing_text", 1)
        ]
    );

    config.on_error = OnError::Fail;
    config.inputs.truncate(1);
    let err = run(&config, out.path()).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}:2: malformed json", jsonl.display())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inputs_that_match_nothing_are_named() {
    let input = tempfile::tempdir().unwrap();
    let pattern = input.path().join("*.jsonl");
    let config = CleanConfig {
        inputs: specs(&[&pattern]),
        ..CleanConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let err = run(&config, &out.path().join("docs"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&pattern.display().to_string()), "{err}");
    assert!(!err.contains(".work"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumes_to_the_same_output() {
    let input = tempfile::tempdir().unwrap();
    let paths = near_duplicate_corpus(input.path(), 4);
    let config = CleanConfig {
        inputs: specs(&paths),
        filters: vec![],
        partitions: 1,
        ..CleanConfig::default()
    };
    let whole = tempfile::tempdir().unwrap();
    let expected = run(&config, whole.path()).await.unwrap();

    let resumed = tempfile::tempdir().unwrap();
    let on_docs = |_: u64| {};
    let killed = CleanRun {
        config: &config,
        output: resumed.path(),
        mode: OpenMode::Overwrite,
        on_docs: &on_docs,
        stop_after_files: Some(2),
        cluster: None,
    }
    .run()
    .await;
    assert!(matches!(killed, Err(CleanError::Cancelled)));
    assert!(!resumed.path().join("report.json").exists());
    let again = CleanRun {
        config: &config,
        output: resumed.path(),
        mode: OpenMode::Resume,
        on_docs: &on_docs,
        stop_after_files: None,
        cluster: None,
    }
    .run()
    .await
    .unwrap();
    assert_eq!(again.docs_out, expected.docs_out);
    assert_eq!(again.drops, expected.drops);
    assert_eq!(documents(resumed.path()), documents(whole.path()));
    assert!(!resumed.path().join(".work").exists());
}

/// (id, source, metadata, text) of every output document, sorted by id.
fn lineage(dir: &Path) -> Vec<(String, String, serde_json::Value, String)> {
    let ds = Dataset::open(dir).unwrap();
    let mut out = Vec::new();
    let opts = ReadOptions::default().columns(&["id", "source", "metadata", "text"]);
    for batch in ds.batches(&opts) {
        let batch = batch.unwrap();
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        let (ids, sources) = (col("id"), col("source"));
        let (metas, texts) = (col("metadata"), col("text"));
        for i in 0..batch.num_rows() {
            out.push((
                ids.value(i).to_string(),
                sources.value(i).to_string(),
                serde_json::from_str(metas.value(i)).unwrap(),
                texts.value(i).to_string(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn write_parquet_texts(path: &Path, column: &str, texts: &[&str]) {
    use std::sync::Arc;
    let array = arrow::array::StringArray::from(texts.to_vec());
    let batch = RecordBatch::try_from_iter([(column, Arc::new(array) as _)]).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Every input format in one run: ids from source + file + line/row, lineage kept, the
/// text column chosen per input, and a documents dataset read back with its ids.
#[tokio::test(flavor = "multi_thread")]
async fn every_input_format_reads_with_stable_ids_and_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let jsonl =
        "{\"text\": \"Zstd line one.\", \"url\": \"u1\"}\n\n{\"text\": \"Zstd line three.\"}\n";
    std::fs::write(
        p("web.jsonl.zst"),
        zstd::encode_all(jsonl.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    // TSV has no quoting: the quote characters are text.
    std::fs::write(
        p("rows.tsv"),
        "label\tsentence\n1\tSay \"hi\", twice.\n0\tPlain row.\n",
    )
    .unwrap();
    std::fs::write(
        p("rows.csv"),
        "id,body\n7,\"Quoted, with a comma\nand a newline.\"\n8,Bare.\n",
    )
    .unwrap();
    write_parquet_texts(
        &p("table.parquet"),
        "content",
        &["Parquet row zero.", "Parquet row one."],
    );
    std::fs::create_dir(p("books")).unwrap();
    std::fs::write(p("books/a.txt"), "Para one,\nstill one.\n\n\nPara two.\n").unwrap();
    std::fs::write(p("books/b.txt"), "Line A.\n\nLine B.\n").unwrap();
    let spec = |path: &Path, field: &str| InputSpec {
        text_field: field.into(),
        ..InputSpec::path(path.to_string_lossy())
    };
    let mut books = InputSpec::path(format!("{}/*.txt", p("books").display()));
    books.source = Some("lib".into());
    books.text_unit = gradus_clean::TextUnit::Line;
    let mut config = CleanConfig {
        inputs: vec![
            spec(&p("web.jsonl.zst"), "text"),
            spec(&p("rows.tsv"), "sentence"),
            spec(&p("rows.csv"), "body"),
            spec(&p("table.parquet"), "content"),
            books,
        ],
        filters: vec![],
        ..CleanConfig::default()
    };
    config.lines.enabled = false;
    config.dedup.near = NearMode::Off;
    let out = tempfile::tempdir().unwrap();
    let r = run(&config, out.path()).await.unwrap();
    assert_eq!(r.input_errors.len(), 0, "{:?}", r.input_errors);
    let docs = lineage(out.path());
    let got: Vec<(&str, &str, &str)> = docs
        .iter()
        .map(|(id, source, _, text)| (id.as_str(), source.as_str(), text.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("lib/a.txt:1", "lib", "Para one,"),
            ("lib/a.txt:2", "lib", "still one."),
            ("lib/a.txt:5", "lib", "Para two."),
            ("lib/b.txt:1", "lib", "Line A."),
            ("lib/b.txt:3", "lib", "Line B."),
            (
                "rows/rows.csv:2",
                "rows",
                "Quoted, with a comma\nand a newline."
            ),
            ("rows/rows.csv:4", "rows", "Bare."),
            ("rows/rows.tsv:2", "rows", "Say \"hi\", twice."),
            ("rows/rows.tsv:3", "rows", "Plain row."),
            ("table/table.parquet#0", "table", "Parquet row zero."),
            ("table/table.parquet#1", "table", "Parquet row one."),
            ("web/web.jsonl.zst:1", "web", "Zstd line one."),
            ("web/web.jsonl.zst:3", "web", "Zstd line three."),
        ]
    );
    // Lineage: the file as given, the line or row, the record's other fields.
    let meta = |id: &str| &docs.iter().find(|d| d.0 == id).unwrap().2;
    assert_eq!(meta("web/web.jsonl.zst:1")["fields"]["url"], "u1");
    assert_eq!(meta("web/web.jsonl.zst:1")["line"], 1);
    assert_eq!(meta("rows/rows.tsv:2")["fields"]["label"], "1");
    assert_eq!(meta("rows/rows.csv:2")["fields"]["id"], "7");
    assert_eq!(meta("table/table.parquet#1")["row"], 1);
    assert_eq!(
        meta("lib/b.txt:3")["file"],
        p("books/b.txt").to_string_lossy().as_ref()
    );

    // The same inputs cut by paragraph (the default) instead of by line.
    config.inputs[4].text_unit = gradus_clean::TextUnit::Paragraph;
    let paragraphs = tempfile::tempdir().unwrap();
    run(&config, paragraphs.path()).await.unwrap();
    let a: Vec<String> = lineage(paragraphs.path())
        .into_iter()
        .filter(|d| d.0.starts_with("lib/a.txt"))
        .map(|d| d.3)
        .collect();
    assert_eq!(a, ["Para one,\nstill one.", "Para two."]);

    // An upstream documents dataset keeps its ids and sources; lineage points upstream.
    let again = tempfile::tempdir().unwrap();
    let rerun = CleanConfig {
        inputs: specs(&[out.path()]),
        ..config.clone()
    };
    let r2 = run(&rerun, again.path()).await.unwrap();
    assert_eq!(r2.docs_out, r.docs_out);
    let docs2 = lineage(again.path());
    let ids = |d: &[(String, String, serde_json::Value, String)]| {
        d.iter()
            .map(|x| (x.0.clone(), x.1.clone(), x.3.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&docs2), ids(&docs));
    let upstream = &docs2.iter().find(|d| d.0 == "rows/rows.tsv:2").unwrap().2;
    assert_eq!(upstream["fields"]["upstream"]["fields"]["label"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_sharing_thirteen_words_with_an_evaluation_set_are_dropped_naming_it() {
    let Some(dev) = gradus_testkit::shared("glue-sst2/dev.tsv") else {
        return;
    };
    let sentences: Vec<String> = std::fs::read_to_string(&dev)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .filter(|s| s.split_whitespace().count() >= 16)
        .take(4)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("web.jsonl");
    let page = |inside: &str| {
        serde_json::json!({ "text": format!(
            "A page about films. Critics wrote: {} Then the page goes on about other things.",
            inside.to_uppercase()
        )})
        .to_string()
    };
    // Twelve of its words as compared (`n't` is two), then one of another.
    let words: Vec<&str> = sentences[3]
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let near_miss = format!("{} zebra", words[..12].join(" "));
    let lines = [
        page(&sentences[0]),
        page(&sentences[1]),
        page(&sentences[2]),
        page(&near_miss),
        page("nothing from the evaluation set at all, only a few words of our own"),
    ];
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let toml = format!(
        r#"
filters = []
[[inputs]]
path = "{}"
[lines]
enabled = false
[dedup]
near = "off"
[decontaminate]
against = [{{ name = "sst2-dev", inputs = [{{ path = "{}", text_field = "sentence" }}] }}]
"#,
        corpus.display(),
        dev.display()
    );
    let config: CleanConfig = toml::from_str(&toml).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = run(&config, out.path()).await.unwrap();
    assert_eq!(
        r.drops.get("decontaminate.sst2-dev"),
        Some(&3),
        "{:?}",
        r.drops
    );
    assert_eq!(r.docs_out, 2, "the near miss and the clean page stay");
    adds_up(&r);

    // Flagging keeps every page and names the set in `contaminated_by`.
    let flagging: CleanConfig = toml::from_str(&format!("{toml}action = \"flag\"\n")).unwrap();
    let flagged_out = out.path().join("flagged");
    let f = run(&flagging, &flagged_out).await.unwrap();
    assert_eq!((f.docs_out, f.drops.len()), (5, 0), "{:?}", f.drops);
    assert_eq!(f.flagged.get("sst2-dev"), Some(&3), "{:?}", f.flagged);
    let docs = Dataset::open(&flagged_out).unwrap();
    let mut marks = Vec::new();
    for entry in &docs.manifest().shards {
        for batch in docs.read_shard(entry, &ReadOptions::default()).unwrap() {
            let batch = batch.unwrap();
            let col = batch.column_by_name("contaminated_by").unwrap();
            let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
            let col = col.as_string::<i32>();
            marks.extend(col.iter().map(|v| v.unwrap_or_default().to_string()));
        }
    }
    marks.sort();
    assert_eq!(marks, ["", "", "sst2-dev", "sst2-dev", "sst2-dev"]);

    // A missing evaluation file fails before anything is written, naming it.
    let missing: CleanConfig = toml::from_str(&toml.replace("dev.tsv", "dev-missing.tsv")).unwrap();
    let err = run(&missing, &out.path().join("x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sst2-dev") && err.contains("dev-missing.tsv"),
        "{err}"
    );
    assert!(!out.path().join("x").exists());
}
