//! The shard contract, end to end: what every stage relies on.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::time::Duration;

use gradus_shard::{
    Dataset, DatasetKind, DatasetWriter, Document, Example, Manifest, OpenMode, Producer,
    ReadOptions, Record, ShardError, TokenSeq, WriterOptions, follow,
};

fn producer(tag: &str) -> Producer {
    Producer::new("test", &serde_json::json!({ "tag": tag })).unwrap()
}

fn opts(max_rows: usize) -> WriterOptions {
    WriterOptions {
        max_rows_per_shard: max_rows,
        ..WriterOptions::default()
    }
}

/// A documents writer with the test producer `tag` and shards of `max_rows`.
fn documents_writer(dir: &Path, tag: &str, max_rows: usize) -> DatasetWriter {
    try_documents_writer(dir, tag, max_rows).unwrap()
}

fn try_documents_writer(
    dir: &Path,
    tag: &str,
    max_rows: usize,
) -> gradus_shard::Result<DatasetWriter> {
    DatasetWriter::create(
        dir,
        DatasetKind::Documents,
        producer(tag),
        vec![],
        opts(max_rows),
    )
}

fn docs(source: &str, n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| Document {
            id: format!("{source}:{i}"),
            text: format!("document {i} of {source}: {}", "lorem ipsum ".repeat(i % 7)),
            source: source.to_string(),
            metadata: (i % 3 == 0).then(|| format!("{{\"i\":{i}}}")),
        })
        .collect()
}

fn read_all<R: Record>(dir: &Path) -> Vec<R> {
    let ds = Dataset::open_kind(dir, R::KIND).unwrap();
    ds.batches(&ReadOptions::default().batch_size(5))
        .flat_map(|b| R::from_batch(&b.unwrap()).unwrap())
        .collect()
}

fn write_rows<R: Record>(dir: &Path, rows: &[R], max_rows: usize) -> Manifest {
    let mut w = DatasetWriter::create(dir, R::KIND, producer("x"), vec![], opts(max_rows)).unwrap();
    for (i, chunk) in rows.chunks(4).enumerate() {
        w.write(&format!("s{i}"), &R::to_batch(chunk).unwrap())
            .unwrap();
        w.finish_source(&format!("s{i}")).unwrap();
    }
    w.seal().unwrap()
}

#[test]
fn every_kind_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let d = docs("a", 23);
    write_rows(&tmp.path().join("d"), &d, 10);
    assert_eq!(read_all::<Document>(&tmp.path().join("d")), d);

    let t: Vec<TokenSeq> = (0..11)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: (0..i).collect(),
            split: if i % 4 == 0 { "validation" } else { "train" }.into(),
        })
        .collect();
    write_rows(&tmp.path().join("t"), &t, 3);
    assert_eq!(read_all::<TokenSeq>(&tmp.path().join("t")), t);

    let e: Vec<Example> = (0..9)
        .map(|i| Example {
            id: format!("e{i}"),
            task: if i % 2 == 0 { "sst2" } else { "stsb" }.into(),
            text: format!("text {i}"),
            text_pair: (i % 2 == 1).then(|| format!("pair {i}")),
            label: (i % 2 == 0).then_some(i64::from(i % 3 == 0)),
            target: (i % 2 == 1).then_some(i as f32 / 2.0),
            input_ids: vec![101, i, 102],
            token_type_ids: vec![0, 0, 0],
            split: "train".into(),
        })
        .collect();
    write_rows(&tmp.path().join("e"), &e, 4);
    assert_eq!(read_all::<Example>(&tmp.path().join("e")), e);
}

#[test]
fn projection_reads_only_the_named_columns() {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(tmp.path(), &docs("a", 12), 5);
    let ds = Dataset::open(tmp.path()).unwrap();
    let batches: Vec<_> = ds
        .batches(&ReadOptions::default().columns(&["text", "id"]))
        .map(Result::unwrap)
        .collect();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "text"]);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 12);

    let err = ds
        .batches(&ReadOptions::default().columns(&["txt"]))
        .next()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("`txt`"), "{err}");
}

#[test]
fn rotation_by_rows_cuts_exact_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let m = write_rows(tmp.path(), &docs("a", 35), 10);
    let rows: Vec<u64> = m.shards.iter().map(|s| s.rows).collect();
    assert_eq!(rows, [10, 10, 10, 5]);
    assert!(m.sealed);
    assert_eq!(Dataset::open(tmp.path()).unwrap().num_rows(), 35);
}

