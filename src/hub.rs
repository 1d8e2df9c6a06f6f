//! Model sources: a local directory or a Hugging Face hub id, resolved to local files
//! (config.json, tokenizer.json, safetensors weights). Hub files live in the hf-hub cache
//! (`models--owner--name/{refs,blobs,snapshots}`), shared with Python's `huggingface_hub`.
//!
//! Online, files already in the cache are used without contacting the hub (as hf-hub's
//! `get` does); anything missing is downloaded, reported to `HubOptions::progress`. Offline
//! (`HubOptions::offline`: `--offline` or `HF_HUB_OFFLINE=1`), a miss is an error that says so.
//! Hub ids need the `hub` feature (`hub/remote.rs`); without it only directories resolve.
//! A layout that ships companion files (sentence-transformers' `modules.json` and the
//! folders it names) asks for them through [`Fetch`] in [`resolve_with`]; the hub knows no
//! layout. A model whose files come as bytes (a browser's fetches of a folder) resolves
//! the same way through [`resolve_fetched`], into files of a `FileStore` in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::files::FileStore;
use crate::progress::Observer;
use crate::{Error, Result};

mod fetched;
#[cfg(feature = "hub")]
mod remote;

pub use fetched::resolve_fetched;

const CONFIG: &str = "config.json";
const TOKENIZER: &str = "tokenizer.json";
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local directory holding config.json and the weights.
    Dir(PathBuf),
    /// A hub repository `owner/name`, at `revision` (branch, tag or commit; default "main").
    Hub {
        repo: String,
        revision: Option<String>,
    },
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Dir(dir) => write!(f, "{}", dir.display()),
            ModelSource::Hub { repo, revision } => match revision {
                Some(rev) => write!(f, "{repo}@{rev}"),
                None => write!(f, "{repo}"),
            },
        }
    }
}

impl ModelSource {
    /// An existing directory is `Dir`; `owner/name[@revision]` is `Hub`. Something that
    /// looks like a path (starts with `.`, `/` or `~`, has a backslash or more than one
    /// slash) but is not a directory is an error rather than a hub id.
    pub fn parse(s: &str) -> Result<Self> {
        let err = |message: &str| hub_err(s, message);
        if s.trim().is_empty() {
            return Err(err(
                "empty name: pass a directory or a hub id like owner/name",
            ));
        }
        let path = expand_tilde(s);
        if path.is_dir() {
            return Ok(ModelSource::Dir(path));
        }
        if path.exists() {
            return Err(err("is a file; pass the directory that holds config.json"));
        }
        let (id, revision) = match s.split_once('@') {
            Some((id, rev)) => (id, Some(rev)),
            None => (s, None),
        };
        if looks_like_path(id) {
            return Err(err("directory not found"));
        }
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match id.split_once('/') {
            Some((owner, name)) if valid_part(owner) && valid_part(name) => {}
            _ => {
                return Err(err(
                    "not a directory, nor a hub id like owner/name[@revision]",
                ));
            }
        }
        if revision.is_some_and(|r| r.trim().is_empty()) {
            return Err(err("empty revision after '@'"));
        }
        Ok(ModelSource::Hub {
            repo: id.to_string(),
            revision: revision.map(str::to_string),
        })
    }
}

/// The local files of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The model directory for `ModelSource::Dir`; `None` for hub snapshots (cached files
    /// of one repo may sit in different snapshot folders).
    pub dir: Option<PathBuf>,
    /// config.json.
    pub config: PathBuf,
    /// tokenizer.json, when the model has one.
    pub tokenizer: Option<PathBuf>,
    /// Either `[model.safetensors]`, or `[model.safetensors.index.json, shard, shard, ...]`.
    pub weights: Vec<PathBuf>,
    /// Companion files the caller's layout asked for (`resolve_with`) that exist, by name
    /// relative to the model root (`modules.json`, `1_Pooling/config.json`, ...).
    pub companions: BTreeMap<String, PathBuf>,
    /// Where the paths above are read from: the file system, or files in memory.
    pub store: FileStore,
}

impl ModelFiles {
    /// True when the weights come as an index plus shards.
    pub fn is_sharded(&self) -> bool {
        self.weights
            .first()
            .is_some_and(|p| p.to_string_lossy().ends_with(".index.json"))
    }

    /// The .safetensors files alone, without the index.
    pub fn safetensors(&self) -> &[PathBuf] {
        let skip = usize::from(self.is_sharded());
        &self.weights[skip..]
    }
}

/// How to reach the hub (`LoadOptions::from_env` fills these from `HF_HUB_OFFLINE`,
/// `HF_HUB_CACHE`, `HF_HOME`, `HF_TOKEN` and `HF_ENDPOINT`).
#[derive(Clone, Default)]
pub struct HubOptions {
    /// Use only the cache.
    pub offline: bool,
    /// The hub cache folder (the one holding `models--*`); else `~/.cache/huggingface/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Told about each download (bytes of one file at a time).
    pub progress: Observer,
    /// Access token for gated or private repos; else the cached login.
    pub token: Option<String>,
    /// Another hub than huggingface.co (a mirror).
    pub endpoint: Option<String>,
}

