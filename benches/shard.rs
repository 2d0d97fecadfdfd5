//! Shard layer versus raw Parquet: write and read throughput of a `documents` dataset
//! (256 MB of text under `cargo bench`, 16 MB when run as a test). The shard layer adds
//! checksums, rotation, atomic commits and schema checks; its cost should stay under 10%.
//! Reads run with and without checksum verification (`--no-verify-inputs`).

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gradus_shard::arrow::record_batch::RecordBatch;
use gradus_shard::{
    Dataset, DatasetKind, DatasetWriter, Document, OpenMode, Producer, ReadOptions, Record,
    WriterOptions,
};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

const ROWS_PER_BATCH: usize = 8192;

/// Text-like documents of ~1 KB from a 4,096-word vocabulary, pseudo-random so that
/// compression sees realistic (not degenerate) input.
fn corpus(megabytes: usize) -> (Vec<RecordBatch>, u64) {
    let vocab: Vec<String> = (0..4096u32)
        .map(|i| {
            let len = 2 + (i.wrapping_mul(2_654_435_761) >> 28) as usize % 9;
            (0..len)
                .map(|j| (b'a' + ((i as usize * 31 + j * 7) % 26) as u8) as char)
                .collect()
        })
        .collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut batches, mut bytes, mut id) = (Vec::new(), 0u64, 0u64);
    while bytes < (megabytes as u64) << 20 {
        let docs: Vec<Document> = (0..ROWS_PER_BATCH)
            .map(|_| {
                let words = 120 + (next() % 120) as usize;
                let text: Vec<&str> = (0..words)
                    .map(|_| vocab[(next() % 4096) as usize].as_str())
                    .collect();
                id += 1;
                Document {
                    id: format!("bench:{id}"),
                    text: text.join(" "),
                    source: "bench".into(),
                    metadata: None,
                }
            })
            .collect();
        bytes += docs
            .iter()
            .map(|d| (d.text.len() + d.id.len() + 5) as u64)
            .sum::<u64>();
        batches.push(Document::to_batch(&docs).expect("valid batch"));
    }
    (batches, bytes)
}

fn raw_props(opts: &WriterOptions) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(opts.zstd_level).expect("level"),
        ))
        .set_max_row_group_row_count(Some(opts.row_group_rows))
        .set_max_row_group_bytes(Some(opts.row_group_bytes))
        .build()
}

fn write_raw(dir: &Path, batches: &[RecordBatch]) {
    let file = File::create(dir.join("raw.parquet")).expect("create");
    let props = raw_props(&WriterOptions::default());
    let mut w = ArrowWriter::try_new(
        BufWriter::with_capacity(1 << 20, file),
        batches[0].schema(),
        Some(props),
    )
    .expect("writer");
    for b in batches {
        w.write(b).expect("write");
    }
    w.close().expect("close");
}

fn write_shards(dir: &Path, batches: &[RecordBatch]) {
    let producer = Producer::new("bench", &()).expect("producer");
    let opts = WriterOptions {
        mode: OpenMode::Overwrite,
        ..WriterOptions::default()
    };
    let mut w =
        DatasetWriter::create(dir, DatasetKind::Documents, producer, vec![], opts).expect("create");
    for b in batches {
        w.write("bench", b).expect("write");
    }
    w.finish_source("bench").expect("finish");
    w.seal().expect("seal");
}

fn read_raw(dir: &Path) -> usize {
    let file = File::open(dir.join("raw.parquet")).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("reader")
        .with_batch_size(ROWS_PER_BATCH)
        .build()
        .expect("build")
        .map(|b| b.expect("batch").num_rows())
        .sum()
}

fn read_shards(dir: &Path, verify_checksums: bool) -> usize {
    let opts = ReadOptions {
        verify_checksums,
        ..ReadOptions::default().batch_size(ROWS_PER_BATCH)
    };
    Dataset::open(dir)
        .expect("open")
        .batches(&opts)
        .map(|b| b.expect("batch").num_rows())
        .sum()
}

fn bench(c: &mut Criterion) {
    let full = std::env::args().any(|a| a == "--bench");
    println!("{}", gradus_testkit::machine::Machine::here().line());
    let megabytes = if full { 256 } else { 16 };
    let (batches, bytes) = corpus(megabytes);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (raw_dir, shard_dir) = (tmp.path().join("raw"), tmp.path().join("shards"));
    std::fs::create_dir_all(&raw_dir).expect("mkdir");
    // Both layouts exist before any benchmark, so the read group also runs alone.
    write_raw(&raw_dir, &batches);
    write_shards(&shard_dir, &batches);

    let mut write = c.benchmark_group("write");
    write.sample_size(10).throughput(Throughput::Bytes(bytes));
    write.bench_function(
        BenchmarkId::new("raw_parquet", format!("{megabytes}MB_{rows}rows")),
        |b| b.iter(|| write_raw(&raw_dir, &batches)),
    );
    write.bench_function(
        BenchmarkId::new("shard_layer", format!("{megabytes}MB_{rows}rows")),
        |b| b.iter(|| write_shards(&shard_dir, &batches)),
    );
    write.finish();

    let mut read = c.benchmark_group("read");
    read.sample_size(10).throughput(Throughput::Bytes(bytes));
    read.bench_function(
        BenchmarkId::new("raw_parquet", format!("{megabytes}MB_{rows}rows")),
        |b| b.iter(|| assert_eq!(read_raw(&raw_dir), rows)),
    );
    read.bench_function(
        BenchmarkId::new("shard_layer", format!("{megabytes}MB_{rows}rows")),
        |b| b.iter(|| assert_eq!(read_shards(&shard_dir, true), rows)),
    );
    read.bench_function(
        BenchmarkId::new(
            "shard_layer_unverified",
            format!("{megabytes}MB_{rows}rows"),
        ),
        |b| b.iter(|| assert_eq!(read_shards(&shard_dir, false), rows)),
    );
    read.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
