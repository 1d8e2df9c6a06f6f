//! The tuning cache on disk: one JSON file, `tune.json`, of tuned tiles and self-check
//! verdicts, keyed by what identifies a device (adapter, backend, driver, driver version)
//! and the crate version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ops::DType;
use crate::ops::coop::Verdict;
use crate::runtime::Gpu;
use crate::{Error, Result};

/// What identifies a device for the cache: a change in any field invalidates its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceKey {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub driver_info: String,
}

impl DeviceKey {
    pub fn of(gpu: &Gpu) -> DeviceKey {
        let i = gpu.info();
        DeviceKey {
            adapter: i.name.clone(),
            backend: format!("{:?}", i.backend),
            driver: i.driver.clone(),
            driver_info: i.driver_info.clone(),
        }
    }

    /// The adapter alone (entries of other drivers or crate versions are replaced).
    fn adapter_part(&self) -> String {
        format!("{}|{}", self.adapter, self.backend)
    }

    fn entry(&self, op: &str, class: &str, dtype: DType) -> String {
        format!(
            "{}|{}|{}|wgbert {}|{op}|{class}|{}",
            self.adapter_part(),
            self.driver,
            self.driver_info,
            env!("CARGO_PKG_VERSION"),
            dtype.wgsl()
        )
    }

    fn check(&self, check: &str) -> String {
        format!(
            "{}|{}|{}|wgbert {}|{check}",
            self.adapter_part(),
            self.driver,
            self.driver_info,
            env!("CARGO_PKG_VERSION"),
        )
    }

    fn same_check(&self, key: &str, check: &str) -> bool {
        key.starts_with(&format!("{}|", self.adapter_part())) && key.ends_with(&format!("|{check}"))
    }

    fn same_slot(&self, key: &str, op: &str, class: &str, dtype: DType) -> bool {
        let tail = format!("|{op}|{class}|{}", dtype.wgsl());
        key.starts_with(&format!("{}|", self.adapter_part())) && key.ends_with(&tail)
    }
}

/// One cached choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The chosen configuration's name (`64x64`).
    pub config: String,
    /// Seconds per run of each candidate on the representative shape; `null` for one that
    /// failed its check.
    pub timings: BTreeMap<String, Option<f64>>,
}

/// The on-disk cache: one JSON file, `tune.json`, in a directory: tuned tiles and the
/// verdicts of the tensor-core self-checks.
#[derive(Debug, Clone)]
pub struct Cache {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<String, Entry>,
    /// Self-check verdicts: `null` for a pass, else why the kernel failed.
    #[serde(default)]
    checks: BTreeMap<String, Option<String>>,
}

impl Cache {
    /// The cache in `dir`.
    pub fn in_dir(dir: &Path) -> Cache {
        Cache {
            path: Some(dir.join("tune.json")),
        }
    }

    /// No cache: choices and verdicts are kept for the process only.
    pub fn none() -> Cache {
        Cache { path: None }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn read(&self) -> CacheFile {
        let Some(path) = &self.path else {
            return CacheFile::default();
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                log::warn!("ignoring the tuning cache {}: {e}", path.display());
                CacheFile::default()
            }),
            Err(_) => CacheFile::default(),
        }
    }

    /// The cached entry for this device, family, class and precision.
    pub fn get(&self, dev: &DeviceKey, op: &str, class: &str, dtype: DType) -> Option<Entry> {
        self.read().entries.remove(&dev.entry(op, class, dtype))
    }

    /// Stores an entry, dropping those of the same adapter and slot made with another driver
    /// or crate version.
    pub fn put(
        &self,
        dev: &DeviceKey,
        op: &str,
        class: &str,
        dtype: DType,
        entry: Entry,
    ) -> Result<()> {
        self.update(|file| {
            file.entries
                .retain(|k, _| !dev.same_slot(k, op, class, dtype));
            file.entries.insert(dev.entry(op, class, dtype), entry);
        })
    }

    /// The cached verdict of self-check `check` on this device (same key as the tiles).
    pub fn verdict(&self, dev: &DeviceKey, check: &str) -> Option<Verdict> {
        let v = self.read().checks.remove(&dev.check(check))?;
        Some(v.map_or(Ok(()), Err))
    }

    /// Stores the verdict of self-check `check` on this device, dropping that of another
    /// driver or crate version.
    pub fn put_verdict(&self, dev: &DeviceKey, check: &str, verdict: &Verdict) -> Result<()> {
        self.update(|file| {
            file.checks.retain(|k, _| !dev.same_check(k, check));
            file.checks.insert(dev.check(check), verdict.clone().err());
        })
    }

    /// Forgets everything the file holds for this adapter, whatever its driver, driver
    /// version or crate version: tuned tiles and self-check verdicts (`wgbert tune
    /// --reset`). The number of entries removed.
    pub fn reset(&self, dev: &DeviceKey) -> Result<usize> {
        let prefix = format!("{}|", dev.adapter_part());
        let mut removed = 0;
        self.update(|file| {
            let before = file.entries.len() + file.checks.len();
            file.entries.retain(|k, _| !k.starts_with(&prefix));
            file.checks.retain(|k, _| !k.starts_with(&prefix));
            removed = before - file.entries.len() - file.checks.len();
        })?;
        Ok(removed)
    }

    /// Whether the file holds verdicts for this device (reports).
    pub fn has_verdicts(&self, dev: &DeviceKey) -> bool {
        let prefix = dev.check("");
        self.read().checks.keys().any(|k| k.starts_with(&prefix))
    }

    /// Reads, changes and writes the file: written to a temporary file and renamed, so
    /// concurrent processes never read half a file.
    fn update(&self, change: impl FnOnce(&mut CacheFile)) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        // One writer at a time in this process (threads share the temporary file's name).
        static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _writing = WRITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = self.read();
        change(&mut file);
        let io = |e: std::io::Error| Error::Io {
            path: path.clone(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("json.{}", std::process::id()));
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::Option(format!("tuning cache: {e}")))?;
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}
