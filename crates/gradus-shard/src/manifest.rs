//! `manifest.json`: what a dataset is, who made it from what, and which shards are
//! committed. The manifest is the only source of truth: a shard file that it does not
//! list does not exist for readers.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::checksum::checksum_bytes;
use crate::error::{Result, ShardError};
use crate::schema::DatasetKind;

/// File name of the manifest inside a dataset folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Version of the manifest layout itself (not of the row schemas).
pub const FORMAT_VERSION: u32 = 1;

/// The stage that produced a dataset, with the exact configuration it ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Producer {
    /// Stage name (`clean`, `tokenize`, ...).
    pub stage: String,
    /// Version of the producing build.
    pub version: String,
    /// The resolved configuration, as JSON.
    pub config: Value,
    /// `xxh3-64:` hash of the canonical JSON of `config`: two runs with equal hashes ran
    /// with equal settings.
    pub config_hash: String,
}

impl Producer {
    /// A producer record for `stage` with `config`, hashing the config.
    pub fn new(stage: &str, config: &impl Serialize) -> Result<Self, serde_json::Error> {
        let config = serde_json::to_value(config)?;
        Ok(Self {
            stage: stage.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_hash: config_hash(&config),
            config,
        })
    }
}

/// Hash of a configuration value over its canonical form (object keys sorted at every
/// level), so equal configs hash equally whatever order their keys were written in.
pub fn config_hash(config: &Value) -> String {
    checksum_bytes(canonical(config).to_string().as_bytes())
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// An input a dataset was made from: another dataset or raw files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRef {
    /// Path as the user gave it (a dataset folder, a file or a glob).
    pub path: String,
    /// The kind, when the input is a gradus dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DatasetKind>,
}

impl InputRef {
    /// Raw input files (a path or glob), recorded as given.
    pub fn files(pattern: &str) -> Self {
        Self {
            path: pattern.to_string(),
            kind: None,
        }
    }

    /// An upstream dataset, recorded relative to `output` (the folder of the dataset
    /// being written) so a pipeline's run folder can be moved as a whole.
    pub fn dataset(input: &Path, output: &Path, kind: DatasetKind) -> Self {
        Self {
            path: relative_path(input, output),
            kind: Some(kind),
        }
    }

    /// The source key of shard `file` of this input, as stored in [`ShardEntry::sources`].
    pub fn source_key(&self, file: &str) -> String {
        format!("{}/{file}", self.path)
    }
}

/// `target` as seen from `base`, both made absolute and normalised lexically.
fn relative_path(target: &Path, base: &Path) -> String {
    let norm = |p: &Path| -> Vec<std::ffi::OsString> {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut parts: Vec<std::ffi::OsString> = Vec::new();
        for c in abs.components() {
            match c {
                Component::ParentDir => {
                    parts.pop();
                }
                Component::Normal(x) => parts.push(x.to_os_string()),
                _ => {}
            }
        }
        parts
    };
    let (t, b) = (norm(target), norm(base));
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for part in &t[common..] {
        rel.push(part);
    }
    if rel.as_os_str().is_empty() {
        ".".into()
    } else {
        rel.to_string_lossy().into_owned()
    }
}

/// One committed shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name relative to the dataset folder.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    /// `xxh3-64:` of the file's bytes.
    pub checksum: String,
    /// Keys of the input units (files, upstream shards) whose rows are in this shard.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// The content of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: DatasetKind,
    pub schema_version: u32,
    pub producer: Producer,
    #[serde(default)]
    pub inputs: Vec<InputRef>,
    pub shards: Vec<ShardEntry>,
    /// Input units fully represented by the committed shards, in the order they were
    /// finished. A resumed stage skips these.
    #[serde(default)]
    pub done_sources: Vec<String>,
    pub sealed: bool,
    /// Free-form statistics of the producing stage.
    #[serde(default)]
    pub stats: Map<String, Value>,
}

