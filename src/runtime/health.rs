//! Whether a device can still be used: lost (driver reset, removed GPU, `Device::destroy`) or
//! hung (a wait past its timeout). Both are final for the device; a server reports them on
//! its health route, and every later wait fails at once instead of hanging.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Error, Result};

/// What has gone wrong with a device, once, for good.
#[derive(Debug, Default)]
pub struct DeviceHealth {
    failure: OnceLock<String>,
    /// Longest wait for submitted work, in milliseconds; 0 waits for ever.
    wait_timeout_ms: AtomicU64,
}

impl DeviceHealth {
    /// Records that the device is unusable (the first reason stays).
    pub fn fail(&self, reason: impl Into<String>) {
        let _ = self.failure.set(reason.into());
    }

    /// Why the device is unusable, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    pub fn wait_timeout(&self) -> Option<Duration> {
        match self.wait_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub fn set_wait_timeout(&self, timeout: Option<Duration>) {
        let ms = timeout.map_or(0, |t| (t.as_millis() as u64).max(1));
        self.wait_timeout_ms.store(ms, Ordering::Relaxed);
    }

    /// What a wait that polled `polled` under `timeout` means: `Ok` while the device is
    /// healthy; a timeout is `Error::GpuTimeout` and any other poll error `Error::DeviceLost`,
    /// and both fail the device for good (as does a loss reported meanwhile).
    pub fn settle(
        &self,
        polled: std::result::Result<(), wgpu::PollError>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        match polled {
            Ok(()) => match self.failure() {
                Some(why) => Err(Error::DeviceLost(why.to_string())),
                None => Ok(()),
            },
            Err(wgpu::PollError::Timeout) => {
                let seconds = timeout.map_or(0.0, |t| t.as_secs_f64());
                self.fail(format!("GPU work did not finish within {seconds} s"));
                Err(Error::GpuTimeout { seconds })
            }
            Err(e) => {
                self.fail(format!("waiting for the device failed: {e}"));
                Err(Error::DeviceLost(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failure_stays_and_timeouts_round_trip() {
        let h = DeviceHealth::default();
        assert_eq!(h.failure(), None);
        h.fail("lost");
        h.fail("hung");
        assert_eq!(h.failure(), Some("lost"));
        assert_eq!(h.wait_timeout(), None);
        h.set_wait_timeout(Some(Duration::from_secs(3)));
        assert_eq!(h.wait_timeout(), Some(Duration::from_secs(3)));
        h.set_wait_timeout(Some(Duration::ZERO));
        assert_eq!(h.wait_timeout(), Some(Duration::from_millis(1)));
        h.set_wait_timeout(None);
        assert_eq!(h.wait_timeout(), None);
    }

    #[test]
    fn waits_settle_into_typed_errors_that_fail_the_device() {
        let h = DeviceHealth::default();
        assert!(h.settle(Ok(()), None).is_ok());
        let e = h.settle(Err(wgpu::PollError::Timeout), Some(Duration::from_secs(2)));
        assert!(
            matches!(e, Err(Error::GpuTimeout { seconds }) if seconds == 2.0),
            "{e:?}"
        );
        assert_eq!(h.failure(), Some("GPU work did not finish within 2 s"));
        // Failed for good: a later successful poll still reports it.
        assert!(matches!(h.settle(Ok(()), None), Err(Error::DeviceLost(_))));
        let lost = DeviceHealth::default();
        let e = lost.settle(Err(wgpu::PollError::WrongSubmissionIndex(3, 1)), None);
        assert!(matches!(e, Err(Error::DeviceLost(_))), "{e:?}");
        assert!(lost.failure().is_some());
    }
}
