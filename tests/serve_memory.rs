//! `wgbert serve` keeps its device memory bounded: 2,000 fill-mask requests with random
//! `top_k` (1 to 64) and random lengths, from a few clients at once, leave the device bytes
//! that `/metrics` reports within 5% of what the first 100 requests left.

mod common;
mod serve_util;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::model_dir::model_dir;
use serde_json::{Value, json};
use serve_util::Server;

const CLIENTS: usize = 4;
const REQUESTS: usize = 2000;
const FIRST: usize = 100;

/// Request `n`: a text of 1 to 40 fixture words with one `[MASK]` among them, and a top_k
/// of 1 to 64, both from a fixed pseudo-random sequence.
fn request(n: usize) -> (Value, usize) {
    let mut s = (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = |m: u64| {
        s ^= s >> 33;
        s = s.wrapping_mul(0xff51_afd7_ed55_8ccd);
        s ^= s >> 29;
        (s % m) as usize
    };
    let top_k = 1 + next(64);
    let len = 1 + next(40);
    let mask_at = next(len as u64);
    let words: Vec<String> = (0..len)
        .map(|i| match i == mask_at {
            true => "[MASK]".to_string(),
            false => format!("w{}", 5 + next(500)),
        })
        .collect();
    (json!({ "inputs": words.join(" "), "top_k": top_k }), top_k)
}

/// Requests `range` from `CLIENTS` clients at once; each answer must hold `top_k`
/// candidates for its one mask.
fn send(s: &Server, range: std::ops::Range<usize>) {
    let next = AtomicUsize::new(range.start);
    std::thread::scope(|scope| {
        for _ in 0..CLIENTS {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= range.end {
                        return;
                    }
                    let (body, top_k) = request(n);
                    let answer = s.ok("/fill-mask", &body);
                    let candidates = answer[0]["masks"][0]["candidates"]
                        .as_array()
                        .map_or(0, Vec::len);
                    assert_eq!(candidates, top_k, "request {n} {body}: {answer}");
                }
            });
        }
    });
}

/// The device bytes `/metrics` reports: every `wgbert_device_bytes` category summed.
fn device_bytes(s: &Server) -> (u64, String) {
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200, "{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wgbert_device_bytes{"))
        .collect();
    assert_eq!(lines.len(), 4, "one gauge per category: {text}");
    let total = lines
        .iter()
        .map(|l| {
            let v = l.rsplit(' ').next().unwrap_or("");
            v.parse::<u64>()
                .unwrap_or_else(|e| panic!("{l}: not a byte count ({e})"))
        })
        .sum();
    (total, lines.join("\n"))
}

#[test]
fn device_memory_stays_flat_under_random_top_k_and_lengths() {
    let dir = model_dir("mlm_v4");
    let s = Server::start(dir.path(), &["--dtype", "f32"], &[]);
    send(&s, 0..FIRST);
    let (first, first_lines) = device_bytes(&s);
    assert!(first > 0, "{first_lines}");
    send(&s, FIRST..REQUESTS);
    let (last, last_lines) = device_bytes(&s);
    assert!(
        last as f64 <= first as f64 * 1.05,
        "device bytes grew from {first} after {FIRST} requests to {last} after {REQUESTS}:\n\
         {first_lines}\n--\n{last_lines}"
    );
    eprintln!(
        "device bytes after {FIRST} requests: {first}; after {REQUESTS}: {last}\n{last_lines}"
    );
    assert_eq!(s.get("/health").0, 200);
}
