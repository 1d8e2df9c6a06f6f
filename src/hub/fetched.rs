//! Models whose files come as bytes: a browser fetching a model folder by URL, or the files
//! an application holds. [`resolve_fetched`] asks its getter for each file that the shared
//! layout (`collect`, and the caller's companions) names, and resolves into files of an
//! in-memory `FileStore`: the same files, checks and errors as a directory.
//!
//! `collect` is synchronous and the getter is not, so `collect` runs over the files got so
//! far; the first file it asks for that is not there yet is noted and refused, the getter
//! fetches it, and `collect` runs again. Each round adds a file (or its absence), so a model
//! of N files resolves in at most N + 1 rounds, each of them only parsing small JSON files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::{Companions, Fetch, ModelFiles, collect, hub_err};
use crate::files::FileStore;
use crate::{Error, Result};

/// The files got so far, under `root`.
struct Memory<'a> {
    name: &'a str,
    root: PathBuf,
    store: FileStore,
    absent: &'a BTreeSet<String>,
    /// The first file asked for that was neither got nor known to be absent.
    wanted: Option<String>,
}

impl Fetch for Memory<'_> {
    fn fetch(&mut self, file: &str) -> Result<Option<PathBuf>> {
        let path = self.root.join(file);
        if self.store.is_file(&path) {
            return Ok(Some(path));
        }
        if self.absent.contains(file) {
            return Ok(None);
        }
        self.wanted.get_or_insert_with(|| file.to_string());
        Err(hub_err(self.name, format!("{file} has not been fetched")))
    }
    fn missing(&self, file: &str) -> Error {
        hub_err(self.name, format!("no {file} in this model folder"))
    }
    fn store(&self) -> FileStore {
        self.store.clone()
    }
}

/// Resolves the model `name` (a folder URL, or any label: it names the files in errors,
/// `name/config.json`), whose files `get` returns by name relative to the model root
/// (`config.json`, `1_Pooling/config.json`): `Ok(None)` when the model has no such file.
/// `companions` is the layout's, as in `resolve_with`.
pub async fn resolve_fetched(
    name: &str,
    mut get: impl AsyncFnMut(&str) -> Result<Option<Vec<u8>>>,
    companions: &mut Companions<'_>,
) -> Result<ModelFiles> {
    let root = PathBuf::from(name.trim_end_matches('/'));
    let mut got: BTreeMap<PathBuf, Arc<[u8]>> = BTreeMap::new();
    let mut absent = BTreeSet::new();
    loop {
        let mut memory = Memory {
            name,
            root: root.clone(),
            store: FileStore::shared(got.clone()),
            absent: &absent,
            wanted: None,
        };
        let result = collect(&mut memory, None, companions);
        let Some(file) = memory.wanted else {
            return result;
        };
        let path = root.join(&file);
        if got.contains_key(&path) || absent.contains(&file) {
            // Asked for again after it was answered: a bug, not the model's fault.
            return Err(hub_err(name, format!("{file} was asked for twice")));
        }
        match get(&file).await? {
            Some(bytes) => {
                got.insert(path, Arc::from(bytes));
            }
            None => {
                absent.insert(file);
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// Resolves a fixture directory through a getter that reads its files, counting calls.
    fn resolve_dir(dir: &str) -> (Result<ModelFiles>, Vec<String>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut asked = Vec::new();
        let get = async |file: &str| {
            asked.push(file.to_string());
            Ok(std::fs::read(root.join(file)).ok())
        };
        let mut companions = crate::sentence::companion_files;
        let files = pollster::block_on(resolve_fetched("site/m", get, &mut companions));
        (files, asked)
    }

    #[test]
    fn a_sentence_transformers_folder_resolves_file_by_file() {
        let (files, asked) = resolve_dir("tests/fixtures/st_mean_dense");
        let files = files.unwrap();
        assert!(files.store.in_memory());
        assert_eq!(files.config, PathBuf::from("site/m/config.json"));
        assert!(files.companions.contains_key("modules.json"));
        assert!(files.companions.contains_key("2_Dense/model.safetensors"));
        // Each file is asked for once.
        let unique: BTreeSet<&String> = asked.iter().collect();
        assert_eq!(unique.len(), asked.len(), "{asked:?}");
    }

    #[test]
    fn a_sharded_checkpoint_fetches_its_shards_and_a_missing_config_is_named() {
        let (files, _) = resolve_dir("tests/fixtures/mlm_sharded");
        assert_eq!(files.unwrap().weights.len(), 6);
        let (files, asked) = resolve_dir("tests/fixtures/no_such_model");
        let e = files.unwrap_err().to_string();
        assert!(e.contains("site/m") && e.contains("config.json"), "{e}");
        assert_eq!(asked, ["config.json"]);
    }
}
