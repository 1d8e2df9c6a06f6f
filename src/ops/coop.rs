//! What the cooperative-matrix (tensor-core) kernels share: the `WGBERT_COOP` switch and the
//! per-adapter verdict of their one-time self-check. Drivers can advertise cooperative
//! matrices and compute wrong answers, so a kernel is chosen automatically only after it has
//! agreed with the CPU reference on the device itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::Result;
use crate::runtime::Gpu;

/// False when `WGBERT_COOP` is "0" (or empty): the automatic choice never picks these kernels.
pub fn enabled_by_env() -> bool {
    std::env::var("WGBERT_COOP").map_or(true, |v| !v.trim().is_empty() && v.trim() != "0")
}

/// Self-check verdicts of one kernel family, per adapter (backend, name, driver).
pub struct Verdicts {
    what: &'static str,
    fallback: &'static str,
    map: Mutex<Option<HashMap<String, bool>>>,
}

impl Verdicts {
    /// `what` names the kernel family and `fallback` the kernel used instead, in log lines.
    pub const fn new(what: &'static str, fallback: &'static str) -> Self {
        Verdicts {
            what,
            fallback,
            map: Mutex::new(None),
        }
    }

    /// The cached verdict for this adapter, or the result of `check` (run now, outside the
    /// lock: two threads may both check, harmlessly). A failure is logged once.
    pub fn verified(&self, gpu: &Arc<Gpu>, check: impl FnOnce(&Arc<Gpu>) -> Result<()>) -> bool {
        let i = gpu.info();
        let key = format!("{:?}/{}/{}/{}", i.backend, i.name, i.driver, i.driver_info);
        let cached = self
            .map
            .lock()
            .ok()
            .and_then(|m| m.as_ref().and_then(|m| m.get(&key).copied()));
        if let Some(v) = cached {
            return v;
        }
        let verdict = match check(gpu) {
            Ok(()) => {
                log::info!("cooperative-matrix {} verified on '{}'", self.what, i.name);
                true
            }
            Err(e) => {
                log::warn!(
                    "cooperative-matrix {} disabled on '{}', using the {}: {e}",
                    self.what,
                    i.name,
                    self.fallback
                );
                false
            }
        };
        if let Ok(mut m) = self.map.lock() {
            m.get_or_insert_with(HashMap::new).insert(key, verdict);
        }
        verdict
    }
}
