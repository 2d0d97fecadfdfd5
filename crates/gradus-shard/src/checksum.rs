//! Shard checksums: xxh3-64 over the file's bytes, computed while the shard is written so
//! that committing a shard never reads it back.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use xxhash_rust::xxh3::Xxh3;

/// The prefix that names the algorithm inside a checksum string.
pub const CHECKSUM_PREFIX: &str = "xxh3-64:";

/// Formats a finished hash the way manifests store it.
pub fn format_checksum(hash: u64) -> String {
    format!("{CHECKSUM_PREFIX}{hash:016x}")
}

/// A writer that hashes and counts every byte passing through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Box<Xxh3>,
    bytes: u64,
}

impl<W> std::fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashingWriter")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Box::default(),
            bytes: 0,
        }
    }

    /// The checksum of everything written so far, and the inner writer.
    pub fn finish(self) -> (W, u64, String) {
        let sum = format_checksum(self.hasher.digest());
        (self.inner, self.bytes, sum)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Size and checksum of a file on disk, streamed in 1 MiB reads.
pub fn checksum_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, format_checksum(hasher.digest())))
}

/// Checksum of an in-memory value (configs, manifests).
pub fn checksum_bytes(bytes: &[u8]) -> String {
    format_checksum(xxhash_rust::xxh3::xxh3_64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_hash_equals_one_shot_hash() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, bytes, sum) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(bytes, 11);
        assert_eq!(sum, checksum_bytes(b"hello world"));
        assert_ne!(sum, checksum_bytes(b"hello worle"));
    }
}
