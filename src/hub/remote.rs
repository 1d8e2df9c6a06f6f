//! The hub client (the `hub` feature): the hf-hub cache layout, shared with Python's
//! `huggingface_hub`, and downloads through hf-hub, reported to the caller's observer.

use std::collections::HashSet;
use std::path::PathBuf;

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use super::{Companions, Fetch, HubOptions, ModelFiles, collect, hub_err};
use crate::progress::{Observer, Progress};
use crate::{Error, Result};

/// The files of hub repo `repo` at `rev`: from the cache, else (online) downloaded.
pub fn resolve(
    name: &str,
    repo: &str,
    rev: &str,
    opts: &HubOptions,
    companions: &mut Companions,
) -> Result<ModelFiles> {
    let mut cache = CacheFetch {
        root: cache_root(opts, name)?,
        repo,
        rev,
        name,
    };
    if opts.offline {
        return collect(&mut cache, None, companions);
    }
    // Everything already cached: no network needed.
    if let Ok(files) = collect(&mut cache, None, companions)
        && files.tokenizer.is_some()
    {
        log::info!("{name}: using the files in {}", cache.root.display());
        return Ok(files);
    }
    let mut online = OnlineFetch::connect(&cache, opts)?;
    collect(&mut online, None, companions)
}

/// Lookups in the hf-hub cache, with no network.
struct CacheFetch<'a> {
    root: PathBuf,
    repo: &'a str,
    rev: &'a str,
    name: &'a str,
}

impl Fetch for CacheFetch<'_> {
    fn fetch(&mut self, file: &str) -> Result<Option<PathBuf>> {
        let cache = Cache::new(self.root.clone());
        let repo = Repo::with_revision(self.repo.into(), RepoType::Model, self.rev.into());
        if let Some(path) = cache.repo(repo.clone()).get(file) {
            return Ok(Some(path));
        }
        // hf-hub reads refs/<rev> verbatim (a trailing newline breaks it), and a revision
        // given as a commit hash has no ref file at all; look those up by hand.
        let base = self.root.join(repo.folder_name());
        let commit = match std::fs::read_to_string(base.join("refs").join(self.rev)) {
            Ok(s) => s.trim().to_string(),
            Err(_) if is_commit_hash(self.rev) => self.rev.to_string(),
            Err(_) => return Ok(None),
        };
        let path = base.join("snapshots").join(commit).join(file);
        Ok(path.is_file().then_some(path))
    }
    fn missing(&self, file: &str) -> Error {
        let (repo, root) = (self.repo, self.root.display());
        let message = format!(
            "{repo}/{file} is not in the cache ({root}), run once online or pass a directory"
        );
        hub_err(self.name, message)
    }
}

/// Downloads through hf-hub (cache first), knowing the repo's file list.
struct OnlineFetch<'a> {
    repo: ApiRepo,
    cache: hf_hub::CacheRepo,
    files: HashSet<String>,
    name: &'a str,
    progress: Observer,
}

impl<'a> OnlineFetch<'a> {
    fn connect(cache: &CacheFetch<'a>, opts: &HubOptions) -> Result<Self> {
        let mut builder = ApiBuilder::from_cache(Cache::new(cache.root.clone()))
            .with_progress(false)
            .with_user_agent("wgbert", env!("CARGO_PKG_VERSION"));
        if let Some(token) = opts.token.clone().filter(|t| !t.trim().is_empty()) {
            builder = builder.with_token(Some(token));
        }
        if let Some(endpoint) = opts.endpoint.clone() {
            builder = builder.with_endpoint(endpoint);
        }
        let api = builder
            .build()
            .map_err(|e| net_error(cache.name, "setting up the client", &e))?;
        let repo = Repo::with_revision(cache.repo.into(), RepoType::Model, cache.rev.into());
        let repo = api.repo(repo);
        let info = repo
            .info()
            .map_err(|e| net_error(cache.name, "listing the files", &e))?;
        let files = info.siblings.into_iter().map(|s| s.rfilename).collect();
        Ok(Self {
            repo,
            cache: Cache::new(cache.root.clone()).repo(Repo::with_revision(
                cache.repo.into(),
                RepoType::Model,
                cache.rev.into(),
            )),
            files,
            name: cache.name,
            progress: opts.progress.clone(),
        })
    }
}

impl Fetch for OnlineFetch<'_> {
    fn fetch(&mut self, file: &str) -> Result<Option<PathBuf>> {
        if !self.files.contains(file) {
            return Ok(None);
        }
        if let Some(path) = self.cache.get(file) {
            return Ok(Some(path));
        }
        let what = format!("downloading {file}");
        let got = match &self.progress {
            Some(observer) => self
                .repo
                .download_with_progress(file, Relay(observer.as_ref())),
            None => self.repo.download(file),
        };
        got.map(Some).map_err(|e| net_error(self.name, &what, &e))
    }
    fn missing(&self, file: &str) -> Error {
        hub_err(self.name, format!("the repository has no {file}"))
    }
}

fn net_error(name: &str, what: &str, e: &ApiError) -> Error {
    let text = e.to_string();
    let hint = if text.contains("status code 401") || text.contains("status code 403") {
        "the repository is gated or private: set HF_TOKEN to a token with access"
    } else if text.contains("status code 404") {
        "no such repository or revision (private repos need HF_TOKEN)"
    } else {
        "check the network, or use --offline with a cached model, or pass a local directory"
    };
    hub_err(name, format!("{what} failed: {text}; {hint}"))
}

fn cache_root(opts: &HubOptions, name: &str) -> Result<PathBuf> {
    opts.cache_dir
        .clone()
        .or_else(|| std::env::home_dir().map(|h| h.join(".cache").join("huggingface").join("hub")))
        .ok_or_else(|| hub_err(name, "no home directory for the cache: set HF_HOME"))
}

fn is_commit_hash(rev: &str) -> bool {
    rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit())
}

/// hf-hub's download progress, passed on to the caller's observer.
struct Relay<'a>(&'a dyn Progress);

impl hf_hub::api::Progress for Relay<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        self.0
            .start(&format!("downloading {filename}"), size as u64);
    }
    fn update(&mut self, size: usize) {
        self.0.advance(size as u64, "");
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        assert!(is_commit_hash(&"ab12".repeat(10)));
        assert!(!is_commit_hash("main"));
    }
}
