//! The tensor-core self-checks as choices: whether a device may run the cooperative-matrix
//! kernels, decided once per device and kept (on the `Gpu` for its life, in the tuning cache
//! across processes), beside the tile choices of the same cache. The kernels only run the
//! checks they are given (`matmul::self_check`, `attention::self_check`); deciding and
//! keeping is done here, so no kernel family imports the search.
//!
//! A verdict is what the check said: a pass, or why the kernel failed. A check that read
//! back nothing but zeros (`Error::Inconclusive`: a device whose submissions do nothing,
//! such as Mesa's drm-shim, or one that never ran the work) says nothing about the kernel:
//! the kernel is not used by this process, nothing is cached, and the next process checks
//! again. So a no-op device cannot leave a failed verdict behind for the real one.

use std::sync::Arc;

use super::{ATTENTION_COOP, Cache, DeviceKey, MATMUL_COOP};
use crate::ops::choice::Choices;
use crate::ops::coop::{Mode, Shape, Verdict};
use crate::ops::{attention, matmul};
use crate::runtime::{Capabilities, Gpu};
use crate::{Error, Result};

/// The f16 kernels a device runs for the two heavy ops, and why not the tensor-core ones.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct F16Kernels {
    /// The matmul for many rows: "matmul_coop 8x8x8 sg8" (tensor cores) or "matmul".
    pub matmul: String,
    /// "attention_coop 8x8x8 sg8" (tensor cores) or "attention".
    pub attention: String,
    /// Why a tensor-core kernel is not used, where one is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coop_reason: Option<String>,
}

/// Runs the tensor-core kernels' self-checks on this device where `choices.coop` allows
/// them, puts their verdicts into `choices` (then `record` may choose those kernels) and
/// says which f16 kernels the device will run. Each check runs once per device: a verdict
/// comes from the device's earlier checks, else from `cache` (same key as the tuned tiles:
/// adapter, driver and its version, crate version), else the check runs now and its verdict
/// is cached, unless it was inconclusive (see the module docs). With `Mode::Off`
/// (`WGBERT_COOP=0`) nothing is checked; with `Mode::Required` (`WGBERT_COOP=1`) a device
/// that cannot run both tensor-core kernels is an `Error::Unsupported` naming cooperative
/// matrices and why.
pub fn f16_kernels(gpu: &Arc<Gpu>, choices: &mut Choices, cache: &Cache) -> Result<F16Kernels> {
    let mode = choices.coop;
    let name = |family: &str, r: &std::result::Result<Shape, String>| match r {
        Ok(s) => format!("{family}_coop {} sg{}", s.name(), s.subgroup),
        Err(_) => family.to_string(),
    };
    let (m, a) = if mode == Mode::Off {
        let off = Err("turned off by WGBERT_COOP=0".to_string());
        (off.clone(), off)
    } else {
        let attention = || {
            verify(
                gpu,
                cache,
                ATTENTION_COOP,
                attention::coop::supported,
                attention::self_check,
            )
        };
        let matmul = || {
            verify(
                gpu,
                cache,
                MATMUL_COOP,
                matmul::coop::supported,
                matmul::self_check,
            )
        };
        // A browser has one thread (and no cooperative matrices: both report so at once).
        #[cfg(target_arch = "wasm32")]
        let (m, a) = (matmul(), attention());
        // The two checks side by side: each compiles its kernels, the long part of a check
        // on a device without cached pipelines.
        #[cfg(not(target_arch = "wasm32"))]
        let (m, a) = std::thread::scope(|s| {
            let a = s.spawn(attention);
            let m = matmul();
            let a = a
                .join()
                .unwrap_or_else(|_| (Err("the attention self-check panicked".into()), None));
            (m, a)
        });
        choices.matmul_check = m.1;
        choices.attention_check = a.1;
        (m.0, a.0)
    };
    let reason = match (&m, &a) {
        (Ok(_), Ok(_)) => None,
        (Err(e), Ok(_)) => Some(format!("matmul: {e}")),
        (Ok(_), Err(e)) => Some(format!("attention: {e}")),
        (Err(e), Err(f)) if e == f => Some(e.clone()),
        (Err(e), Err(f)) => Some(format!("matmul: {e}; attention: {f}")),
    };
    if let (Mode::Required, Some(why)) = (mode, &reason) {
        return Err(Error::Unsupported(format!(
            "WGBERT_COOP=1 requires cooperative matrices (tensor-core kernels) on '{}', but \
             they cannot be used: {why}",
            gpu.info().name
        )));
    }
    Ok(F16Kernels {
        matmul: name("matmul", &m),
        attention: name("attention", &a),
        coop_reason: reason,
    })
}

#[doc(hidden)]
/// One family's self-check: the shape `supported` gives, or why the kernel cannot be used;
/// and the verdict to keep (`None` where the adapter cannot run the kernel at all). The
/// verdict comes from this device's earlier checks, the cache, or `check` run now; a check
/// run now is cached unless it was inconclusive. Public for the tests of that rule.
pub fn verify(
    gpu: &Arc<Gpu>,
    cache: &Cache,
    family: &str,
    supported: impl FnOnce(&Capabilities) -> std::result::Result<Shape, String>,
    check: impl FnOnce(&Arc<Gpu>, Shape) -> Result<()>,
) -> (std::result::Result<Shape, String>, Option<Verdict>) {
    let shape = match supported(gpu.caps()) {
        Ok(s) => s,
        Err(why) => return (Err(why), None),
    };
    let verdict = gpu.self_check(family, || {
        let dev = DeviceKey::of(gpu);
        if let Some(v) = cache.verdict(&dev, family) {
            log::info!("{family} self-check: cached verdict {v:?}");
            let path = cache.path().map(|p| p.display().to_string());
            return v.map_err(|why| {
                format!(
                    "{why} (cached verdict; `wgbert tune --reset` or removing {} checks again)",
                    path.unwrap_or_default()
                )
            });
        }
        gpu.count_self_check();
        match check(gpu, shape) {
            Err(e @ Error::Inconclusive(_)) => {
                log::warn!("{family} self-check: {e}; not used, not cached");
                Err(format!("{e} (not used, not cached)"))
            }
            r => {
                let v = r.map_err(|e| e.to_string());
                if let Err(e) = cache.put_verdict(&dev, family, &v) {
                    log::warn!("{family} self-check: the verdict is not cached: {e}");
                }
                v
            }
        }
    });
    (verdict.clone().map(|_| shape), Some(verdict))
}