impl fmt::Debug for HubOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubOptions")
            .field("offline", &self.offline)
            .field("cache_dir", &self.cache_dir)
            .field("progress", &self.progress.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// Finds (and, online, downloads) the files of a model.
pub fn resolve(source: &ModelSource, opts: &HubOptions) -> Result<ModelFiles> {
    resolve_with(source, opts, &mut |_| Ok(BTreeMap::new()))
}

/// Asks a layout for the companion files it names (`ModelFiles::companions`), given a
/// [`Fetch`] of the model's source.
pub type Companions<'a> = dyn FnMut(&mut dyn Fetch) -> Result<BTreeMap<String, PathBuf>> + 'a;

/// `resolve`, with the companion files `companions` fetches from the model's source (a
/// layout reads its own manifest and names the files it needs).
pub fn resolve_with(
    source: &ModelSource,
    opts: &HubOptions,
    companions: &mut Companions,
) -> Result<ModelFiles> {
    match source {
        ModelSource::Dir(dir) => resolve_dir(dir, companions),
        ModelSource::Hub { repo, revision } => {
            let rev = revision.as_deref().unwrap_or("main");
            remote::resolve(&source.to_string(), repo, rev, opts, companions)
        }
    }
}

/// Without the `hub` feature a hub id cannot be resolved.
#[cfg(not(feature = "hub"))]
mod remote {
    use super::*;

    pub fn resolve(
        name: &str,
        _: &str,
        _: &str,
        _: &HubOptions,
        _: &mut Companions,
    ) -> Result<ModelFiles> {
        Err(hub_err(
            name,
            "this build of wgbert has no hub client (the `hub` feature); pass a local directory",
        ))
    }
}

fn resolve_dir(dir: &Path, companions: &mut Companions) -> Result<ModelFiles> {
    let err = |message: String| hub_err(dir.display(), message);
    if !dir.exists() {
        return Err(err("directory not found".into()));
    }
    if !dir.is_dir() {
        return Err(err("not a directory".into()));
    }
    std::fs::read_dir(dir).map_err(|e| err(format!("cannot read the directory: {e}")))?;
    collect(&mut DirFetch(dir), Some(dir.to_path_buf()), companions)
}

/// One way of getting a named file of a model: its directory, the hub cache, the hub, or
/// files in memory.
pub trait Fetch {
    /// The local path of `file`, `None` when the model has no such file.
    fn fetch(&mut self, file: &str) -> Result<Option<PathBuf>>;
    /// The error for a required file that is absent.
    fn missing(&self, file: &str) -> Error;
    /// Where the fetched paths are read from.
    fn store(&self) -> FileStore {
        FileStore::disk()
    }
}

/// The file layout shared by all sources.
pub(crate) fn collect(
    src: &mut impl Fetch,
    dir: Option<PathBuf>,
    companions: &mut Companions,
) -> Result<ModelFiles> {
    let config = src.fetch(CONFIG)?.ok_or_else(|| src.missing(CONFIG))?;
    let tokenizer = src.fetch(TOKENIZER)?;
    let weights = if let Some(single) = src.fetch(SINGLE)? {
        vec![single]
    } else if let Some(index) = src.fetch(INDEX)? {
        let mut weights = vec![index.clone()];
        for shard in shard_names(&src.store(), &index)? {
            weights.push(src.fetch(&shard)?.ok_or_else(|| src.missing(&shard))?);
        }
        weights
    } else {
        let what = "model.safetensors or model.safetensors.index.json (only safetensors)";
        return Err(src.missing(what));
    };
    let companions = companions(src)?;
    Ok(ModelFiles {
        dir,
        config,
        tokenizer,
        weights,
        companions,
        store: src.store(),
    })
}

/// The shard file names of a `model.safetensors.index.json`, sorted, each once.
fn shard_names(store: &FileStore, index: &Path) -> Result<Vec<String>> {
    let bad = |message: String| Error::Weights {
        path: index.to_path_buf(),
        message,
    };
    let text = store.read_to_string(index)?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let mut shards = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("{tensor}: shard is not a string")))?;
        // A hub file name may come from anyone: keep shards inside the model folder.
        let escapes = file.contains('\\')
            || Path::new(file)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if file.is_empty() || escapes {
            return Err(bad(format!(
                "{tensor}: shard name {file:?} leaves the model folder"
            )));
        }
        shards.insert(file.to_string());
    }
    if shards.is_empty() {
        return Err(bad("\"weight_map\" lists no shards".into()));
    }
    Ok(shards.into_iter().collect())
}

struct DirFetch<'a>(&'a Path);

impl Fetch for DirFetch<'_> {
    fn fetch(&mut self, file: &str) -> Result<Option<PathBuf>> {
        let path = self.0.join(file);
        Ok(path.is_file().then_some(path))
    }
    fn missing(&self, file: &str) -> Error {
        let message = if file == CONFIG {
            "no config.json in this directory (is it a model directory?)".to_string()
        } else {
            format!("no {file} in this directory")
        };
        hub_err(self.0.display(), message)
    }
}

pub(crate) fn hub_err(source_name: impl fmt::Display, message: impl Into<String>) -> Error {
    Error::Hub {
        source_name: source_name.to_string(),
        message: message.into(),
    }
}

fn looks_like_path(s: &str) -> bool {
    s.starts_with(['.', '/', '~'])
        || s.contains('\\')
        || s.matches('/').count() > 1
        || s.as_bytes().get(1) == Some(&b':')
}

fn expand_tilde(s: &str) -> PathBuf {
    let rest = match s.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with(['/', '\\']) => rest,
        _ => return PathBuf::from(s),
    };
    match std::env::home_dir() {
        Some(home) => home.join(rest.trim_start_matches(['/', '\\'])),
        None => PathBuf::from(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_look_like_paths() {
        for s in ["./x", "../x", "/x", "~/x", "a/b/c", "a\\b", "C:x"] {
            assert!(looks_like_path(s), "{s}");
        }
        for s in ["a/b", "bare", "org-1/model.v2"] {
            assert!(!looks_like_path(s), "{s}");
        }
    }
}
