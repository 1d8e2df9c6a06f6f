//! Where a model's files are read from: the file system (weights memory-mapped), or files
//! handed in as bytes (a browser's fetches of a model folder, an app's bundled model). The
//! loaders (config, weights, tokenizer, the sentence-transformers modules) read through the
//! [`FileStore`] of their `hub::ModelFiles`, so one loader, with one set of checks and
//! errors, serves both.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result};

/// The bytes of one file: mapped from disk, or shared from memory.
pub enum Blob {
    /// A read-only map of a file on disk.
    #[cfg(not(target_arch = "wasm32"))]
    Mapped(memmap2::Mmap),
    /// Bytes held in memory.
    Shared(Arc<[u8]>),
}

impl std::ops::Deref for Blob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            #[cfg(not(target_arch = "wasm32"))]
            Blob::Mapped(map) => map,
            Blob::Shared(bytes) => bytes,
        }
    }
}

/// The file system, or a set of files in memory named by path. Paths of files in memory
/// are as given (`config.json`, `1_Pooling/config.json`, or under a folder name that
/// labels errors); nothing outside the set is ever read.
#[derive(Clone, Default)]
pub struct FileStore {
    memory: Option<Arc<BTreeMap<PathBuf, Arc<[u8]>>>>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.memory {
            None => f.write_str("FileStore(disk)"),
            Some(m) => f.debug_list().entries(m.keys()).finish(),
        }
    }
}

impl PartialEq for FileStore {
    fn eq(&self, other: &Self) -> bool {
        match (&self.memory, &other.memory) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }
}

impl Eq for FileStore {}

impl FileStore {
    /// The file system.
    pub fn disk() -> Self {
        Self::default()
    }

    /// Files in memory, by path.
    pub fn memory<P: Into<PathBuf>>(files: impl IntoIterator<Item = (P, Vec<u8>)>) -> Self {
        let map = files
            .into_iter()
            .map(|(p, bytes)| (p.into(), Arc::from(bytes)))
            .collect();
        FileStore {
            memory: Some(Arc::new(map)),
        }
    }

    /// Files in memory whose bytes are shared with the caller.
    pub(crate) fn shared(map: BTreeMap<PathBuf, Arc<[u8]>>) -> Self {
        FileStore {
            memory: Some(Arc::new(map)),
        }
    }

    /// Whether the files are in memory (not on disk).
    pub fn in_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Whether `path` is a file of this store.
    pub fn is_file(&self, path: &Path) -> bool {
        match &self.memory {
            Some(m) => m.contains_key(path),
            None => path.is_file(),
        }
    }

    /// The bytes of `path`: a map of the file on disk, or the bytes in memory.
    pub fn read(&self, path: &Path) -> Result<Blob> {
        match &self.memory {
            Some(m) => m
                .get(path)
                .map(|b| Blob::Shared(b.clone()))
                .ok_or_else(|| not_given(path)),
            None => map_file(path),
        }
    }

    /// The text of `path` (UTF-8).
    pub fn read_to_string(&self, path: &Path) -> Result<String> {
        match &self.memory {
            Some(m) => {
                let bytes = m.get(path).ok_or_else(|| not_given(path))?;
                String::from_utf8(bytes.to_vec()).map_err(|e| {
                    Error::io(
                        path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })
            }
            None => std::fs::read_to_string(path).map_err(|e| Error::io(path, e)),
        }
    }
}

fn not_given(path: &Path) -> Error {
    let e = std::io::Error::new(std::io::ErrorKind::NotFound, "not among the files given");
    Error::io(path, e)
}

#[cfg(not(target_arch = "wasm32"))]
fn map_file(path: &Path) -> Result<Blob> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and lives as long as the blob. Another process truncating
    // the file while it is mapped is outside what we can defend against (the same contract
    // as every mmap-based safetensors loader).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Blob::Mapped(map))
}

/// A browser has no file system: its files come as bytes.
#[cfg(target_arch = "wasm32")]
fn map_file(path: &Path) -> Result<Blob> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(Blob::Shared(Arc::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_memory_are_read_by_path_and_nothing_else_is() {
        let store = FileStore::memory([("m/config.json", b"{}".to_vec())]);
        assert!(store.in_memory());
        assert!(store.is_file(Path::new("m/config.json")));
        assert!(!store.is_file(Path::new("Cargo.toml")));
        assert_eq!(&*store.read(Path::new("m/config.json")).unwrap(), b"{}");
        assert_eq!(
            store.read_to_string(Path::new("m/config.json")).unwrap(),
            "{}"
        );
        let e = store
            .read(Path::new("Cargo.toml"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("Cargo.toml") && e.contains("not among the files given"),
            "{e}"
        );
        let bad = FileStore::memory([("t.json", vec![0xff, 0xfe])]);
        assert!(bad.read_to_string(Path::new("t.json")).is_err());
    }
}