#[test]
fn rotation_by_bytes_bounds_shard_size() {
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<Document> = (0..200)
        .map(|i| Document {
            id: i.to_string(),
            // Distinct, poorly compressible text so the encoded size grows with rows.
            text: (0..400)
                .map(|j| format!("{:x}", (i * 7919 + j * 104729) % 65521))
                .collect(),
            source: "s".into(),
            metadata: None,
        })
        .collect();
    let o = WriterOptions {
        max_bytes_per_shard: 40_000,
        row_group_bytes: 8_000,
        ..WriterOptions::default()
    };
    let mut w = DatasetWriter::create(tmp.path(), DatasetKind::Documents, producer("b"), vec![], o)
        .unwrap();
    for chunk in big.chunks(2) {
        w.write("s", &Document::to_batch(chunk).unwrap()).unwrap();
    }
    w.finish_source("s").unwrap();
    let m = w.seal().unwrap();
    let sizes: Vec<u64> = m.shards.iter().map(|s| s.bytes).collect();
    assert!(m.shards.len() >= 3, "{sizes:?}");
    // Every shard but the last was cut once it reached the limit, within a row group.
    for s in &m.shards[..m.shards.len() - 1] {
        assert!(s.bytes >= 36_000 && s.bytes < 52_000, "{sizes:?}");
    }
    assert_eq!(read_all::<Document>(tmp.path()), big);
}

#[test]
fn a_dropped_writer_leaves_only_committed_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = documents_writer(tmp.path(), "x", 10);
    w.write("a", &Document::to_batch(&docs("a", 25)).unwrap())
        .unwrap();
    drop(w);
    let ds = Dataset::open(tmp.path()).unwrap();
    assert!(!ds.manifest().sealed);
    assert_eq!(ds.num_rows(), 20);
    assert_eq!(read_all::<Document>(tmp.path()), docs("a", 20));
    assert!(ds.verify().is_empty());
}

#[test]
fn a_killed_writer_leaves_a_temp_file_that_the_next_writer_removes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = documents_writer(tmp.path(), "x", 10);
    w.write("a", &Document::to_batch(&docs("a", 15)).unwrap())
        .unwrap();
    w.crash();
    let tmp_files = || {
        std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    };
    assert_eq!(tmp_files(), 1);
    assert_eq!(Dataset::open(tmp.path()).unwrap().num_rows(), 10);
    let w = documents_writer(tmp.path(), "x", 10);
    assert_eq!(tmp_files(), 0);
    // Source `a` never finished: its committed shard is rolled back too.
    assert!(!w.is_done("a"));
    assert_eq!(w.manifest().shards.len(), 0);
}

/// Writes sources s0..s9 (of 0..12 rows each) with shards of 7 rows; `kill_after`
/// stops after that many batches without sealing, as a kill would.
fn staged_run(dir: &Path, kill_after: Option<usize>) -> Option<Manifest> {
    let mut w = documents_writer(dir, "r", 7);
    let mut batches = 0;
    for s in 0..10 {
        let key = format!("s{s}");
        if w.is_done(&key) {
            continue;
        }
        let rows = docs(&key, (s * 5) % 13);
        for chunk in rows.chunks(3) {
            if kill_after == Some(batches) {
                w.crash();
                return None;
            }
            w.write(&key, &Document::to_batch(chunk).unwrap()).unwrap();
            batches += 1;
        }
        w.finish_source(&key).unwrap();
    }
    Some(w.seal().unwrap())
}

#[test]
fn resumed_runs_equal_an_uninterrupted_run_wherever_they_were_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = staged_run(&tmp.path().join("ref"), None).unwrap();
    let total_batches = 20;
    for kill in 0..total_batches {
        let dir = tmp.path().join(format!("k{kill}"));
        assert!(staged_run(&dir, Some(kill)).is_none());
        // A second kill during the resumed run, then a clean finish.
        let _ = staged_run(&dir, Some(kill / 2));
        let resumed = staged_run(&dir, None).unwrap();
        assert_eq!(
            resumed.shards, reference.shards,
            "killed after batch {kill}"
        );
        assert_eq!(
            read_all::<Document>(&dir),
            read_all::<Document>(&tmp.path().join("ref"))
        );
        assert!(Dataset::open(&dir).unwrap().verify().is_empty());
    }
}

#[test]
fn resume_refuses_another_config_and_overwrite_starts_again() {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(tmp.path(), &docs("a", 5), 10);
    let err = try_documents_writer(tmp.path(), "other", 10).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    let w = DatasetWriter::create(
        tmp.path(),
        DatasetKind::Documents,
        producer("other"),
        vec![],
        WriterOptions {
            mode: OpenMode::Overwrite,
            ..opts(10)
        },
    )
    .unwrap();
    assert_eq!(w.manifest().shards.len(), 0);
    assert!(!tmp.path().join("part-00000.parquet").exists());
}

