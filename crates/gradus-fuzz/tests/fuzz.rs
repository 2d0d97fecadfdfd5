//! A short, seeded fuzzing run of every target: each seed damaged by random edits
//! (flips, deletions, insertions of bytes that matter to the format, truncation,
//! duplication), and no target may panic. The seed is fixed, so CI runs the same cases
//! every time; longer runs go through cargo-fuzz (`fuzz/README.md`).

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use gradus_fuzz::{RAW_FORMATS, seeds};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

const SEED: [u8; 32] = *b"gradus fuzz: the same every run!";

/// Bytes that mean something to one of the formats.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\n",
    b"\r\n",
    b"\t",
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\\",
    b"\\u",
    b"\xff",
    b"\xc3",
    b"\0",
    b"0",
    b"-1",
    b"1e309",
    b"18446744073709551616",
    b"null",
    b"true",
    b"=",
    b"[[",
    b"]]",
    b"\"\"\"",
    b"#",
    b"..",
    b"/",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, usize),
    Truncate(usize),
    Repeat(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(i, t)| Edit::Insert(i, t)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Repeat(i, n)),
    ]
}

fn damage(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = at(i, b.len());
                b[i] ^= x.max(1);
            }
            Edit::Delete(i, n) if !b.is_empty() => {
                let i = at(i, b.len());
                b.drain(i..(i + n).min(b.len()));
            }
            Edit::Insert(i, t) => {
                let i = at(i, b.len() + 1);
                b.splice(i..i, TOKENS[t].iter().copied());
            }
            Edit::Truncate(i) => b.truncate(at(i, b.len() + 1)),
            Edit::Repeat(i, n) if !b.is_empty() => {
                let i = at(i, b.len());
                let piece: Vec<u8> = b[i..(i + n).min(b.len())].to_vec();
                b.splice(i..i, piece);
            }
            _ => {}
        }
    }
    b
}

/// Runs `target` on `cases` damaged copies of `seeds`.
fn fuzz(cases: u32, seeds: &[impl AsRef<[u8]>], target: impl Fn(usize, &[u8])) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let strategy = (0..seeds.len(), prop::collection::vec(edit(), 1..6));
    runner
        .run(&strategy, |(i, edits)| {
            target(i, &damage(seeds[i].as_ref(), &edits));
            Ok(())
        })
        .unwrap();
}

#[test]
fn raw_file_readers_never_panic() {
    let seeds = seeds::raw_files();
    let bytes: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    fuzz(256, &bytes, |i, b| gradus_fuzz::raw_file(seeds[i].0, b));
    assert_eq!(seeds.len(), RAW_FORMATS.len());
}

#[test]
fn manifest_parsing_never_panics() {
    fuzz(128, &[seeds::manifest()], |_, b| gradus_fuzz::manifest(b));
}

#[test]
fn stage_config_parsing_never_panics() {
    fuzz(256, &seeds::stage_configs(), |_, b| {
        gradus_fuzz::stage_config(b)
    });
}

#[test]
fn pipeline_file_parsing_never_panics() {
    fuzz(256, &seeds::pipelines(), |_, b| gradus_fuzz::pipeline(b));
}

#[test]
fn pipeline_inputs_cargo_fuzz_found_stay_fixed() {
    // A multi-byte character inside `${...}` (cargo-fuzz, the `pipeline` target).
    gradus_fuzz::pipeline(
        "name = \"p\"\n[[stage]]\nname = \"a\"\nkind = \"eval\"\ninput = [\"${X:-→}\", \"${→\"]\n"
            .as_bytes(),
    );
}

#[test]
fn tokenizer_json_loading_never_panics() {
    fuzz(256, &[seeds::tokenizer_json()], |_, b| {
        gradus_fuzz::tokenizer_json(b)
    });
}

/// The seeds are what the readers accept, so damaged copies reach past the first check.
#[test]
fn every_seed_is_accepted() {
    for (ext, bytes) in seeds::raw_files() {
        let (_dir, path) = gradus_testkit::temp_file(&format!("input.{ext}"), bytes);
        let table = gradus_tokenize::read_table(&path, true);
        if ext != "txt" {
            assert!(table.unwrap().rows.len() >= 2, "{ext}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    seeds::write_dataset(dir.path());
    assert_eq!(
        gradus_shard::Dataset::open(dir.path()).unwrap().num_rows(),
        2
    );
    for text in seeds::stage_configs() {
        let parsed: toml::Table = toml::from_str(text).unwrap();
        assert!(!parsed.is_empty());
    }
    let dir = tempfile::tempdir().unwrap();
    let pretrain = dir.path().join("pretrain.toml");
    std::fs::write(&pretrain, seeds::stage_configs()[4]).unwrap();
    let args = gradus::cli::StageArgs {
        config: Some(pretrain),
        ..Default::default()
    };
    args.resolve_config::<gradus_pretrain::PretrainConfig>()
        .unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, seeds::tokenizer_json()).unwrap();
    let tk = gradus_tokenize::load(&path).unwrap();
    let enc = tk.encode("Hello, world! A second sentence.", true).unwrap();
    assert_eq!(
        enc.get_tokens(),
        [
            "[CLS]", "hello", ",", "world", "!", "a", "second", "sen", "##tence", ".", "[SEP]"
        ]
    );
}

/// What the fuzzing found, kept as cases: tokenizers 0.23.2 panics on a decoder of an
/// unknown shape (while loading) and on a template that names a special token it does
/// not define (on the first encode). Both are now a clean error from the loader.
#[test]
fn found_tokenizer_panics_are_errors() {
    let seed = String::from_utf8(seeds::tokenizer_json()).unwrap();
    let damaged = [
        seed.replace(
            r###""decoder":{"type":"WordPiece","prefix":"##","cleanup":true}"###,
            r#""decoder":[1]"#,
        ),
        seed.replacen(
            r#""single":[{"SpecialToken":{"id":"[CLS]""#,
            r#""single":[{"SpecialToken":{"id":"[XLS]""#,
            1,
        ),
    ];
    for (i, text) in damaged.iter().enumerate() {
        assert_ne!(text, &seed, "case {i} changed nothing");
        let (_dir, path) = gradus_testkit::temp_file("tokenizer.json", text);
        let err = gradus_tokenize::load(&path).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "case {i}: {err}");
    }
}
