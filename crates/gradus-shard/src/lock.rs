//! One writer per folder: an exclusive lock on a file inside it, held for the writer's
//! lifetime and released by the OS when the process ends, however it ends. The holder
//! writes its PID into the file so that a refused second writer can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file every gradus writer takes in its output folder.
pub const LOCK_FILE: &str = ".gradus.lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is in use by another gradus process{}; wait for it or choose another output", folder.display(), holder.map_or(String::new(), |p| format!(" (PID {p})")))]
    Held {
        folder: PathBuf,
        holder: Option<u32>,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive lock on a folder; dropping it releases the folder.
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
    folder: PathBuf,
}

impl FolderLock {
    /// Locks `folder` (which must exist), or says which process holds it.
    pub fn take(folder: &Path) -> Result<Self, LockError> {
        let path = folder.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the file holds the current holder's PID.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    folder: folder.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self {
            _file: file,
            folder: folder.to_path_buf(),
        })
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = FolderLock::take(dir.path()).unwrap();
        let err = FolderLock::take(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        drop(first);
        FolderLock::take(dir.path()).unwrap();
    }
}
