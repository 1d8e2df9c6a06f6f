//! What a test watches beside an attack: the server's memory from /proc, its device bytes
//! from `/metrics`, and a normal client's `/embed` answers and their times.

use std::time::{Duration, Instant};

use super::{REQUEST_TIMEOUT, Server};

/// The server process's memory from /proc: resident now and its peak, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
            * 1024
    };
    Memory {
        rss: kb("VmRSS:"),
        peak: kb("VmHWM:"),
    }
}

/// The device bytes `/metrics` reports: every `wgbert_device_bytes` category summed.
pub fn device_bytes(s: &Server) -> u64 {
    let (_, text) = s.get("/metrics");
    text.lines()
        .filter(|l| l.starts_with("wgbert_device_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A normal client beside an attack: `/embed` of a short text every 100 ms from its own
/// connection, each answer checked against `want`, timed.
pub struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u16, Duration)>>,
}

impl Probe {
    pub fn start(s: &Server) -> Probe {
        let url = format!("{}/embed", s.base);
        let key = s.key.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
            let mut seen = Vec::new();
            while !halt.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                let mut req = agent.post(&url).set("Content-Type", "application/json");
                if let Some(k) = &key {
                    req = req.set("Authorization", &format!("Bearer {k}"));
                }
                let status = match req.send_string(r#"{"inputs": "w5 w6 w7"}"#) {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(c, _)) => c,
                    Err(_) => 0,
                };
                seen.push((status, started.elapsed()));
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        Probe { stop, thread }
    }

    /// Stops; every probe must have been answered 200 within `bound`. Returns the slowest.
    pub fn finish(self, bound: Duration) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = self.thread.join().expect("the probe thread");
        assert!(!seen.is_empty(), "no probe ran");
        let bad: Vec<_> = seen.iter().filter(|(c, _)| *c != 200).collect();
        assert!(bad.is_empty(), "probes not answered 200: {bad:?}");
        let slowest = seen.iter().map(|(_, t)| *t).max().unwrap_or_default();
        eprintln!("probe: {} normal /embed, slowest {slowest:?}", seen.len());
        assert!(
            slowest <= bound,
            "a normal /embed took {slowest:?} under attack (bound {bound:?}; {} probes)",
            seen.len()
        );
        slowest
    }
}
