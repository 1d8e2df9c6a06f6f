//! A safetensors checkpoint, memory-mapped (or in memory, from a `FileStore`): single file or
//! sharded, read tensor by tensor.
//!
//! [`Checkpoint`] owns the maps and an index of every tensor (dtype, shape, byte range); nothing
//! is copied until [`Checkpoint::read_as`] converts one tensor into the caller's buffer. Names
//! are canonical (`model.` prefix on encoder tensors) whether or not the file carries the prefix.
//! What a config requires, and the check before any upload, live in `weights/expected.rs`.

mod convert;
mod expected;
mod header;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::Dtype;

pub use expected::{Heads, expected_tensors, param_count};

use crate::files::{Blob, FileStore};
use crate::{Error, Result};

/// Single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Element type of a tensor as stored in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightDType {
    F32,
    F16,
    BF16,
}

impl WeightDType {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            WeightDType::F32 => 4,
            WeightDType::F16 | WeightDType::BF16 => 2,
        }
    }

    /// The safetensors spelling.
    pub fn name(self) -> &'static str {
        match self {
            WeightDType::F32 => "F32",
            WeightDType::F16 => "F16",
            WeightDType::BF16 => "BF16",
        }
    }

    fn from_safetensors(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F32 => Some(WeightDType::F32),
            Dtype::F16 => Some(WeightDType::F16),
            Dtype::BF16 => Some(WeightDType::BF16),
            _ => None,
        }
    }
}

/// Element type a tensor is converted to when read (what the GPU buffers hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Storage {
    F32,
    F16,
}

impl Storage {
    /// Bytes per element.
    pub fn size_bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::F16 => 2,
        }
    }
}

/// The canonical name of a tensor: encoder tensors saved from the bare `ModernBertModel`
/// (`embeddings.*`, `layers.*`, `final_norm.*`) get the `model.` prefix; others are unchanged.
pub fn canonical_name(name: &str) -> String {
    const ENCODER: [&str; 3] = ["embeddings.", "layers.", "final_norm."];
    if ENCODER.iter().any(|prefix| name.starts_with(prefix)) {
        format!("model.{name}")
    } else {
        name.to_owned()
    }
}

/// One safetensors file, mapped or in memory.
struct Shard {
    path: PathBuf,
    map: Blob,
}