#[test]
fn two_writers_cannot_share_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let _first = DatasetWriter::create(
        tmp.path(),
        DatasetKind::Tokens,
        producer("x"),
        vec![],
        opts(10),
    )
    .unwrap();
    let err = DatasetWriter::create(
        tmp.path(),
        DatasetKind::Tokens,
        producer("x"),
        vec![],
        opts(10),
    )
    .unwrap_err();
    assert!(err.to_string().contains("another writer"), "{err}");
}

#[test]
fn a_follower_started_first_sees_every_shard_in_order_and_ends_at_seal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("growing");
    let follower = follow(&dir)
        .poll_interval(Duration::from_millis(5))
        .timeout(Duration::from_secs(30));
    let writer_dir = dir.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let mut w = documents_writer(&writer_dir, "f", 4);
        for s in 0..6 {
            let key = format!("s{s}");
            w.write(&key, &Document::to_batch(&docs(&key, 5)).unwrap())
                .unwrap();
            w.finish_source(&key).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        w.seal().unwrap()
    });
    let seen: Vec<_> = follower.map(Result::unwrap).collect();
    let manifest = writer.join().unwrap();
    assert_eq!(seen, manifest.shards);
    assert_eq!(seen.len(), 8);
}

#[test]
fn a_follower_times_out_on_a_stalled_producer() {
    let tmp = tempfile::tempdir().unwrap();
    let _w = documents_writer(tmp.path(), "x", 4);
    let mut f = follow(tmp.path())
        .poll_interval(Duration::from_millis(5))
        .timeout(Duration::from_millis(50));
    assert!(f.next().unwrap().is_err());
    assert!(f.next().is_none());
}

/// A dataset of 30 documents in three shards, in a fresh folder, with the bytes of shard
/// `name` changed by `edit`.
fn with_damaged_shard(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(tmp.path(), &docs("a", 30), 10);
    let shard = tmp.path().join(name);
    let mut bytes = std::fs::read(&shard).unwrap();
    edit(&mut bytes);
    std::fs::write(&shard, bytes).unwrap();
    tmp
}

#[test]
fn verify_catches_a_flipped_byte() {
    let tmp = with_damaged_shard("part-00001.parquet", |bytes| {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
    });
    let problems = Dataset::open(tmp.path()).unwrap().verify();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let msg = problems[0].to_string();
    assert!(
        msg.contains("part-00001.parquet") && msg.contains("checksum"),
        "{msg}"
    );
}

#[test]
fn a_truncated_shard_is_refused_when_read() {
    let tmp = with_damaged_shard("part-00002.parquet", |bytes| {
        bytes.truncate(bytes.len() - 10);
    });
    let ds = Dataset::open(tmp.path()).unwrap();
    let err = ds
        .batches(&ReadOptions::default())
        .find_map(Result::err)
        .unwrap();
    assert!(
        matches!(err, ShardError::Corrupt { ref shard, .. } if shard == "part-00002.parquet"),
        "{err}"
    );
}

#[test]
fn a_manifest_pointing_outside_the_dataset_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_rows(tmp.path(), &docs("a", 3), 10);
    let path = tmp.path().join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("part-00000.parquet", "../../etc/passwd"),
    )
    .unwrap();
    let err = Dataset::open(tmp.path()).unwrap_err();
    assert!(matches!(err, ShardError::UnsafePath { .. }), "{err}");
    assert!(err.to_string().contains("../../etc/passwd"), "{err}");
}

#[test]
fn a_wrong_schema_is_refused_naming_the_column() {
    let tmp = tempfile::tempdir().unwrap();
    // Writing tokens rows into a documents dataset.
    let mut w = documents_writer(tmp.path(), "x", 10);
    let tokens = TokenSeq::to_batch(&[TokenSeq {
        doc_id: "d".into(),
        input_ids: vec![1],
        split: "train".into(),
    }])
    .unwrap();
    let err = w.write("s", &tokens).unwrap_err();
    assert!(matches!(err, ShardError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("`id`"), "{err}");
    drop(w);

    // A tokens shard behind a manifest that claims documents: refused when read.
    let tdir = tmp.path().join("t");
    write_rows(
        &tdir,
        &[TokenSeq {
            doc_id: "d".into(),
            input_ids: vec![1],
            split: "train".into(),
        }],
        10,
    );
    let path = tdir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"kind\": \"tokens\"", "\"kind\": \"documents\""),
    )
    .unwrap();
    let ds = Dataset::open(&tdir).unwrap();
    let err = ds
        .batches(&ReadOptions::default())
        .next()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("column `id`"), "{err}");
    assert!(
        ds.verify()
            .iter()
            .any(|p| p.to_string().contains("schema mismatch"))
    );
}

#[test]
fn sources_without_rows_are_done_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = documents_writer(tmp.path(), "x", 10);
    w.finish_source("empty").unwrap();
    drop(w);
    let w = documents_writer(tmp.path(), "x", 10);
    assert!(w.is_done("empty"));
}
