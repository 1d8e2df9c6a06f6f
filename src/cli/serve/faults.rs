//! Fault injection for the server's tests, compiled into debug builds only: release builds
//! (what users run) ignore it. `WGBERT_TEST_FAULTS` lists `ACTION:TOKEN_ID` pairs; an engine
//! call whose sequences hold `TOKEN_ID` then
//! - `fail`: fails with a device error (as a driver error would, the server stays up);
//! - `panic`: panics inside the call;
//! - `destroy`: destroys the device first (`wgpu::Device::destroy`), a real device loss;
//! - `hang`: settles its wait as timed out (`DeviceHealth::settle`, what `Gpu::wait` does
//!   when a batch outlives `--gpu-timeout`; a software adapter may finish any batch before
//!   its wait starts, so a real timeout cannot be forced there);
//! - `sleep`: sleeps 2 s first (a batch that keeps the engine busy for a known time).

use wgbert::encoder::Encoder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Fail,
    Panic,
    Destroy,
    Hang,
    Sleep,
}

#[derive(Debug, Clone, Default)]
pub struct Faults(Vec<(Action, u32)>);

impl Faults {
    /// Reads `WGBERT_TEST_FAULTS` in debug builds; nothing in release builds.
    pub fn from_env() -> anyhow::Result<Faults> {
        if !cfg!(debug_assertions) {
            return Ok(Faults::default());
        }
        match std::env::var("WGBERT_TEST_FAULTS") {
            Ok(spec) => Faults::parse(&spec),
            Err(_) => Ok(Faults::default()),
        }
    }

    fn parse(spec: &str) -> anyhow::Result<Faults> {
        let mut out = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (action, token) = item.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("WGBERT_TEST_FAULTS: '{item}' is not ACTION:TOKEN")
            })?;
            let action = match action {
                "fail" => Action::Fail,
                "panic" => Action::Panic,
                "destroy" => Action::Destroy,
                "hang" => Action::Hang,
                "sleep" => Action::Sleep,
                other => anyhow::bail!("WGBERT_TEST_FAULTS: unknown action '{other}'"),
            };
            let token = token
                .parse()
                .map_err(|e| anyhow::anyhow!("WGBERT_TEST_FAULTS: '{item}': {e}"))?;
            out.push((action, token));
        }
        Ok(Faults(out))
    }

    /// Acts on the first listed token the sequences hold.
    pub fn before_call(&self, enc: &Encoder, seqs: &[Vec<u32>]) -> wgbert::Result<()> {
        let hit = self
            .0
            .iter()
            .find(|(_, t)| seqs.iter().any(|s| s.contains(t)));
        match hit.map(|h| h.0) {
            None => Ok(()),
            Some(Action::Fail) => Err(wgbert::Error::Gpu {
                context: "running a batch".into(),
                message: "injected device fault".into(),
            }),
            Some(Action::Panic) => panic!("injected panic"),
            Some(Action::Destroy) => {
                enc.gpu().device().destroy();
                Ok(())
            }
            Some(Action::Sleep) => {
                std::thread::sleep(std::time::Duration::from_secs(2));
                Ok(())
            }
            Some(Action::Hang) => {
                let health = enc.gpu().health();
                let timeout = health.wait_timeout();
                health.settle(Err(wgpu::PollError::Timeout), timeout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_errors() {
        let f = Faults::parse("fail:77, panic:78,destroy:79").unwrap();
        assert_eq!(
            f.0,
            vec![
                (Action::Fail, 77),
                (Action::Panic, 78),
                (Action::Destroy, 79)
            ]
        );
        assert!(Faults::parse("explode:1").is_err());
        assert!(Faults::parse("fail").is_err());
        assert!(Faults::parse("fail:x").is_err());
    }
}