/// Where a tensor lives: shard, dtype, shape and absolute byte range in the map.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// An opened checkpoint: the maps of its files and an index of its tensors by canonical name.
pub struct Checkpoint {
    dir: PathBuf,
    shards: Vec<Shard>,
    tensors: HashMap<String, Entry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("dir", &self.dir)
            .field("files", &self.files())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards listed by `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Weights {
                path: dir.to_path_buf(),
                message: "not a directory (expected a model directory with model.safetensors)"
                    .into(),
            });
        }
        Self::open_in(&FileStore::disk(), dir)
    }

    /// `open` on the files of `store` (a model folder's files in memory).
    pub fn open_in(store: &FileStore, dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        if store.is_file(&single) {
            return Self::open_files(store, dir, &[single], None);
        }
        let index = dir.join(INDEX_FILE);
        if store.is_file(&index) {
            let (files, weight_map) = header::read_index(store, &index, dir)?;
            return Self::open_files(store, dir, &files, Some((&index, &weight_map)));
        }
        Err(Error::Weights {
            path: dir.to_path_buf(),
            message: format!("no {SINGLE_FILE} or {INDEX_FILE} in this directory"),
        })
    }

    /// Opens one safetensors file directly.
    pub fn open_file(path: &Path) -> Result<Self> {
        Self::open_file_in(&FileStore::disk(), path)
    }

    /// `open_file` on a file of `store`.
    pub fn open_file_in(store: &FileStore, path: &Path) -> Result<Self> {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::open_files(store, &dir, &[path.to_path_buf()], None)
    }

    fn open_files(
        store: &FileStore,
        dir: &Path,
        files: &[PathBuf],
        index: Option<(&Path, &HashMap<String, String>)>,
    ) -> Result<Self> {
        let mut shards = Vec::with_capacity(files.len());
        let mut tensors: HashMap<String, Entry> = HashMap::new();
        for (shard, path) in files.iter().enumerate() {
            let map = store.read(path)?;
            for (name, info) in header::parse(&map, path)? {
                let canonical = canonical_name(&name);
                let entry = Entry {
                    shard,
                    dtype: info.dtype,
                    shape: info.shape,
                    start: info.start,
                    end: info.end,
                };
                if let Some(old) = tensors.insert(canonical.clone(), entry) {
                    let other = files.get(old.shard).unwrap_or(path);
                    return Err(Error::Weights {
                        path: path.clone(),
                        message: format!(
                            "tensor '{canonical}' is stored twice (also in {}, with or without \
                             the `model.` prefix)",
                            other.display()
                        ),
                    });
                }
            }
            shards.push(Shard {
                path: path.clone(),
                map,
            });
        }
        let checkpoint = Checkpoint {
            dir: dir.to_path_buf(),
            shards,
            tensors,
        };
        if let Some((index_path, weight_map)) = index {
            checkpoint.check_index(index_path, weight_map)?;
        }
        Ok(checkpoint)
    }

    /// Every tensor the index names must be in the shard it names.
    fn check_index(&self, index_path: &Path, weight_map: &HashMap<String, String>) -> Result<()> {
        for (name, file) in weight_map {
            let canonical = canonical_name(name);
            let found = self
                .tensors
                .get(&canonical)
                .map(|e| &self.shards[e.shard].path);
            let in_file = found.and_then(|p| p.file_name()).and_then(|f| f.to_str());
            if in_file != Some(file.as_str()) {
                return Err(Error::Weights {
                    path: index_path.to_path_buf(),
                    message: format!(
                        "the index puts tensor '{name}' in {file}, but it is not there"
                    ),
                });
            }
        }
        Ok(())
    }

    /// The directory the checkpoint was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The safetensors files, in opening order.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Canonical tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Whether a tensor exists (either spelling of the name).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(&canonical_name(name))
    }

    /// Shape of a tensor, `None` when absent.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors
            .get(&canonical_name(name))
            .map(|e| e.shape.as_slice())
    }

    /// Stored dtype of a tensor; an error when absent or not F32/F16/BF16.
    pub fn dtype(&self, name: &str) -> Result<WeightDType> {
        let (_, entry) = self.entry(name)?;
        self.supported(name, entry)
    }

    /// The file a tensor lives in, `None` when absent.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.tensors
            .get(&canonical_name(name))
            .map(|e| self.shards[e.shard].path.as_path())
    }

    fn entry(&self, name: &str) -> Result<(String, &Entry)> {
        let canonical = canonical_name(name);
        match self.tensors.get(&canonical) {
            Some(entry) => Ok((canonical, entry)),
            None => Err(Error::Weights {
                path: self.dir.clone(),
                message: format!("missing tensor '{canonical}'"),
            }),
        }
    }

    fn supported(&self, name: &str, entry: &Entry) -> Result<WeightDType> {
        WeightDType::from_safetensors(entry.dtype).ok_or_else(|| Error::Weights {
            path: self.shards[entry.shard].path.clone(),
            message: format!(
                "tensor '{}' has dtype {:?}; only F32, F16 and BF16 are supported",
                canonical_name(name),
                entry.dtype
            ),
        })
    }

    /// Reads a tensor into `out` (cleared first) as little-endian `storage` elements,
    /// converting from the stored dtype on the way; returns the shape. Converting to F16 fails
    /// on a finite value beyond the f16 range rather than storing infinity.
    pub fn read_as(&self, name: &str, storage: Storage, out: &mut Vec<u8>) -> Result<Vec<usize>> {
        let (canonical, entry) = self.entry(name)?;
        let src = self.supported(name, entry)?;
        let shard = &self.shards[entry.shard];
        let bytes = shard
            .map
            .get(entry.start..entry.end)
            .ok_or_else(|| Error::Weights {
                path: shard.path.clone(),
                message: format!("tensor '{canonical}' lies past the end of the file"),
            })?;
        out.clear();
        convert::convert(src, storage, bytes, out).map_err(|value| Error::Weights {
            path: shard.path.clone(),
            message: format!(
                "tensor '{canonical}' holds {value}, beyond the f16 range (65504); load it as f32"
            ),
        })?;
        Ok(entry.shape.clone())
    }

    /// Reads a tensor as `f32` values (for CPU references and tests); returns values and shape.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let mut bytes = Vec::new();
        let shape = self.read_as(name, Storage::F32, &mut bytes)?;
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((values, shape))
    }
}