impl Manifest {
    /// An empty, unsealed manifest.
    pub fn new(kind: DatasetKind, producer: Producer, inputs: Vec<InputRef>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            kind,
            schema_version: kind.schema_version(),
            producer,
            inputs,
            shards: Vec::new(),
            done_sources: Vec::new(),
            sealed: false,
            stats: Map::new(),
        }
    }

    /// Total rows in committed shards.
    pub fn rows(&self) -> u64 {
        self.shards.iter().map(|s| s.rows).sum()
    }

    /// Total bytes of committed shards.
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    /// Path of the manifest of the dataset in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(MANIFEST_FILE)
    }

    /// Reads and validates the manifest of the dataset in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = fs::read_to_string(&path).map_err(|e| ShardError::io(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| ShardError::Manifest {
            dataset: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        manifest.validate(dir)?;
        Ok(manifest)
    }

    /// Reads the manifest if the dataset exists, `None` if `dir` holds none yet.
    pub fn load_if_exists(dir: &Path) -> Result<Option<Self>> {
        if Self::path(dir).exists() {
            Self::load(dir).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Refuses manifests this build cannot read safely.
    fn validate(&self, dir: &Path) -> Result<()> {
        let bad = |reason: String| ShardError::Manifest {
            dataset: dir.to_path_buf(),
            reason,
        };
        if self.format_version > FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} is newer than this build reads ({FORMAT_VERSION})",
                self.format_version
            )));
        }
        if self.schema_version > self.kind.schema_version() {
            return Err(bad(format!(
                "{} schema version {} is newer than this build reads ({})",
                self.kind,
                self.schema_version,
                self.kind.schema_version()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for shard in &self.shards {
            check_inside(dir, &shard.file)?;
            if !seen.insert(shard.file.as_str()) {
                return Err(bad(format!("shard {} is listed twice", shard.file)));
            }
        }
        Ok(())
    }

    /// Writes the manifest atomically: a temporary file, flushed to disk, renamed over the
    /// old one, then the folder synced so the rename itself survives a crash.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".manifest.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| ShardError::Manifest {
            dataset: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&tmp).map_err(|e| ShardError::io(&tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| ShardError::io(&tmp, e))?;
        let path = Self::path(dir);
        fs::rename(&tmp, &path).map_err(|e| ShardError::io(&path, e))?;
        sync_dir(dir)
    }
}

/// A manifest path must be a plain relative path of normal components: no root, no
/// `..`, no `.` tricks, so a manifest can never point a reader outside its dataset.
pub fn check_inside(dir: &Path, path: &str) -> Result<()> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(ShardError::UnsafePath {
            dataset: dir.to_path_buf(),
            path: path.to_string(),
        })
    }
}

/// Makes renames inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    // Directories cannot be opened for syncing on every platform; where they can, a
    // failure to sync is a real error.
    match File::open(dir) {
        Ok(handle) => handle.sync_all().map_err(|e| ShardError::io(dir, e)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_only() {
        let dir = Path::new("ds");
        check_inside(dir, "part-00000.parquet").unwrap();
        check_inside(dir, "sub/part-00000.parquet").unwrap();
        for bad in ["../x.parquet", "/etc/passwd", "a/../../b", "./a", ""] {
            assert!(check_inside(dir, bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn dataset_inputs_are_relative_to_the_output() {
        let input = InputRef::dataset(
            Path::new("/r/run/docs"),
            Path::new("/r/run/tokens"),
            DatasetKind::Documents,
        );
        assert_eq!(input.path, "../docs");
        assert_eq!(
            input.source_key("part-00001.parquet"),
            "../docs/part-00001.parquet"
        );
        assert_eq!(relative_path(Path::new("/a/b/../c"), Path::new("/a")), "c");
    }

    #[test]
    fn config_hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":{"c":2,"d":3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":{"d":3,"c":2},"a":1}"#).unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        let c: Value = serde_json::from_str(r#"{"a":2,"b":{"c":2,"d":3}}"#).unwrap();
        assert_ne!(config_hash(&a), config_hash(&c));
    }
}
