//! The driver's compiled pipelines on disk: a `wgpu::PipelineCache` (where the backend has
//! one: Vulkan) loaded from a file in the cache directory when a device is made and written
//! back as new pipelines are compiled. wgpu checks the file's header (vendor, device,
//! driver, wgpu version); a corrupt or foreign file is ignored with a warning and replaced.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::gpu::Gpu;

/// A `wgpu::PipelineCache` and its file.
pub(crate) struct DiskPipelines {
    cache: wgpu::PipelineCache,
    path: PathBuf,
    loaded: u64,
    /// Pipelines created when the file was last written.
    saved_at: AtomicU64,
}

impl DiskPipelines {
    /// The pipeline cache in `dir` for this device, where the backend has one: the file's
    /// pipelines are loaded, and a corrupt or foreign file is ignored (logged) and replaced
    /// when the cache is next written.
    pub(crate) fn open(gpu: &Gpu, dir: &Path) -> Option<DiskPipelines> {
        let (device, info) = (gpu.device(), gpu.info());
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            log::info!("pipeline cache: not supported by '{}'", info.name);
            return None;
        }
        let key = wgpu::util::pipeline_cache_key(info)?;
        let path = dir.join(format!("{key}.bin"));
        if let Err(e) = std::fs::create_dir_all(dir) {
            log::warn!("pipeline cache: cannot create {}: {e}", dir.display());
            return None;
        }
        let data = std::fs::read(&path).ok();
        let create = |data: Option<&[u8]>, fallback: bool| {
            gpu.guarded("creating the pipeline cache", || {
                // SAFETY: the data is what `get_data` wrote for this adapter's cache key
                // (file names carry it); wgpu checks its header (vendor, device, driver,
                // wgpu version) and refuses any other.
                unsafe {
                    device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                        label: Some("wgbert pipelines"),
                        data,
                        fallback,
                    })
                }
            })
        };
        let (cache, loaded) = match data.as_deref().map(|d| create(Some(d), false)) {
            Some(Ok(cache)) => (cache, data.as_ref().map_or(0, |d| d.len() as u64)),
            Some(Err(e)) => {
                log::warn!("pipeline cache {}: ignored ({e})", path.display());
                (create(None, true).ok()?, 0)
            }
            None => (create(None, true).ok()?, 0),
        };
        if loaded > 0 {
            log::info!("pipeline cache: {loaded} bytes from {}", path.display());
        }
        Some(DiskPipelines {
            cache,
            path,
            loaded,
            saved_at: AtomicU64::new(0),
        })
    }

    pub(crate) fn cache(&self) -> &wgpu::PipelineCache {
        &self.cache
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes loaded from the file when the device was made.
    pub(crate) fn loaded(&self) -> u64 {
        self.loaded
    }

    /// Writes the cache to its file unless it was written when `created` pipelines existed
    /// already (then nothing new is in it): to a temporary file, renamed, so concurrent
    /// processes never read half a file. A failure is logged.
    pub(crate) fn save(&self, created: u64) {
        if self.saved_at.swap(created, Ordering::Relaxed) == created {
            return;
        }
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let tmp = self
            .path
            .with_extension(format!("bin.{}", std::process::id()));
        let written = std::fs::write(&tmp, &data).and_then(|()| std::fs::rename(&tmp, &self.path));
        match written {
            Ok(()) => log::info!(
                "pipeline cache: {} bytes written to {}",
                data.len(),
                self.path.display()
            ),
            Err(e) => log::warn!("pipeline cache {}: not written: {e}", self.path.display()),
        }
    }
}
